package status

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestParseProbers(t *testing.T) {
	p, err := ParseProbers(`{"/app-health/reviews/readyz":{"httpGet":{"path":"/health","port":9080,"scheme":"HTTP"},"timeoutSeconds":1},
		"/app-health/reviews/livez":{"tcpSocket":{"port":"9080"}}}`)
	if err != nil {
		t.Fatal(err)
	}
	if r := p["/app-health/reviews/readyz"]; r == nil || r.HTTPGet.Path != "/health" || r.HTTPGet.Port != 9080 || r.TimeoutSeconds != 1 {
		t.Errorf("readyz %+v", r)
	}
	if l := p["/app-health/reviews/livez"]; l == nil || l.TCPSocket.Port != 9080 {
		t.Errorf("livez %+v", l)
	}
	if p, err := ParseProbers(""); err != nil || len(p) != 0 {
		t.Errorf("empty: %v %v", p, err)
	}
	for _, c := range []struct{ in, want string }{
		{`{"/app-health/a/readyz":{"httpGet":{"port":"http"}}}`, "a named port must be resolved"},
		{`{"/app-health/a/readyz":{"grpc":{"port":9090}}}`, "grpc probes are not supported"},
		{`{"/app-health/a/readyz":{"httpGet":{"port":1},"tcpSocket":{"port":1}}}`, "exactly one of httpGet, tcpSocket"},
		{`{"/app-health/a/readyz":{}}`, "exactly one of"},
		{`{"/app-health/a/readyz":{"exec":{"command":["true"]}}}`, `unknown field "exec"`},
		{`{"/healthz":{"tcpSocket":{"port":1}}}`, "paths start with /app-health/"},
		{`{"/app-health/a/readyz":{"httpGet":{"port":1,"scheme":"FTP"}}}`, `httpGet.scheme "FTP"`},
		{`[1]`, ProbersEnv},
	} {
		if _, err := ParseProbers(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.in, err, c.want)
		}
	}
}

// refusing returns a TCP port bound on 127.0.0.1 that does not listen:
// connections to it are refused for as long as the test runs.
func refusing(t *testing.T) uint16 {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(sa.(*syscall.SockaddrInet4).Port)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestServers(t *testing.T) {
	var seenFrom, seenHeader atomic.Value
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		seenFrom.Store(host)
		seenHeader.Store(r.Header.Get("X-Probe"))
		switch r.URL.Path {
		case "/health":
			fmt.Fprintln(w, "fine")
		case "/slow":
			time.Sleep(1500 * time.Millisecond)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	})}
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Serve(appLn)
	defer app.Close()
	port := appLn.Addr().(*net.TCPAddr).Port
	closed := refusing(t)
	probes, err := ParseProbers(fmt.Sprintf(`{
		"/app-health/app/readyz": {"httpGet": {"path": "/health", "port": %[1]d, "httpHeaders": [{"name": "X-Probe", "value": "yes"}]}},
		"/app-health/app/livez": {"tcpSocket": {"port": %[1]d}},
		"/app-health/app/startupz": {"httpGet": {"path": "/broken", "port": %[1]d}},
		"/app-health/down/livez": {"tcpSocket": {"port": %[2]d}},
		"/app-health/slow/readyz": {"httpGet": {"path": "/slow", "port": %[1]d}, "timeoutSeconds": 1}}`, port, closed))
	if err != nil {
		t.Fatal(err)
	}
	var ready atomic.Bool
	s, err := Start(Options{
		HealthAddr: "127.0.0.1:0", StatusAddr: "127.0.0.1:0", StatsAddr: "127.0.0.1:0",
		Ready: ready.Load, Probes: probes, PodIP: "127.0.0.1", ProbeSource: "127.0.0.6",
		Stats: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "istio_requests_total 1") }),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	health, status, stats := "http://"+s.Addr("health"), "http://"+s.Addr("status"), "http://"+s.Addr("stats")

	if code, _ := get(t, health+"/healthz/ready"); code != 503 {
		t.Errorf("readiness before the first configuration: %d", code)
	}
	ready.Store(true)
	for _, u := range []string{health + "/healthz/ready", status + "/healthz/ready"} {
		if code, body := get(t, u); code != 200 || body != "ready" {
			t.Errorf("%s: %d %q", u, code, body)
		}
	}
	for _, c := range []struct {
		path string
		code int
	}{
		{"/app-health/app/readyz", 200},
		{"/app-health/app/livez", 200},
		{"/app-health/app/startupz", 503}, // the app answers 500
		{"/app-health/down/livez", 503},   // refused
		{"/app-health/slow/readyz", 503},  // slower than timeoutSeconds
		{"/app-health/other/readyz", 404},
	} {
		if code, body := get(t, status+c.path); code != c.code {
			t.Errorf("%s: %d %q, want %d", c.path, code, body, c.code)
		}
	}
	get(t, status+"/app-health/app/readyz")
	if seenFrom.Load() != "127.0.0.6" || seenHeader.Load() != "yes" {
		t.Errorf("the app saw the probe from %v with X-Probe %v", seenFrom.Load(), seenHeader.Load())
	}
	for _, u := range []string{stats + "/stats/prometheus", status + "/stats/prometheus"} {
		if code, body := get(t, u); code != 200 || body != "istio_requests_total 1" {
			t.Errorf("%s: %d %q", u, code, body)
		}
	}
	if code, _ := get(t, health+"/app-health/app/readyz"); code != 404 {
		t.Errorf("the readiness port serves app probes: %d", code)
	}
}

func TestStartFailsOnBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Start(Options{HealthAddr: "127.0.0.1:0", StatsAddr: ln.Addr().String(), Ready: func() bool { return true }})
	if err == nil || !strings.Contains(err.Error(), "stats server") {
		t.Errorf("error %v", err)
	}
}
