package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weft-mesh/weft/internal/testnet"
)

func get(t *testing.T, c *http.Client, rawURL string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	if c == nil {
		c = &http.Client{Transport: &http.Transport{Proxy: nil}}
		t.Cleanup(c.CloseIdleConnections)
	}
	req, err := http.NewRequest("GET", rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestLocalReplies(t *testing.T) {
	okUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "ok")
	}))
	defer okUp.Close()
	dead := testnet.Refusing(t)

	tests := []struct {
		name     string
		route    *routev3.Route
		eps      []string
		path     string
		code     int
		body     string
		flags    string
		upstream string
	}{
		{"ok", routeTo("c", 0), []string{hostOf(t, okUp.URL)}, "/", 200, "ok", "", hostOf(t, okUp.URL)},
		{"no route", &routev3.Route{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/only"}},
			Action: routeTo("c", 0).Action,
		}, []string{hostOf(t, okUp.URL)}, "/", 404, "", "NR", ""},
		{"no cluster", routeTo("outbound|80|v3|reviews", 0), []string{hostOf(t, okUp.URL)}, "/", 503, "", "NC", ""},
		{"no healthy upstream", routeTo("c", 0), nil, "/", 503, "no healthy upstream", "UH", ""},
		{"connect failure", routeTo("c", 0), []string{dead}, "/", 503,
			"upstream connect error or disconnect/reset before headers. reset reason: connection failure", "UF", dead},
		{"timeout", routeTo("c", 100*time.Millisecond), []string{hostOf(t, okUp.URL)}, "/slow", 504,
			"upstream request timeout", "UT", hostOf(t, okUp.URL)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := make(results, 10)
			r := simple(t, "127.0.0.1:0", 0, tt.eps...)
			r.Routes["rc"].VirtualHosts[0].Routes[0] = tt.route
			_, base := start(t, r, Options{OnRequest: res.hook})
			resp, body := get(t, nil, base+tt.path, nil)
			if resp.StatusCode != tt.code || body != tt.body {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tt.code, tt.body)
			}
			got := res.next(t)
			if got.Flags != tt.flags || got.Code != tt.code || got.Upstream != tt.upstream {
				t.Errorf("result = %+v, want flags %q code %d upstream %q", got, tt.flags, tt.code, tt.upstream)
			}
		})
	}
}

func TestForwardedHeaders(t *testing.T) {
	seen := make(chan *http.Request, 10)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r
		w.Header().Set("X-Upstream", "yes")
		w.Header().Set("Connection", "x-secret") // hop-by-hop, must not reach the client
		w.Header().Set("X-Secret", "1")
		io.WriteString(w, r.Method+" "+r.URL.RequestURI())
	}))
	defer up.Close()
	_, base := start(t, simple(t, "127.0.0.1:0", 0, hostOf(t, up.URL)), Options{})

	t.Run("set and passed", func(t *testing.T) {
		resp, body := get(t, nil, base+"/p/q?x=1&y=2", map[string]string{
			"End-User":        "jason",
			"X-Forwarded-For": "10.1.2.3",
			"Connection":      "X-Drop",
			"X-Drop":          "1",
		})
		if body != "GET /p/q?x=1&y=2" || resp.Header.Get("X-Upstream") != "yes" {
			t.Errorf("response %q %v", body, resp.Header)
		}
		r := <-seen
		if got := r.Header.Get("End-User"); got != "jason" {
			t.Errorf("end-user = %q", got)
		}
		if got := r.Header.Get("X-Forwarded-For"); got != "10.1.2.3, 127.0.0.1" {
			t.Errorf("x-forwarded-for = %q", got)
		}
		if got := r.Header.Get("X-Forwarded-Proto"); got != "http" {
			t.Errorf("x-forwarded-proto = %q", got)
		}
		if id := r.Header.Get("X-Request-Id"); !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
			t.Errorf("x-request-id = %q", id)
		}
		if r.Header.Get("X-Drop") != "" {
			t.Error("header named in Connection was forwarded")
		}
		if r.Host != hostOf(t, base) {
			t.Errorf("upstream Host = %q, want %q", r.Host, hostOf(t, base))
		}
		if resp.Header.Get("X-Secret") != "" {
			t.Error("response header named in Connection was forwarded")
		}
	})
	t.Run("request id kept", func(t *testing.T) {
		get(t, nil, base+"/", map[string]string{"X-Request-Id": "abc-123"})
		if got := (<-seen).Header.Get("X-Request-Id"); got != "abc-123" {
			t.Errorf("x-request-id = %q", got)
		}
	})
	t.Run("absolute form", func(t *testing.T) {
		pu, _ := url.Parse(base)
		c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
		defer c.CloseIdleConnections()
		resp, body := get(t, c, "http://catalog:8080/items?id=7", nil)
		if resp.StatusCode != 200 || body != "GET /items?id=7" {
			t.Errorf("got %d %q", resp.StatusCode, body)
		}
		if r := <-seen; r.Host != "catalog:8080" {
			t.Errorf("upstream Host = %q, want catalog:8080", r.Host)
		}
	})
	t.Run("post body", func(t *testing.T) {
		payload := strings.Repeat("x", 100<<10)
		resp, err := http.Post(base+"/upload", "text/plain", strings.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		r := <-seen
		if r.Method != "POST" || r.ContentLength != int64(len(payload)) {
			t.Errorf("upstream saw %s with length %d", r.Method, r.ContentLength)
		}
	})
}

