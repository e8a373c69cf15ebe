// Package loadtester is weft's built-in stand-in for Flagger's load tester
// (flagger-loadtester): the webhook target that starts load tests and
// holds manual gates, so a Canary's webhooks work without installing
// anything. It speaks the same API:
//
//	POST /              a webhook payload whose metadata.cmd is a hey command:
//	                    the load runs in the background (once per command at a
//	                    time), 202 at once
//	POST /gate/check    200 if the canary's gate is open, 403 if closed (the default)
//	POST /gate/open     open it;  POST /gate/close  close it
//	POST /gate/approve  always 200;  POST /gate/halt  always 403
//	POST /rollback/check, /rollback/open, /rollback/close   the same for rollback
//
// The load goes through a mesh sidecar (Options.Client), so a URL such as
// http://reviews-canary.default:9080/ reaches the canary service and the
// requests are in the mesh's telemetry like any caller's.
package loadtester

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/weft-mesh/weft/loadgen"
)

// Options configure a Tester.
type Options struct {
	// Client returns the HTTP client that sends a load test's requests for
	// a canary in namespace: one going through a sidecar of the mesh.
	Client func(ctx context.Context, namespace string) (*http.Client, error)
	// Log receives what the load tests did; nil discards it.
	Log *slog.Logger
	// MaxRuns bounds the load tests running at once (default 16).
	MaxRuns int
}

// Tester is the load tester.
type Tester struct {
	opts Options
	log  *slog.Logger
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu       sync.Mutex
	running  map[string]bool // commands being run
	gates    map[string]bool // name.namespace -> open
	rollback map[string]bool
}

// New returns a Tester; Close stops its load tests.
func New(opts Options) *Tester {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxRuns <= 0 {
		opts.MaxRuns = 16
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Tester{opts: opts, log: opts.Log, ctx: ctx, stop: stop, running: map[string]bool{}, gates: map[string]bool{}, rollback: map[string]bool{}}
}

// Close stops the running load tests and waits for them.
func (t *Tester) Close() {
	t.stop()
	t.wg.Wait()
}

// payload is Flagger's webhook body.
type payload struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Phase     string            `json:"phase"`
	Metadata  map[string]string `json:"metadata"`
}

// ServeHTTP implements the load tester's API.
func (t *Tester) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "the load tester takes POST requests with a Flagger webhook payload", http.StatusMethodNotAllowed)
		return
	}
	var p payload
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&p); err != nil {
		http.Error(w, "want a Flagger webhook payload (JSON): "+err.Error(), http.StatusBadRequest)
		return
	}
	canary := p.Name + "." + p.Namespace
	path := "/" + strings.Trim(r.URL.Path, "/")
	if i := strings.Index(path, "/gate/"); i > 0 {
		path = path[i:] // mounted under a prefix
	} else if i := strings.Index(path, "/rollback/"); i > 0 {
		path = path[i:]
	}
	switch path {
	case "/gate/approve":
		fmt.Fprintln(w, "Approved")
	case "/gate/halt":
		http.Error(w, "Forbidden", http.StatusForbidden)
	case "/gate/check":
		t.answer(w, t.gates, canary)
	case "/gate/open", "/gate/close":
		t.set(t.gates, canary, path == "/gate/open")
		fmt.Fprintf(w, "gate of %s %s\n", canary, strings.TrimPrefix(path, "/gate/")+"ed")
	case "/rollback/check":
		t.answer(w, t.rollback, canary)
	case "/rollback/open", "/rollback/close":
		t.set(t.rollback, canary, path == "/rollback/open")
		fmt.Fprintf(w, "rollback gate of %s %s\n", canary, strings.TrimPrefix(path, "/rollback/")+"ed")
	default:
		t.command(w, p)
	}
}

func (t *Tester) answer(w http.ResponseWriter, m map[string]bool, canary string) {
	t.mu.Lock()
	open := m[canary]
	t.mu.Unlock()
	if !open {
		http.Error(w, "Forbidden", http.StatusForbidden)
		return
	}
	fmt.Fprintln(w, "Approved")
}

