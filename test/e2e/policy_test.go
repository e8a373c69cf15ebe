package e2e

import (
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// serveJWKS serves doc at http://ADDR/jwks.json on loopback.
func serveJWKS(t *testing.T, doc string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(doc))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/jwks.json"
}

// TestRequestAuthenticationJWT follows Istio's "JWT on the ingress gateway"
// task: tokens are checked against a JWKS the control plane fetches; bad
// tokens get 401, a missing token passes until an AuthorizationPolicy asks
// for a request principal, and claims reach the app as headers.
func TestRequestAuthenticationJWT(t *testing.T) {
	is := newIssuer(t, "testing@secure.istio.io", "k1")
	other := newIssuer(t, "someone-else@example.com", "k1")
	jwksURL := serveJWKS(t, is.jwks())

	m := upMesh(t, "")
	m.echo("default", "echo", "v1")
	m.apply("default", edge(""))
	waitEcho(t, m)
	m.apply("istio-system", `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt-on-ingress}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  jwtRules:
  - issuer: testing@secure.istio.io
    jwksUri: `+jwksURL+`
    outputClaimToHeaders:
    - {header: x-jwt-group, claim: group}
`)
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	valid := is.token(t, map[string]any{"group": "admins"}, nil)
	eventually(t, 20*time.Second, "a valid token passes once the JWKS is fetched", func() error {
		code, body, err := get(m.gateway, "", "/headers", bearer(valid))
		if err != nil || code != 200 {
			return fmt.Errorf("%d %v %q", code, err, body)
		}
		if !strings.Contains(strings.ToLower(body), "x-jwt-group") || !strings.Contains(body, "admins") {
			return fmt.Errorf("claim header not forwarded: %q", body)
		}
		if strings.Contains(body, valid) {
			return fmt.Errorf("the token was forwarded to the app (forwardOriginalToken is false)")
		}
		return nil
	})
	cases := map[string]string{
		"expired":       is.token(t, map[string]any{"exp": time.Now().Add(-10 * time.Minute).Unix()}, nil),
		"wrong issuer":  other.token(t, nil, nil),
		"bad signature": is.token(t, nil, other.key),
		"garbage":       "not.a.jwt",
	}
	for name, tok := range cases {
		code, body, err := get(m.gateway, "", "/", bearer(tok))
		if err != nil || code != 401 {
			t.Errorf("%s token: %d %v %q; want 401", name, code, err, body)
		}
	}
	if code, _, err := get(m.gateway, "", "/", nil); err != nil || code != 200 {
		t.Errorf("no token, no policy: %d %v; want 200", code, err)
	}

	m.apply("istio-system", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: ALLOW
  rules:
  - from:
    - source: {requestPrincipals: ["testing@secure.istio.io/*"]}
`)
	eventually(t, 15*time.Second, "no token now gets 403", func() error {
		code, body, err := get(m.gateway, "", "/", nil)
		if err != nil || code != 403 || body != "RBAC: access denied" {
			return fmt.Errorf("%d %v %q", code, err, body)
		}
		return nil
	})
	if code, _, err := get(m.gateway, "", "/", bearer(valid)); err != nil || code != 200 {
		t.Errorf("valid token with require-jwt: %d %v", code, err)
	}
}

// TestBookinfoAuthorization follows Istio's "HTTP traffic" authorization
// task on Bookinfo: allow-nothing, then one viewer policy per service, each
// matching the caller's service account, plus a caller with the wrong
// identity and a DENY that beats an ALLOW.
func TestBookinfoAuthorization(t *testing.T) {
	m := upMesh(t, "bookinfo")
	const dir = "../../demo/bookinfo/security/"
	eventually(t, 60*time.Second, "productpage with reviews", func() error {
		code, body, err := get(m.gateway, "", "/productpage", nil)
		if err != nil || code != 200 || !strings.Contains(body, "Reviews served by") {
			return fmt.Errorf("%d %v", code, err)
		}
		return nil
	})
	pageShows := func(what string, want, notWant []string) {
		t.Helper()
		eventually(t, 20*time.Second, what, func() error {
			code, body, err := get(m.gateway, "", "/productpage", nil)
			if err != nil {
				return err
			}
			if len(want) == 0 && code != 403 {
				return fmt.Errorf("want 403, got %d", code)
			}
			for _, s := range want {
				if !strings.Contains(body, s) {
					return fmt.Errorf("%d: page lacks %q", code, s)
				}
			}
			for _, s := range notWant {
				if strings.Contains(body, s) {
					return fmt.Errorf("%d: page still shows %q", code, s)
				}
			}
			return nil
		})
	}

	m.applyFile("default", dir+"allow-nothing.yaml")
	pageShows("allow-nothing: 403", nil, nil)
	if _, body, _ := get(m.gateway, "", "/productpage", nil); body != "RBAC: access denied" {
		t.Errorf("denied body %q", body)
	}
	m.applyFile("default", dir+"productpage-viewer.yaml")
	pageShows("productpage-viewer", []string{"Error fetching product details!", "Error fetching product reviews!"}, nil)
	m.applyFile("default", dir+"details-viewer.yaml")
	pageShows("details-viewer", []string{"Error fetching product reviews!"}, []string{"Error fetching product details!"})
	m.applyFile("default", dir+"reviews-viewer.yaml")
	pageShows("reviews-viewer", []string{"Reviews served by"}, []string{"Error fetching product reviews!"})
	m.applyFile("default", dir+"ratings-viewer.yaml")
	pageShows("ratings-viewer", []string{"Reviews served by"}, []string{"currently unavailable"})

	// details-viewer admits bookinfo-productpage only: a mesh certificate
	// for another service account is refused with 403.
	ca := meshCA(t, m)
	details := m.inbound("default", "details", "v1")
	for sa, want := range map[string]int{"bookinfo-productpage": 200, "sleep": 403} {
		c := mtlsClient(ca.clientCert(t, "spiffe://cluster.local/ns/default/sa/"+sa), ca.pool, nil)
		code, body, err := mtlsGet(c, details, "/details/0")
		if err != nil || code != want {
			t.Errorf("details as %s: %d %v %q; want %d", sa, code, err, body, want)
		}
	}

	// DENY beats ALLOW: productpage-viewer allows every GET, this denies
	// the ones carrying x-block.
	m.apply("default", `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: block-header}
spec:
  selector: {matchLabels: {app: productpage}}
  action: DENY
  rules:
  - when:
    - {key: "request.headers[x-block]", values: ["yes"]}
`)
	eventually(t, 15*time.Second, "DENY beats ALLOW", func() error {
		code, body, err := get(m.gateway, "", "/productpage", map[string]string{"x-block": "yes"})
		if err != nil || code != 403 || body != "RBAC: access denied" {
			return fmt.Errorf("%d %v %q", code, err, body)
		}
		return nil
	})
	if code, _, err := get(m.gateway, "", "/productpage", map[string]string{"x-block": "no"}); err != nil || code != 200 {
		t.Errorf("x-block: no: %d %v", code, err)
	}
}

// TestLocalRateLimit: a RateLimit of 20 requests per 100 ms on the gateway
// admits, under a flood, 200 per second, within 5%, and answers the rest
// 429 with rate-limit headers. The rate is measured between the first and
// the last 429 of the flood (the bucket was empty at both), so how fast
// this machine happens to send does not enter: a pause of the client only
// lets the bucket fill to its burst, and what overflowed then is allowed.
func TestLocalRateLimit(t *testing.T) {
	m := upMesh(t, "")
	m.echo("default", "echo", "v1")
	m.apply("default", edge(""))
	waitEcho(t, m)
	m.apply("istio-system", `apiVersion: weft.io/v1alpha1
kind: RateLimit
metadata: {name: ingress}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  limit: {requests: 20, per: 100ms, burst: 20}
`)
	const rate, burst = 200.0, 20.0 // tokens per second, bucket size
	eventually(t, 15*time.Second, "the limit applies", func() error {
		for i := 0; i < 100; i++ {
			if code, _, _ := get(m.gateway, "", "/", nil); code == 429 {
				return nil
			}
		}
		return fmt.Errorf("no 429 in 100 quick requests")
	})

	type answer struct {
		at   time.Time
		code int
	}
	var other atomic.Int64
	var headerMu sync.Mutex
	var limitHeader string
	const workers, maxPerWorker, run = 8, 20000, 4 * time.Second
	answers := make([][]answer, workers)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < maxPerWorker && time.Since(start) < run; i++ {
				resp, err := client.Get("http://" + m.gateway + "/")
				if err != nil {
					other.Add(1)
					continue
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case 200, 429:
					answers[w] = append(answers[w], answer{time.Now(), resp.StatusCode})
				default:
					other.Add(1)
				}
				if resp.StatusCode == 429 {
					headerMu.Lock()
					limitHeader = resp.Header.Get("x-ratelimit-limit")
					headerMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	var all []answer
	for _, a := range answers {
		all = append(all, a...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	var first, last time.Time
	var admitted, limited int
	var lost float64 // tokens the bucket may have dropped while full
	for _, a := range all {
		if a.code != 429 {
			continue
		}
		limited++
		if first.IsZero() {
			first = a.at
		} else if gap := a.at.Sub(last).Seconds(); gap*rate > burst {
			lost += gap*rate - burst
		}
		last = a.at
	}
	for _, a := range all {
		if a.code == 200 && a.at.After(first) && !a.at.After(last) {
			admitted++
		}
	}
	window := last.Sub(first)
	expected := rate * window.Seconds()
	t.Logf("%d answers; between the first and last 429 (%v): %d admitted, %d limited; expected %.0f (at most %.0f dropped while the client paused); %d other",
		len(all), window.Round(time.Millisecond), admitted, limited, expected, lost, other.Load())
	if other.Load() > 0 {
		t.Errorf("%d requests failed otherwise", other.Load())
	}
	if limited < 2 || window < time.Second {
		t.Fatalf("the flood was limited %d times over %v: it did not exceed the rate", limited, window)
	}
	got := float64(admitted)
	if d := (got - expected) / expected; d > 0.05 {
		t.Errorf("admitted %.0f, expected %.0f: %.1f%% over the limit (> 5%%)", got, expected, d*100)
	}
	if d := (got - (expected - lost)) / expected; d < -0.05 {
		t.Errorf("admitted %.0f, expected %.0f (%.0f of them possibly dropped): %.1f%% short (> 5%%)", got, expected, lost, -d*100)
	}
	if n, err := strconv.Atoi(limitHeader); err != nil || n <= 0 {
		t.Errorf("x-ratelimit-limit on a 429: %q", limitHeader)
	}
}

// TestMembership: with a ServiceMeshMemberRoll listing "shop", a sidecar in
// namespace "outsider" gets no configuration (its weft run says why), until
// the roll lists it too.
func TestMembership(t *testing.T) {
	m := upMesh(t, "")
	m.apply("istio-system", `apiVersion: maistra.io/v1
kind: ServiceMeshMemberRoll
metadata: {name: default}
spec:
  members: [shop]
`)
	m.echo("shop", "echo", "v1")
	out := m.echo("outsider", "stray", "v1")
	eventually(t, 20*time.Second, "the outsider is refused", func() error {
		if o := out.output(); !strings.Contains(o, "not a member") {
			return fmt.Errorf("weft run output so far:\n%s", o)
		}
		return nil
	})
	weCount := func(ns string) int {
		var list struct{ Items []any }
		if err := jsonGet("http://"+m.api+"/api/v1/objects?kind=WorkloadEntry&namespace="+ns, &list); err != nil {
			t.Fatal(err)
		}
		return len(list.Items)
	}
	eventually(t, 20*time.Second, "the member registers", func() error {
		if weCount("shop") != 1 {
			return fmt.Errorf("shop has %d workload entries", weCount("shop"))
		}
		return nil
	})
	if n := weCount("outsider"); n != 0 {
		t.Errorf("the outsider registered %d workload entries", n)
	}
	m.apply("istio-system", `apiVersion: maistra.io/v1
kind: ServiceMeshMemberRoll
metadata: {name: default}
spec:
  members: [shop, outsider]
`)
	eventually(t, 30*time.Second, "the outsider joins once listed", func() error {
		if weCount("outsider") != 1 {
			return fmt.Errorf("outsider has %d workload entries", weCount("outsider"))
		}
		return nil
	})
}
