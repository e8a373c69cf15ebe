package controlplane

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/telemetry"
)

func startCP(t *testing.T, opts Options) *ControlPlane {
	t.Helper()
	opts.StateDir, opts.APIAddr, opts.XDSAddr = t.TempDir(), "127.0.0.1:0", "127.0.0.1:0"
	opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	cp, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-cp.Done() })
	return cp
}

// fetch sends one request; bearer, when given, is sent as the
// Authorization token.
func fetch(t *testing.T, method, url, body string, bearer ...string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if len(bearer) > 0 {
		req.Header.Set("Authorization", "Bearer "+bearer[0])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// TestRoutesAPIConsoleAndTelemetry: one address serves the API, the
// console and telemetry, each on its own paths.
func TestRoutesAPIConsoleAndTelemetry(t *testing.T) {
	cp := startCP(t, Options{})
	base := "http://" + cp.APIAddr()
	if cp.ConsoleToken() != "" || cp.ConsoleURL() != base+"/" {
		t.Fatalf("loopback console must be open: token %q url %s", cp.ConsoleToken(), cp.ConsoleURL())
	}
	l := map[string]string{"reporter": "source", "source_workload": "productpage-v1", "source_workload_namespace": "default",
		"destination_service": "reviews.default.svc.cluster.local", "destination_workload": "reviews-v1",
		"destination_workload_namespace": "default", "response_code": "200", "request_protocol": "http"}
	rep, _ := json.Marshal(telemetry.Report{Node: "n", Requests: []telemetry.RequestStat{{Labels: l, Count: 4}}})
	scoped, err := cp.MintJoinToken("default", "productpage", "test")
	if err != nil {
		t.Fatal(err)
	}
	if code, _, b := fetch(t, "POST", base+"/api/v1/telemetry", string(rep), scoped); code != 204 {
		t.Fatalf("intake = %d %s", code, b)
	}
	code, ct, b := fetch(t, "GET", base+"/metrics", "")
	if code != 200 || !strings.HasPrefix(ct, "text/plain") || !strings.Contains(b, `istio_requests_total{reporter="source",source_workload="productpage-v1"`) {
		t.Fatalf("/metrics = %d %s\n%s", code, ct, b)
	}
	code, _, b = fetch(t, "GET", base+"/api/v1/graph?window=10s", "")
	if code != 200 || !strings.Contains(b, `"id":"workload:default/productpage-v1->service:reviews.default.svc.cluster.local"`) {
		t.Fatalf("graph = %d %s", code, b)
	}
	if code, ct, b := fetch(t, "GET", base+"/", ""); code != 200 || !strings.HasPrefix(ct, "text/html") || !strings.Contains(b, `id="edge-labels"`) {
		t.Fatalf("console = %d %s", code, ct)
	}
	if code, _, b := fetch(t, "GET", base+"/healthz", ""); code != 200 || !strings.Contains(b, `"ok"`) {
		t.Fatalf("healthz = %d %s", code, b)
	}
	if code, _, b := fetch(t, "GET", base+"/api/v1/objects", ""); code != 200 || !strings.Contains(b, `"List"`) {
		t.Fatalf("objects = %d %s", code, b)
	}
	if code, _, b := fetch(t, "GET", base+"/nope", ""); code != 404 || !strings.Contains(b, `"error"`) {
		t.Fatalf("unknown path = %d %s, want the API's JSON 404", code, b)
	}
	for _, p := range []string{"/api/v1/services", "/api/v1/workloads", "/api/v1/traces"} {
		if code, _, b := fetch(t, "GET", base+p, ""); code != 200 {
			t.Fatalf("%s = %d %s", p, code, b)
		}
	}
}

func TestConsoleTokenProtectsReads(t *testing.T) {
	cp := startCP(t, Options{ConsoleToken: "tok", JoinTokenScope: JoinScopeMesh})
	base := "http://" + cp.APIAddr()
	if code, _, _ := fetch(t, "GET", base+"/api/v1/graph", ""); code != http.StatusUnauthorized {
		t.Fatalf("graph without token = %d", code)
	}
	// Proxies report with their join token, not the console's; on
	// loopback Prometheus scrapes without one.
	if code, _, _ := fetch(t, "POST", base+"/api/v1/telemetry", `{"node":"x"}`); code != http.StatusUnauthorized {
		t.Fatalf("intake without the join token = %d, want 401", code)
	}
	if code, _, _ := fetch(t, "POST", base+"/api/v1/telemetry", `{"node":"x"}`, "tok"); code != http.StatusUnauthorized {
		t.Fatalf("intake with the console token = %d, want 401", code)
	}
	if code, _, _ := fetch(t, "POST", base+"/api/v1/telemetry", `{"node":"x"}`, cp.JoinToken()); code != 204 {
		t.Fatalf("intake = %d", code)
	}
	if code, _, _ := fetch(t, "GET", base+"/metrics", ""); code != 200 {
		t.Fatalf("metrics = %d", code)
	}
	if got := cp.ConsoleURL(); got != base+"/?token=tok" {
		t.Fatalf("console URL = %s", got)
	}
}

func TestWorkloadOfMarksVMs(t *testing.T) {
	we := func(name string, labels, ann map[string]string) *config.Object {
		return &config.Object{Kind: config.KindWorkloadEntry, Meta: config.Meta{Name: name, Namespace: "default", Annotations: ann},
			Spec: &networking.WorkloadEntry{Address: "127.0.0.1", Labels: labels}}
	}
	proxied := map[string]string{config.AnnotationProxy: "sidecar~..."}
	for _, c := range []struct {
		o    *config.Object
		name string
		vm   bool
	}{
		// Named as the proxies name the workload in metrics: the
		// weft.io/workload label `weft run` sets, else the entry's name.
		{we("reviews-v1-abc", map[string]string{"app": "reviews", "version": "v1", config.LabelService: "reviews", config.LabelWorkload: "reviews-v1"}, proxied), "reviews-v1", false},
		{we("fedora01", map[string]string{"app": "service-b", "version": "vm", config.LabelWorkload: "fedora01"}, proxied), "fedora01", true},
		{we("db-host", map[string]string{"app": "mysql"}, nil), "db-host", true},
		{we("x", map[string]string{"app": "x", "version": "v2", LabelVM: "true"}, proxied), "x", true},
	} {
		w := workloadOf(c.o)
		if w.Name != c.name || w.VM != c.vm {
			t.Errorf("%s: got %s vm=%v, want %s vm=%v", c.o.Meta.Name, w.Name, w.VM, c.name, c.vm)
		}
	}
}

// TestInventoryInlineEndpoints: pods (inline endpoints naming their
// workload) are drawn as workloads of their service in the graph.
func TestInventoryInlineEndpoints(t *testing.T) {
	c := &ControlPlane{}
	c.snap.Store(model.Build(1, []*config.Object{{Kind: config.KindServiceEntry, Meta: config.Meta{Name: "reviews", Namespace: "shop"},
		Spec: &networking.ServiceEntry{Hosts: []string{"reviews.shop.svc.cluster.local"}, Endpoints: []*networking.WorkloadEntry{
			{Address: "10.0.0.1", Labels: map[string]string{config.LabelWorkload: "reviews-v1", "app": "reviews", "version": "v1"}},
			{Address: "10.0.0.2", Labels: map[string]string{config.LabelWorkload: "reviews-v1", "app": "reviews", "version": "v1"}},
			{Address: "10.0.0.3"},
		}}}}))
	inv := c.inventory()
	if len(inv.Workloads) != 1 || inv.Workloads[0].Name != "reviews-v1" || inv.Workloads[0].Version != "v1" {
		t.Fatalf("workloads %+v", inv.Workloads)
	}
	if len(inv.Services) != 1 || len(inv.Services[0].Workloads) != 1 {
		t.Errorf("services %+v", inv.Services)
	}
}