// h2cClient speaks HTTP/2 with prior knowledge, as gRPC clients do.
func h2cClient() *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: p}}
}

func TestGRPCStyleH2C(t *testing.T) {
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 || r.Header.Get("Te") != "trailers" {
			w.WriteHeader(http.StatusHTTPVersionNotSupported)
			return
		}
		in, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		w.WriteHeader(200)
		w.Write(in)
		w.(http.Flusher).Flush()
		w.Write([]byte("-2"))
		w.Header().Set("Grpc-Status", "0")
		w.Header().Set(http.TrailerPrefix+"Grpc-Message", "done")
	}))
	up.Config.Protocols = new(http.Protocols)
	up.Config.Protocols.SetHTTP1(true)
	up.Config.Protocols.SetUnencryptedHTTP2(true)
	up.Start()
	defer up.Close()
	_, base := start(t, simple(t, "127.0.0.1:0", 0, hostOf(t, up.URL)), Options{})

	c := h2cClient()
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest("POST", base+"/pkg.Svc/Method", bytes.NewReader([]byte("frame-1")))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(body) != "frame-1-2" {
		t.Fatalf("got HTTP/%d %d %q", resp.ProtoMajor, resp.StatusCode, body)
	}
	if resp.Trailer.Get("Grpc-Status") != "0" || resp.Trailer.Get("Grpc-Message") != "done" {
		t.Errorf("trailers = %v", resp.Trailer)
	}
}

