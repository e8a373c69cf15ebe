package admin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	router "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/weft-mesh/weft/proxy/mtls/mtlstest"
	"github.com/weft-mesh/weft/proxy/xdsclient"
)

type staticSource map[string]xdsclient.AckedType

func (s staticSource) Acked() map[string]xdsclient.AckedType { return s }

func get(t *testing.T, h http.Handler, method, target string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Code, rec.Body.String()
}

func TestReadyFlipsAndHealthz(t *testing.T) {
	var ready atomic.Bool
	h := New(Options{Ready: ready.Load}).Handler()
	if code, body := get(t, h, "GET", "/ready"); code != 503 || body != "INITIALIZING\n" {
		t.Fatalf("/ready before config = %d %q", code, body)
	}
	ready.Store(true)
	if code, body := get(t, h, "GET", "/ready"); code != 200 || body != "LIVE\n" {
		t.Fatalf("/ready after config = %d %q", code, body)
	}
	if code, _ := get(t, h, "GET", "/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	if code, _ := get(t, h, "GET", "/stats"); code != 404 {
		t.Fatalf("/stats = %d, want 404 (not served)", code)
	}
	if code, _ := get(t, h, "POST", "/quitquitquit"); code != 404 && code != 405 {
		t.Fatalf("/quitquitquit without Quit = %d, want not served", code)
	}
}

func TestQuitDrains(t *testing.T) {
	quit := make(chan struct{}, 2)
	s := New(Options{Ready: func() bool { return true }, Quit: func() { quit <- struct{}{} }})
	h := s.Handler()
	if code, _ := get(t, h, "GET", "/quitquitquit"); code != 405 {
		t.Fatalf("GET /quitquitquit = %d, want 405", code)
	}
	for range 2 {
		if code, body := get(t, h, "POST", "/quitquitquit"); code != 200 || body != "OK\n" {
			t.Fatalf("POST /quitquitquit = %d %q", code, body)
		}
	}
	select {
	case <-quit:
	case <-time.After(5 * time.Second):
		t.Fatal("Quit not called")
	}
	select {
	case <-quit:
		t.Fatal("Quit called twice")
	case <-time.After(50 * time.Millisecond):
	}
	if code, body := get(t, h, "GET", "/ready"); code != 503 || body != "DRAINING\n" {
		t.Fatalf("/ready while draining = %d %q", code, body)
	}
}

func packed(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func sample(t *testing.T) staticSource {
	cl := &cluster.Cluster{
		Name:                 "outbound|80||a.default.svc.cluster.local",
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
		ConnectTimeout:       durationpb.New(10 * time.Second),
		EdsClusterConfig: &cluster.Cluster_EdsClusterConfig{
			EdsConfig: &core.ConfigSource{ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}}},
		},
	}
	cla := &endpoint.ClusterLoadAssignment{ClusterName: cl.Name}
	l := &listener.Listener{
		Name: "virtualOutbound",
		FilterChains: []*listener.FilterChain{{Filters: []*listener.Filter{{
			Name: "envoy.filters.network.http_connection_manager",
			ConfigType: &listener.Filter_TypedConfig{TypedConfig: packed(t, &hcm.HttpConnectionManager{
				StatPrefix:     "outbound",
				RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{RouteConfigName: "outbound"}},
				HttpFilters: []*hcm.HttpFilter{{
					Name:       "envoy.filters.http.router",
					ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: packed(t, &router.Router{})},
				}},
			})},
		}}}},
	}
	rc := &route.RouteConfiguration{Name: "outbound"}
	secrets := mtlstest.NewCA(t, "mesh").Secrets(t, mtlstest.SPIFFE("default", "a"))
	return staticSource{
		resource.ClusterType:  {Version: "c1", Resources: []proto.Message{cl}},
		resource.EndpointType: {Version: "e1", Resources: []proto.Message{cla}},
		resource.ListenerType: {Version: "l1", Resources: []proto.Message{l}},
		resource.RouteType:    {Version: "r1", Resources: []proto.Message{rc}},
		resource.SecretType:   {Version: "s1", Resources: []proto.Message{secrets["default"], secrets["ROOTCA"]}},
	}
}

