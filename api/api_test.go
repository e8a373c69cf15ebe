package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weft-mesh/weft/analyze"
	"github.com/weft-mesh/weft/api"
	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/store/bolt"
)

const seed = `apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: ingress-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - '*'
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: ingress-gateway
spec:
  hosts:
  - '*'
  gateways:
  - ingress-gateway
  http:
  - match:
    - uri:
        exact: /
    route:
    - destination:
        host: gateway
        port:
          number: 8080
`

// reviews is a service with two versions, routed to a subset.
const reviewsService = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - number: 9080
    name: http
    protocol: HTTP
  endpoints:
  - address: 127.0.0.1
    labels: {version: v1}
  - address: 127.0.0.2
    labels: {version: v2}
`

const reviewsToV2 = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
        subset: version-v2
`

type fixture struct {
	c     *client.Client
	store *bolt.Store
	srv   *httptest.Server
}

func newFixture(t *testing.T, opts api.Options) *fixture {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "weft.db"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(st, opts).Handler())
	t.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	return &fixture{c: client.New(srv.URL), store: st, srv: srv}
}

func src(name, content string) []client.Source {
	return []client.Source{{Name: name, Content: content}}
}

func actions(t *testing.T, resp *client.ApplyResponse) string {
	t.Helper()
	var parts []string
	for _, r := range resp.Results {
		parts = append(parts, r.Kind+"/"+r.Namespace+"/"+r.Name+"="+r.Action)
	}
	return strings.Join(parts, " ")
}

func mustApply(t *testing.T, c *client.Client, sources []client.Source, opts client.ApplyOptions) *client.ApplyResponse {
	t.Helper()
	resp, err := c.Apply(context.Background(), sources, opts)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return resp
}

func TestApplyCreatesThenUnchangedThenConfigured(t *testing.T) {
	f := newFixture(t, api.Options{})
	ctx := context.Background()

	resp := mustApply(t, f.c, src("coolapp.yaml", seed), client.ApplyOptions{})
	if got, want := actions(t, resp), "Gateway/default/ingress-gateway=created VirtualService/default/ingress-gateway=created"; got != want {
		t.Fatalf("first apply: %s\nwant %s", got, want)
	}
	if resp.Revision != 1 {
		t.Errorf("revision = %d, want 1", resp.Revision)
	}

	resp = mustApply(t, f.c, src("coolapp.yaml", seed), client.ApplyOptions{})
	if got, want := actions(t, resp), "Gateway/default/ingress-gateway=unchanged VirtualService/default/ingress-gateway=unchanged"; got != want {
		t.Fatalf("re-apply: %s\nwant %s", got, want)
	}

	modified := strings.Replace(seed, "number: 8080", "number: 8081", 1)
	resp = mustApply(t, f.c, src("coolapp.yaml", modified), client.ApplyOptions{})
	if got, want := actions(t, resp), "Gateway/default/ingress-gateway=unchanged VirtualService/default/ingress-gateway=configured"; got != want {
		t.Fatalf("modified apply: %s\nwant %s", got, want)
	}
	vs, _, err := f.c.Get(ctx, "vs", "default", "ingress-gateway", "")
	if err != nil {
		t.Fatal(err)
	}
	if vs.Meta.Generation != 2 || vs.Meta.ResourceVersion != "2" || vs.Meta.CreationTimestamp.IsZero() {
		t.Errorf("VirtualService meta after update = %+v", vs.Meta)
	}

	// Dry run reports without storing.
	dry := strings.Replace(seed, "number: 8080", "number: 9999", 1)
	resp = mustApply(t, f.c, append(src("coolapp.yaml", dry), src("more.yaml", strings.ReplaceAll(seed, "ingress-gateway", "other"))...), client.ApplyOptions{DryRun: true})
	if got, want := actions(t, resp), "Gateway/default/ingress-gateway=unchanged VirtualService/default/ingress-gateway=configured Gateway/default/other=created VirtualService/default/other=created"; got != want || !resp.DryRun {
		t.Fatalf("dry run: %s (dryRun=%v)\nwant %s", got, resp.DryRun, want)
	}
	list, err := f.c.List(ctx, "all", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 || list.Revision != 2 {
		t.Errorf("after dry run: %d objects at revision %d, want 2 at 2", len(list.Items), list.Revision)
	}
}

func TestApplyBadDocStoresNothing(t *testing.T) {
	f := newFixture(t, api.Options{})
	bad := seed + `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: gateway
spec:
  host: gateway
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBINISH
`
	_, err := f.c.Apply(context.Background(), src("coolapp.yaml", bad), client.ApplyOptions{})
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
		t.Fatalf("err = %v, want a 400 APIError", err)
	}
	if len(apiErr.Errors) != 1 {
		t.Fatalf("errors = %+v, want one", apiErr.Errors)
	}
	e := apiErr.Errors[0]
	if e.Source != "coolapp.yaml" || e.Doc != 3 || e.Kind != "DestinationRule" || e.Namespace != "default" || e.Name != "gateway" ||
		e.Field != "spec.trafficPolicy.loadBalancer.simple" {
		t.Errorf("error = %+v", e)
	}
	if !strings.Contains(apiErr.Message, "coolapp.yaml: document 3: DestinationRule default/gateway: spec.trafficPolicy.loadBalancer.simple") {
		t.Errorf("message = %q", apiErr.Message)
	}
	if list, _ := f.c.List(context.Background(), "", "", ""); len(list.Items) != 0 {
		t.Errorf("a refused batch stored %d objects", len(list.Items))
	}
}

