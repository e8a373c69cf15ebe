package observe

import (
	"net/http"
	"net/http/httptest"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/proxy/runtime"
	"github.com/weft-mesh/weft/proxy/stats"
	"github.com/weft-mesh/weft/xds/node"
)

// destLabels sends one request with Host host through r's listener, tapped
// for a proxy described by meta, and returns the destination_service*
// labels and response_flags of the one series it made.
func destLabels(t *testing.T, meta *node.Meta, r *runtime.Resources, host string) [4]string {
	t.Helper()
	reg := stats.NewRegistry(0)
	base := serve(t, r, New(Options{Meta: meta, Stats: reg}))
	req, _ := http.NewRequest("GET", base+"/", nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	reqs := reg.Delta().Requests
	if len(reqs) != 1 {
		t.Fatalf("series %+v", reqs)
	}
	l := reqs[0].Labels
	return [4]string{l["destination_service"], l["destination_service_name"], l["destination_service_namespace"], l["response_flags"]}
}

// withDomains returns l with its one virtual host restricted to domains,
// so any other Host matches no route (NR).
func withDomains(t *testing.T, l *listenerv3.Listener, domains ...string) *listenerv3.Listener {
	t.Helper()
	f := l.GetFilterChains()[0].GetFilters()[0]
	m := &hcmv3.HttpConnectionManager{}
	if err := f.GetTypedConfig().UnmarshalTo(m); err != nil {
		t.Fatal(err)
	}
	m.GetRouteConfig().GetVirtualHosts()[0].Domains = domains
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
	return l
}

// TestDestinationServiceLabels: Istio's rules for destination_service,
// _name and _namespace. Only a mesh host (NAME.NS.svc.cluster.local) says a
// namespace; no namespace is ever read out of an IP address or another
// host; a gateway names nothing from the Host header.
func TestDestinationServiceLabels(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer app.Close()
	gateway := &node.Meta{Type: node.Router, Name: "gw", Namespace: "istio-system", WorkloadName: "istio-ingressgateway"}
	sidecar := &node.Meta{Type: node.Sidecar, Name: "p", Namespace: "default", WorkloadName: "productpage-v1"}
	noRoute := func() *runtime.Resources {
		r := oneHop(t, corev3.TrafficDirection_OUTBOUND, reviews, hostOf(app.URL), nil)
		r.Listeners["l"] = withDomains(t, r.Listeners["l"], "reviews.default.svc.cluster.local")
		return r
	}
	const ext = "outbound|80||foo.example.com"
	for _, tc := range []struct {
		name string
		meta *node.Meta
		r    *runtime.Resources
		host string
		want [4]string
	}{
		// The case: a request to the gateway's own address that no
		// route takes was "127.0.0.1", name "127", namespace "0".
		{"gateway NR, address", gateway, noRoute(), "127.0.0.1:38080", [4]string{"unknown", "unknown", "unknown", "NR"}},
		{"gateway NR, host", gateway, noRoute(), "foo.example.com", [4]string{"unknown", "unknown", "unknown", "NR"}},
		// A sidecar falls back to the Host header, as Istio's do, but
		// never splits it into a name and a namespace.
		{"sidecar NR, host", sidecar, noRoute(), "foo.example.com", [4]string{"foo.example.com", "foo.example.com", "unknown", "NR"}},
		{"sidecar NR, address", sidecar, noRoute(), "127.0.0.1:9", [4]string{"127.0.0.1", "127.0.0.1", "unknown", "NR"}},
		{"sidecar NR, mesh host", sidecar, noRoute(), "ratings.default.svc.cluster.local:9080",
			[4]string{"ratings.default.svc.cluster.local", "ratings", "default", "NR"}},
		// A ServiceEntry host is its own name (Istio's service name for
		// it); its namespace is the answering workload's, if known.
		{"service entry, workload", sidecar, oneHop(t, corev3.TrafficDirection_OUTBOUND, ext, hostOf(app.URL),
			map[string]any{"workload": "foo-v1", "namespace": "shop"}), "foo.example.com",
			[4]string{"foo.example.com", "foo.example.com", "shop", "-"}},
		{"service entry, external", sidecar, oneHop(t, corev3.TrafficDirection_OUTBOUND, ext, hostOf(app.URL), nil), "foo.example.com",
			[4]string{"foo.example.com", "foo.example.com", "unknown", "-"}},
		{"mesh service", gateway, oneHop(t, corev3.TrafficDirection_OUTBOUND, reviews, hostOf(app.URL), nil), "bookinfo.example.com",
			[4]string{"reviews.default.svc.cluster.local", "reviews", "default", "-"}},
		// Inbound without a peer header: this workload's own service, not
		// the authority; an address names no service; the namespace is
		// this workload's.
		{"inbound, own service", &node.Meta{Type: node.Sidecar, Name: "r", Namespace: "default", WorkloadName: "ratings-v1",
			Labels: map[string]string{config.LabelService: "ratings"}},
			oneHop(t, corev3.TrafficDirection_INBOUND, "inbound|9080||", hostOf(app.URL), nil), "127.0.0.1:15006",
			[4]string{"ratings.default.svc.cluster.local", "ratings", "default", "-"}},
		{"inbound, address", &node.Meta{Type: node.Sidecar, Name: "r", Namespace: "default", WorkloadName: "ratings-v1"},
			oneHop(t, corev3.TrafficDirection_INBOUND, "inbound|9080||", hostOf(app.URL), nil), "127.0.0.1:15006",
			[4]string{"unknown", "unknown", "default", "-"}},
	} {
		if got := destLabels(t, tc.meta, tc.r, tc.host); got != tc.want {
			t.Errorf("%s: destination_service, _name, _namespace, response_flags = %q, want %q", tc.name, got, tc.want)
		}
	}
}
