// Package echo is a small HTTP app for trying mesh features by hand and in
// tests: it answers who it is, can be told to fail or be slow, and shows
// the request it received.
//
//	GET /anything          "echo v1 from 'INSTANCE': N"
//	GET /headers           the request's headers, as JSON
//	GET /status/CODE       answers CODE
//	GET /delay/DURATION    answers after DURATION (e.g. /delay/2s)
//	POST /control?fail=CODE&every=N&delay=D
//	                       from now on fail every Nth request (N=1: all)
//	                       with CODE, and delay each answer by D; fail=0
//	                       clears failures
//
// ECHO_FAIL, ECHO_FAIL_EVERY and ECHO_DELAY set the same at start.
package echo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/weft-mesh/weft/demo/internal/demoapp"
)

// behaviour is what /control sets; swapped atomically as a whole.
type behaviour struct {
	failCode int
	every    int64
	delay    time.Duration
}

type app struct {
	version, instance string
	count             atomic.Int64
	b                 atomic.Pointer[behaviour]
}

// Serve runs the echo app on 127.0.0.1:$PORT until ctx is done.
func Serve(ctx context.Context) error {
	a := &app{version: os.Getenv("VERSION"), instance: os.Getenv("HOSTNAME")}
	b, err := parse(os.Getenv("ECHO_FAIL"), os.Getenv("ECHO_FAIL_EVERY"), os.Getenv("ECHO_DELAY"))
	if err != nil {
		return fmt.Errorf("echo: environment: %w", err)
	}
	a.b.Store(b)
	return demoapp.Serve(ctx, "echo", a)
}

// Handler returns the app's handler, for tests.
func Handler(version, instance string) http.Handler {
	a := &app{version: version, instance: instance}
	a.b.Store(&behaviour{})
	return a
}

func parse(fail, every, delay string) (*behaviour, error) {
	b := &behaviour{every: 1}
	var err error
	if fail != "" {
		if b.failCode, err = strconv.Atoi(fail); err != nil || (b.failCode != 0 && (b.failCode < 200 || b.failCode > 599)) {
			return nil, fmt.Errorf("fail %q: want an HTTP status code or 0", fail)
		}
	}
	if every != "" {
		if b.every, err = strconv.ParseInt(every, 10, 64); err != nil || b.every < 1 {
			return nil, fmt.Errorf("every %q: want a positive integer", every)
		}
	}
	if delay != "" {
		if b.delay, err = time.ParseDuration(delay); err != nil || b.delay < 0 {
			return nil, fmt.Errorf("delay %q: want a duration such as 200ms", delay)
		}
	}
	return b, nil
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-echo-instance", a.instance)
	w.Header().Set("x-echo-version", a.version)
	switch {
	case r.URL.Path == "/control" && r.Method == http.MethodPost:
		q := r.URL.Query()
		b, err := parse(q.Get("fail"), q.Get("every"), q.Get("delay"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a.b.Store(b)
		fmt.Fprintf(w, "ok: fail=%d every=%d delay=%s\n", b.failCode, b.every, b.delay)
		return
	case r.URL.Path == "/health":
		fmt.Fprintln(w, "ok")
		return
	}
	n := a.count.Add(1)
	b := a.b.Load()
	if !sleep(r.Context(), b.delay) {
		return
	}
	if b.failCode != 0 && n%b.every == 0 {
		w.WriteHeader(b.failCode)
		fmt.Fprintf(w, "echo %s from '%s': failing with %d\n", a.version, a.instance, b.failCode)
		return
	}
	switch {
	case r.URL.Path == "/headers":
		h := map[string]string{"host": r.Host}
		for k := range r.Header {
			h[strings.ToLower(k)] = strings.Join(r.Header.Values(k), ",")
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(h)
		return
	case strings.HasPrefix(r.URL.Path, "/status/"):
		code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		if err != nil || code < 200 || code > 599 {
			http.Error(w, "bad status", http.StatusBadRequest)
			return
		}
		w.WriteHeader(code)
	case strings.HasPrefix(r.URL.Path, "/delay/"):
		d, err := time.ParseDuration(strings.TrimPrefix(r.URL.Path, "/delay/"))
		if err != nil || d < 0 || d > time.Minute {
			http.Error(w, "bad delay", http.StatusBadRequest)
			return
		}
		if !sleep(r.Context(), d) {
			return
		}
	}
	fmt.Fprintf(w, "echo %s from '%s': %d\n", a.version, a.instance, n)
}

// sleep waits d or until the client goes away; it reports whether to go on.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