func TestApplyNamespaceRules(t *testing.T) {
	f := newFixture(t, api.Options{})
	ctx := context.Background()
	inProd := strings.Replace(reviewsToV2, "name: reviews\n", "name: reviews\n  namespace: prod\n", 1)

	// Without -n the object's own namespace wins; -n fills in the rest.
	resp := mustApply(t, f.c, append(src("a.yaml", inProd), src("b.yaml", seed)...), client.ApplyOptions{Namespace: "prod"})
	if got := actions(t, resp); !strings.Contains(got, "VirtualService/prod/reviews=created") || !strings.Contains(got, "Gateway/prod/ingress-gateway=created") {
		t.Errorf("apply -n prod: %s", got)
	}

	// An explicit -n that disagrees is refused, in kubectl's words.
	_, err := f.c.Apply(ctx, src("a.yaml", inProd), client.ApplyOptions{Namespace: "dev", NamespaceExplicit: true})
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 400 ||
		!strings.Contains(apiErr.Message, `the namespace from the provided object "prod" does not match the namespace "dev"`) {
		t.Fatalf("mismatch: err = %v", err)
	}

	// The same object twice in one apply is refused.
	_, err = f.c.Apply(ctx, append(src("a.yaml", seed), src("b.yaml", seed)...), client.ApplyOptions{})
	if !errors.As(err, &apiErr) || apiErr.Status != 400 || !strings.Contains(apiErr.Message, "more than once") || !strings.Contains(apiErr.Message, "first in a.yaml") {
		t.Fatalf("duplicate: err = %v", err)
	}
}

func TestStrictRefusesOnWarning(t *testing.T) {
	f := newFixture(t, api.Options{})
	ctx := context.Background()
	mustApply(t, f.c, src("reviews-svc.yaml", reviewsService), client.ApplyOptions{})

	_, err := f.c.Apply(ctx, src("reviews.yaml", reviewsToV2), client.ApplyOptions{Strict: true})
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnprocessableEntity {
		t.Fatalf("strict: err = %v, want 422", err)
	}
	if !hasCode(apiErr.Messages, "WEFT0101") || !strings.Contains(apiErr.Message, "WEFT0101") {
		t.Errorf("strict refusal does not report WEFT0101: %q %+v", apiErr.Message, apiErr.Messages)
	}
	if _, _, err := f.c.Get(ctx, "vs", "default", "reviews", ""); !client.IsNotFound(err) {
		t.Errorf("strict refusal stored the object: err = %v", err)
	}

	// Without strict it is stored, and the warning still reported.
	resp := mustApply(t, f.c, src("reviews.yaml", reviewsToV2), client.ApplyOptions{})
	if actions(t, resp) != "VirtualService/default/reviews=created" || !hasCode(resp.Messages, "WEFT0101") {
		t.Errorf("non-strict: %s %+v", actions(t, resp), resp.Messages)
	}

	// Analysis of the store reports it; analysis of a fix does not.
	msgs, err := f.c.Analyze(ctx, "", nil)
	if err != nil || !hasCode(msgs, "WEFT0101") {
		t.Errorf("Analyze store: %+v, %v", msgs, err)
	}
	if msgs, err := f.c.Analyze(ctx, "other", nil); err != nil || len(msgs) != 0 {
		t.Errorf("Analyze namespace other: %+v, %v", msgs, err)
	}
	fix := `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: version-v2
    labels: {version: v2}
`
	msgs, err = f.c.Analyze(ctx, "", src("dr.yaml", fix))
	if err != nil || hasCode(msgs, "WEFT0101") {
		t.Errorf("Analyze with the fix: %+v, %v", msgs, err)
	}
	if _, _, err := f.c.Get(ctx, "dr", "default", "reviews", ""); !client.IsNotFound(err) {
		t.Errorf("POST analyze stored the object: err = %v", err)
	}
	// Strict apply of the fix succeeds.
	resp = mustApply(t, f.c, src("dr.yaml", fix), client.ApplyOptions{Strict: true})
	if actions(t, resp) != "DestinationRule/default/reviews=created" {
		t.Errorf("strict apply of fix: %s", actions(t, resp))
	}
}