func (t *Tester) set(m map[string]bool, canary string, open bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if open {
		m[canary] = true
	} else {
		delete(m, canary)
	}
}

// command starts the load test metadata.cmd describes.
func (t *Tester) command(w http.ResponseWriter, p payload) {
	if typ := p.Metadata["type"]; typ != "" && typ != "cmd" {
		http.Error(w, fmt.Sprintf("weft's built-in load tester runs hey commands (metadata.cmd); type %q is not supported", typ), http.StatusBadRequest)
		return
	}
	cmd := strings.TrimSpace(p.Metadata["cmd"])
	if cmd == "" {
		http.Error(w, "metadata.cmd is required: a hey command such as \"hey -z 1m -q 10 -c 2 http://podinfo-canary.test:9898/\"", http.StatusBadRequest)
		return
	}
	o, err := loadgen.ParseHey(cmd)
	if err != nil {
		http.Error(w, "metadata.cmd: "+err.Error(), http.StatusBadRequest)
		return
	}
	t.mu.Lock()
	switch {
	case t.running[cmd]:
		t.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, "command %s is already running\n", cmd)
		return
	case len(t.running) >= t.opts.MaxRuns:
		t.mu.Unlock()
		http.Error(w, fmt.Sprintf("%d load tests are running already; try again when one ends", len(t.running)), http.StatusTooManyRequests)
		return
	}
	t.running[cmd] = true
	t.mu.Unlock()
	client, err := t.opts.Client(t.ctx, firstOf(p.Namespace, "default"))
	if err != nil {
		t.done(cmd)
		http.Error(w, "no way into the mesh for the load: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	o.Client = client
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer t.done(cmd)
		start := time.Now()
		s, err := loadgen.Run(t.ctx, o)
		if err != nil {
			t.log.Warn("load test failed", "canary", p.Name+"."+p.Namespace, "cmd", cmd, "err", err)
			return
		}
		var b strings.Builder
		s.Print(&b, o.URL)
		t.log.Info("load test done", "canary", p.Name+"."+p.Namespace, "cmd", cmd, "took", time.Since(start).Round(time.Millisecond),
			"requests", s.Total, "failed", s.Failed, "summary", strings.TrimSpace(b.String()))
	}()
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, "command %s started\n", cmd)
}

func (t *Tester) done(cmd string) {
	t.mu.Lock()
	delete(t.running, cmd)
	t.mu.Unlock()
}

func firstOf(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// IsLoadTester reports whether a webhook URL's host names Flagger's load
// tester service (flagger-loadtester, in any namespace form), which the
// built-in one answers for.
func IsLoadTester(host string) bool {
	name, _, _ := strings.Cut(host, ".")
	return name == "flagger-loadtester"
}

// Transport serves requests to the load tester's host names (IsLoadTester)
// with h in process, and passes any other to next.
func Transport(h http.Handler, next http.RoundTripper) http.RoundTripper {
	return &transport{h: h, next: next}
}

type transport struct {
	h    http.Handler
	next http.RoundTripper
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !IsLoadTester(req.URL.Hostname()) {
		return tr.next.RoundTrip(req)
	}
	rec := &recorder{header: http.Header{}, code: http.StatusOK}
	tr.h.ServeHTTP(rec, req)
	if req.Body != nil {
		req.Body.Close()
	}
	return &http.Response{
		Status: fmt.Sprintf("%d %s", rec.code, http.StatusText(rec.code)), StatusCode: rec.code,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: rec.header,
		Body: io.NopCloser(strings.NewReader(rec.body.String())), ContentLength: int64(rec.body.Len()), Request: req,
	}, nil
}

// recorder is the in-process response of a handler.
type recorder struct {
	header http.Header
	code   int
	wrote  bool
	body   strings.Builder
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}