func TestConfigDumpShape(t *testing.T) {
	h := New(Options{Config: sample(t)}).Handler()
	code, body := get(t, h, "GET", "/config_dump")
	if code != 200 {
		t.Fatalf("/config_dump = %d %s", code, body)
	}
	var dump struct {
		Configs []map[string]any `json:"configs"`
	}
	if err := json.Unmarshal([]byte(body), &dump); err != nil {
		t.Fatalf("decode: %v\n%s", err, body)
	}
	wantTypes := []string{
		"type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
		"type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
		"type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
		"type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
		"type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
	}
	if len(dump.Configs) != len(wantTypes) {
		t.Fatalf("%d configs, want %d:\n%s", len(dump.Configs), len(wantTypes), body)
	}
	for i, w := range wantTypes {
		if got := dump.Configs[i]["@type"]; got != w {
			t.Errorf("configs[%d][@type] = %v, want %s", i, got, w)
		}
	}
	for _, want := range []string{
		`"version_info": "c1"`, `"dynamic_active_clusters"`, `"connect_timeout": "10s"`,
		`"dynamic_endpoint_configs"`, `"cluster_name": "outbound|80||a.default.svc.cluster.local"`,
		`"dynamic_listeners"`, `"active_state"`, `"version_info": "l1"`, `"route_config_name": "outbound"`,
		`"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"`,
		`"dynamic_route_configs"`, `"version_info": "r1"`,
		`"dynamic_active_secrets"`, `"name": "ROOTCA"`, `"version_info": "s1"`, `"inline_string": "[redacted]"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("dump lacks %s", want)
		}
	}
	if strings.Contains(body, "versionInfo") || strings.Contains(body, "dynamicListeners") {
		t.Error("dump uses camelCase names; want Envoy's snake_case")
	}
}

func TestConfigDumpOneResource(t *testing.T) {
	h := New(Options{Config: sample(t)}).Handler()
	code, body := get(t, h, "GET", "/config_dump?resource=listeners")
	if code != 200 {
		t.Fatalf("= %d %s", code, body)
	}
	if !strings.Contains(body, "ListenersConfigDump") || strings.Contains(body, "ClustersConfigDump") {
		t.Fatalf("resource=listeners dumped:\n%s", body)
	}
	if code, body := get(t, h, "GET", "/config_dump?resource=scoped_routes"); code != 400 || !strings.Contains(body, "secrets") {
		t.Fatalf("resource=scoped_routes = %d %q, want 400 naming the kinds", code, body)
	}
}

// TestConfigDumpRedactsKeys: no private key leaves the proxy, neither from
// an SDS secret nor inlined in a cluster's or listener's TLS context.
func TestConfigDumpRedactsKeys(t *testing.T) {
	src := sample(t)
	leaf := mtlstest.NewCA(t, "other").Issue(t, mtlstest.LeafOptions{})
	inline := func(b []byte) *core.DataSource {
		return &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: b}}
	}
	ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{TlsCertificates: []*tlsv3.TlsCertificate{{
		CertificateChain: inline(leaf.CertPEM), PrivateKey: inline(leaf.KeyPEM)}}}}
	cl := proto.Clone(src[resource.ClusterType].Resources[0]).(*cluster.Cluster)
	cl.TransportSocket = mtlstest.Socket(t, ctx)
	l := proto.Clone(src[resource.ListenerType].Resources[0]).(*listener.Listener)
	l.FilterChains[0].TransportSocket = mtlstest.Socket(t, &tlsv3.DownstreamTlsContext{CommonTlsContext: ctx.CommonTlsContext})
	src[resource.ClusterType] = xdsclient.AckedType{Version: "c2", Resources: []proto.Message{cl}}
	src[resource.ListenerType] = xdsclient.AckedType{Version: "l2", Resources: []proto.Message{l}}
	secretKey := src[resource.SecretType].Resources[0].(*tlsv3.Secret).GetTlsCertificate().GetPrivateKey().GetInlineBytes()

	code, body := get(t, New(Options{Config: src}).Handler(), "GET", "/config_dump")
	if code != 200 {
		t.Fatalf("= %d %s", code, body)
	}
	for _, key := range [][]byte{leaf.KeyPEM, secretKey} {
		if strings.Contains(body, base64.StdEncoding.EncodeToString(key)) {
			t.Fatalf("a private key is in the dump:\n%s", body)
		}
	}
	if n := strings.Count(body, `"inline_string": "[redacted]"`); n != 3 {
		t.Fatalf("%d redacted keys, want 3 (secret, cluster, listener):\n%s", n, body)
	}
	if !strings.Contains(body, base64.StdEncoding.EncodeToString(leaf.CertPEM)) {
		t.Fatal("certificates are public and must stay in the dump")
	}
}

func TestConfigDumpBeforeAnyConfig(t *testing.T) {
	h := New(Options{}).Handler()
	code, body := get(t, h, "GET", "/config_dump")
	if code != 200 || !strings.Contains(body, "ListenersConfigDump") {
		t.Fatalf("empty dump = %d %s", code, body)
	}
}

func TestStartServesOnBoundAddress(t *testing.T) {
	s := New(Options{Address: "127.0.0.1:0", Ready: func() bool { return true }})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	resp, err := http.Get("http://" + s.Addr() + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "LIVE\n" {
		t.Fatalf("/ready over TCP = %d %q", resp.StatusCode, b)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + s.Addr() + "/ready"); err == nil {
		t.Fatal("still serving after Shutdown")
	}
}