func hasCode(msgs []analyze.Message, code string) bool {
	for _, m := range msgs {
		if m.Code == code {
			return true
		}
	}
	return false
}

func TestGetListFormats(t *testing.T) {
	f := newFixture(t, api.Options{})
	ctx := context.Background()
	mustApply(t, f.c, src("coolapp.yaml", seed), client.ApplyOptions{})

	obj, y, err := f.c.Get(ctx, "virtualservices", "default", "ingress-gateway", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(y), "kind: VirtualService") || !strings.Contains(string(y), "resourceVersion: \"1\"") || obj.Meta.ResourceVersion != "1" {
		t.Errorf("get -o yaml:\n%s", y)
	}
	// What get prints applies back unchanged.
	resp := mustApply(t, f.c, src("got.yaml", string(y)), client.ApplyOptions{})
	if actions(t, resp) != "VirtualService/default/ingress-gateway=unchanged" {
		t.Errorf("re-applying get -o yaml: %s", actions(t, resp))
	}

	_, js, err := f.c.Get(ctx, "VirtualService", "default", "ingress-gateway", "json")
	if err != nil || !json.Valid(js) {
		t.Fatalf("get -o json: %v\n%s", err, js)
	}

	list, err := f.c.List(ctx, "gw", "default", "")
	if err != nil || len(list.Items) != 1 || list.Items[0].Kind != config.KindGateway || list.Revision != 1 {
		t.Fatalf("list gw: %+v, %v", list, err)
	}
	list, err = f.c.List(ctx, "all", "", "yaml")
	if err != nil || strings.Count(string(list.Raw), "kind: ") != 2 || list.Revision != 1 {
		t.Fatalf("list all -o yaml: %v\n%s", err, list.Raw)
	}
	list, err = f.c.List(ctx, "", "", "json")
	if err != nil || !strings.Contains(string(list.Raw), `"kind": "List"`) {
		t.Fatalf("list -o json: %v\n%s", err, list.Raw)
	}
	if list, _ := f.c.List(ctx, "", "elsewhere", ""); len(list.Items) != 0 {
		t.Errorf("list in an empty namespace: %d objects", len(list.Items))
	}

	_, _, err = f.c.Get(ctx, "vs", "default", "nope", "")
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 404 || apiErr.Message != `virtualservices.networking.istio.io "nope" not found` {
		t.Errorf("get missing: %v", err)
	}
	if _, err := f.c.List(ctx, "pods", "", ""); !errors.As(err, &apiErr) || apiErr.Status != 400 || !strings.Contains(apiErr.Message, `resource type "pods"`) {
		t.Errorf("list unknown kind: %v", err)
	}
}

func TestDelete(t *testing.T) {
	f := newFixture(t, api.Options{})
	ctx := context.Background()
	mustApply(t, f.c, src("coolapp.yaml", seed), client.ApplyOptions{})

	res, err := f.c.Delete(ctx, "vs", "default", "ingress-gateway")
	if err != nil || len(res) != 1 || res[0].Action != "deleted" || res[0].Kind != "VirtualService" {
		t.Fatalf("Delete: %+v, %v", res, err)
	}
	if _, err := f.c.Delete(ctx, "vs", "default", "ingress-gateway"); !client.IsNotFound(err) ||
		err.Error() != `virtualservices.networking.istio.io "ingress-gateway" not found` {
		t.Fatalf("Delete again: %v", err)
	}

	// Delete by file is all-or-nothing: the VirtualService is already gone.
	if _, err := f.c.DeleteSources(ctx, src("coolapp.yaml", seed), client.DeleteOptions{}); !client.IsNotFound(err) {
		t.Fatalf("DeleteSources with a missing object: %v", err)
	}
	if _, _, err := f.c.Get(ctx, "gw", "default", "ingress-gateway", ""); err != nil {
		t.Fatalf("failed delete removed the Gateway: %v", err)
	}
	res, err = f.c.DeleteSources(ctx, src("coolapp.yaml", seed), client.DeleteOptions{IgnoreNotFound: true})
	if err != nil || len(res) != 1 || res[0].Kind != "Gateway" {
		t.Fatalf("DeleteSources --ignore-not-found: %+v, %v", res, err)
	}
	if list, _ := f.c.List(ctx, "", "", ""); len(list.Items) != 0 {
		t.Errorf("%d objects left", len(list.Items))
	}
}