// gate is an upstream whose /slow requests block until released.
type gate struct {
	*httptest.Server
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate(t *testing.T, name string) *gate {
	g := &gate{arrived: make(chan struct{}, 10), release: make(chan struct{})}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			g.arrived <- struct{}{}
			<-g.release
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(func() { g.open(); g.Close() })
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

// slowGet starts GET url in the background and returns its outcome channel.
func slowGet(url string) chan string {
	out := make(chan string, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			out <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		out <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	return out
}

func TestConfigSwapKeepsInFlight(t *testing.T) {
	a, b := newGate(t, "a"), newGate(t, "b")
	p, base := start(t, simple(t, "127.0.0.1:0", 0, hostOf(t, a.URL)), Options{})
	addr := p.ListenerAddr("l").String()

	slow := slowGet(base + "/slow")
	<-a.arrived

	cfg, err := Compile(simple(t, "127.0.0.1:0", 0, hostOf(t, b.URL)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if p.Current() != cfg {
		t.Error("Current is not the new config")
	}
	if got := p.ListenerAddr("l").String(); got != addr {
		t.Errorf("listener rebound: %s -> %s", addr, got)
	}
	if _, body := get(t, nil, base+"/", nil); body != "b" {
		t.Errorf("new request went to %q, want b", body)
	}
	a.open()
	if got := <-slow; got != "200 a" {
		t.Errorf("in-flight request = %q, want 200 a", got)
	}
}

func TestListenerRemovalDrains(t *testing.T) {
	a := newGate(t, "a")
	r := simple(t, "127.0.0.1:0", 0, hostOf(t, a.URL))
	p, base := start(t, r, Options{})
	addr := p.ListenerAddr("l").String()

	slow := slowGet(base + "/slow")
	<-a.arrived

	delete(r.Listeners, "l")
	cfg, err := Compile(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if p.ListenerAddr("l") != nil {
		t.Error("removed listener still reported")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("removed listener still accepts connections")
	}
	select {
	case got := <-slow:
		t.Fatalf("in-flight request ended before release: %q", got)
	case <-time.After(50 * time.Millisecond):
	}
	a.open()
	if got := <-slow; got != "200 a" {
		t.Errorf("in-flight request = %q, want 200 a", got)
	}
}

func TestUpdateBindFailure(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	up := newGate(t, "up")
	r := simple(t, "127.0.0.1:0", 0, hostOf(t, up.URL))
	p, _ := start(t, r, Options{})
	before := p.Current()

	r.Listeners["m"] = rdsListener(t, "m", busy.Addr().String(), "rc")
	cfg, err := Compile(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Update(cfg); err == nil || !strings.Contains(err.Error(), `listener "m"`) {
		t.Errorf("Update = %v, want bind error naming listener m", err)
	}
	if p.Current() != before {
		t.Error("config swapped despite bind failure")
	}
}

func TestRoundRobinThroughProxy(t *testing.T) {
	counts := map[string]int{}
	var mu sync.Mutex
	var ups []string
	for _, name := range []string{"a", "b", "c"} {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			counts[name]++
			mu.Unlock()
		}))
		defer s.Close()
		ups = append(ups, hostOf(t, s.URL))
	}
	_, base := start(t, simple(t, "127.0.0.1:0", 0, ups...), Options{})
	c := &http.Client{}
	defer c.CloseIdleConnections()
	for range 300 {
		if resp, _ := get(t, c, base+"/", nil); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	for _, name := range []string{"a", "b", "c"} {
		if counts[name] != 100 {
			t.Errorf("counts = %v, want 100 each", counts)
			break
		}
	}
}

func TestShutdownDrains(t *testing.T) {
	a := newGate(t, "a")
	cfg, err := Compile(simple(t, "127.0.0.1:0", 0, hostOf(t, a.URL)))
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{})
	if err := p.Update(cfg); err != nil {
		t.Fatal(err)
	}
	slow := slowGet("http://" + p.ListenerAddr("l").String() + "/slow")
	<-a.arrived
	done := make(chan error, 1)
	go func() { done <- p.Shutdown(context.Background()) }()
	// The shutdown has begun (the listener is gone from the proxy) while
	// the request is still in flight.
	deadline := time.Now().Add(10 * time.Second)
	for p.ListenerAddr("l") != nil {
		if time.Now().After(deadline) {
			t.Fatal("Shutdown never took the listener down")
		}
		time.Sleep(time.Millisecond)
	}
	a.open()
	if got := <-slow; got != "200 a" {
		t.Errorf("in-flight request = %q", got)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if err := p.Update(cfg); err == nil {
		t.Error("Update after Shutdown succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := New(Options{}).Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown of idle proxy = %v", err)
	}
}

func TestNewRequestID(t *testing.T) {
	a, b := NewRequestID(), NewRequestID()
	if a == b || len(a) != 36 {
		t.Errorf("ids %q %q", a, b)
	}
}
