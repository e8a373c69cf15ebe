package e2e

import (
	"fmt"
	"regexp"
	"testing"
	"time"
)

// istioYAML is routing written the way Istio's documentation writes it,
// for an app that is not one of weft's demos.
const istioYAML = `apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata:
  name: shop-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*.example.com"]
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews.shop.svc.cluster.local
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
  - name: v3
    labels: {version: v3}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: reviews-edge
spec:
  hosts: ["reviews.example.com"]
  gateways: ["shop-gateway"]
  http:
  - name: jason
    match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination: {host: reviews, subset: v2}
  - name: ratings-api-or-canary
    match:
    - uri:
        regex: "/api/v[0-9]+/ratings"
    - queryParams:
        canary:
          exact: "true"
    route:
    - destination: {host: reviews, subset: v3, port: {number: 8080}}
  - name: static
    match:
    - uri: {prefix: /static/}
      ignoreUriCase: true
      method: {exact: GET}
    route:
    - destination: {host: reviews, subset: v2}
  - name: beta-header-absent
    match:
    - uri: {prefix: /beta}
      withoutHeaders:
        x-beta-opt-out: {}
    route:
    - destination: {host: reviews, subset: v3}
  - route:
    - destination: {host: reviews.shop.svc.cluster.local, subset: v1}
`

var versionOf = regexp.MustCompile(`^catalog (v\d) from`)

func TestIstioRoutingSemantics(t *testing.T) {
	m := upMesh(t, "")
	for _, v := range []string{"v1", "v2", "v3"} {
		m.run("shop", "reviews", "app=reviews,version="+v, weftBin, "demo-app", "coolapp", "catalog")
	}
	m.apply("shop", istioYAML)

	cases := []struct {
		name, host, path string
		headers          map[string]string
		code             int
		version          string
	}{
		{"default route", "reviews.example.com", "/", nil, 200, "v1"},
		{"header match", "reviews.example.com", "/", map[string]string{"end-user": "jason"}, 200, "v2"},
		{"header mismatch", "reviews.example.com", "/", map[string]string{"end-user": "jasonx"}, 200, "v1"},
		{"regex is a full match", "reviews.example.com", "/api/v12/ratings", nil, 200, "v3"},
		{"regex not a prefix match", "reviews.example.com", "/api/v1/ratings/5", nil, 200, "v1"},
		{"second match of a route (OR)", "reviews.example.com", "/products?canary=true", nil, 200, "v3"},
		{"query param mismatch", "reviews.example.com", "/products?canary=false", nil, 200, "v1"},
		{"ignoreUriCase", "reviews.example.com", "/STATIC/app.js", nil, 200, "v2"},
		{"withoutHeaders, header absent", "reviews.example.com", "/beta/x", nil, 200, "v3"},
		{"withoutHeaders, header present", "reviews.example.com", "/beta/x", map[string]string{"x-beta-opt-out": "1"}, 200, "v1"},
		{"host with port", "reviews.example.com:80", "/", map[string]string{"end-user": "jason"}, 200, "v2"},
		{"gateway wildcard host without VirtualService", "other.example.com", "/", nil, 404, ""},
		{"host the gateway does not serve", "reviews.example.org", "/", nil, 404, ""},
	}
	eventually(t, 60*time.Second, "routes in effect", func() error {
		for _, v := range []string{"v1", "v2", "v3"} {
			h := map[string]string{}
			path := "/"
			switch v {
			case "v2":
				h["end-user"] = "jason"
			case "v3":
				path = "/api/v1/ratings"
			}
			code, body, err := get(m.gateway, "reviews.example.com", path, h)
			if err != nil {
				return err
			}
			if mm := versionOf.FindStringSubmatch(body); code != 200 || mm == nil || mm[1] != v {
				return fmt.Errorf("%s: got %d %q", v, code, body)
			}
		}
		return nil
	})
	for _, tc := range cases {
		for i := 0; i < 5; i++ { // several instances of a subset never mix versions
			code, body, err := get(m.gateway, tc.host, tc.path, tc.headers)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			got := ""
			if mm := versionOf.FindStringSubmatch(body); mm != nil {
				got = mm[1]
			}
			if code != tc.code || got != tc.version {
				t.Errorf("%s: Host %s %s %v: got %d %q, want %d %s", tc.name, tc.host, tc.path, tc.headers, code, body, tc.code, tc.version)
				break
			}
		}
	}
}