type fakeProxies struct{ list []api.ProxyInfo }

func (f fakeProxies) Proxies() []api.ProxyInfo { return f.list }
func (f fakeProxies) ProxyConfig(id, kind string) ([]byte, error) {
	return []byte(`{"proxy":"` + id + `","kind":"` + kind + `"}`), nil
}

func TestProxies(t *testing.T) {
	ctx := context.Background()
	none := newFixture(t, api.Options{})
	var apiErr *client.APIError
	if _, err := none.c.Proxies(ctx); !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable {
		t.Errorf("no ProxySource: %v", err)
	}

	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	f := newFixture(t, api.Options{Proxies: fakeProxies{[]api.ProxyInfo{
		{ID: "sidecar~10.0.0.2~reviews-v2-1.default~default.svc.cluster.local", Name: "reviews-v2-1", Namespace: "default", Workload: "reviews-v2", Type: "sidecar", Connected: true, ConnectedAt: at},
		{ID: "sidecar~10.0.0.1~reviews-v1-1.default~default.svc.cluster.local", Name: "reviews-v1-1", Namespace: "default", Workload: "reviews", Type: "sidecar"},
		{ID: "sidecar~10.0.0.3~reviews-v1-2.default~default.svc.cluster.local", Name: "reviews-v1-2", Namespace: "default", Workload: "reviews", Type: "sidecar"},
	}}})
	all, err := f.c.Proxies(ctx)
	if err != nil || len(all) != 3 || all[0].Name != "reviews-v1-1" {
		t.Fatalf("Proxies: %+v, %v", all, err)
	}
	if got, _ := f.c.FindProxies(ctx, "reviews-v2"); len(got) != 1 || !got[0].Connected || !got[0].ConnectedAt.Equal(at) {
		t.Errorf("FindProxies(reviews-v2) = %+v", got)
	}
	if got, _ := f.c.FindProxies(ctx, "reviews"); len(got) != 2 {
		t.Errorf("FindProxies(reviews) = %d proxies, want 2", len(got))
	}

	data, err := f.c.ProxyConfig(ctx, "reviews-v2-1", "routes")
	if err != nil || !strings.Contains(string(data), `"proxy": "sidecar~10.0.0.2~`) {
		t.Errorf("ProxyConfig by name: %s, %v", data, err)
	}
	if _, err := f.c.ProxyConfig(ctx, "reviews", "routes"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict {
		t.Errorf("ambiguous proxy: %v", err)
	}
	if _, err := f.c.ProxyConfig(ctx, "ghost", "routes"); !client.IsNotFound(err) {
		t.Errorf("unknown proxy: %v", err)
	}
	if _, err := f.c.ProxyConfig(ctx, "reviews-v2-1", "bogus"); !errors.As(err, &apiErr) || apiErr.Status != 400 {
		t.Errorf("unknown kind: %v", err)
	}
}

func TestErrorsAreJSON(t *testing.T) {
	f := newFixture(t, api.Options{})
	for _, tc := range []struct {
		method, path string
		body         string
		status       int
	}{
		{"GET", "/api/v1/nothing", "", 404},
		{"PUT", "/api/v1/apply", "", 405},
		{"POST", "/api/v1/apply", "not json", 400},
		{"POST", "/api/v1/apply", `{"sources":[]}`, 400},
		{"POST", "/api/v1/apply?strict=maybe", `{"sources":[{"name":"a","content":""}]}`, 400},
		{"GET", "/api/v1/objects?format=xml", "", 400},
	} {
		req, _ := http.NewRequest(tc.method, f.srv.URL+tc.path, strings.NewReader(tc.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body api.ErrorResponse
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || err != nil || body.Error == "" || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %q (%v), want %d with a JSON error", tc.method, tc.path, resp.StatusCode, body.Error, err, tc.status)
		}
	}
	if _, err := f.c.Health(context.Background()); err != nil {
		t.Errorf("Health: %v", err)
	}
}
