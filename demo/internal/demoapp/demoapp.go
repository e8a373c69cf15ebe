// Package demoapp holds what the demo applications share: serving on $PORT
// until the context ends, an HTTP client that goes through the sidecar, and
// the propagation of tracing and routing headers.
package demoapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// Serve runs h on $LISTEN_HOST:$PORT until ctx is done. `weft run` sets
// PORT and leaves LISTEN_HOST unset: 127.0.0.1, so the app is reachable
// only through its sidecar. In a pod the manifest sets both (0.0.0.0, or
// the pod IP from the downward API), as any app there listens.
func Serve(ctx context.Context, name string, h http.Handler) error {
	ln, err := Listen(name)
	if err != nil {
		return err
	}
	delay, err := shutdownDelay(os.Getenv)
	if err != nil {
		ln.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		time.Sleep(delay)
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// shutdownDelay is how long the app keeps serving after it is told to
// stop: $SHUTDOWN_DELAY (a Go duration), else 2s in a pod (LISTEN_HOST
// set) and none under `weft run`. A pod's callers learn that it is going
// only after its containers got SIGTERM (the endpoint's removal reaches
// their sidecars some 40-250 ms later), so an app that closes its socket
// at once fails the requests already on their way; Kubernetes' advice is
// to keep serving for a moment, as the demo apps do.
func shutdownDelay(getenv func(string) string) (time.Duration, error) {
	if v := getenv("SHUTDOWN_DELAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > time.Minute {
			return 0, fmt.Errorf("SHUTDOWN_DELAY %q: want a duration from 0s to 1m", v)
		}
		return d, nil
	}
	if getenv("LISTEN_HOST") != "" {
		return 2 * time.Second, nil
	}
	return 0, nil
}

// Listen binds the app's address, $LISTEN_HOST:$PORT (LISTEN_HOST
// defaults to 127.0.0.1), naming the app in errors.
func Listen(name string) (net.Listener, error) {
	port := os.Getenv("PORT")
	if port == "" {
		return nil, fmt.Errorf("%s: $PORT is not set (run me with `weft run`, or set PORT in the pod)", name)
	}
	host := os.Getenv("LISTEN_HOST")
	if host == "" {
		host = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return ln, nil
}

// Client returns an HTTP client whose requests go through $HTTP_PROXY, the
// sidecar. Timeouts are per call (contexts), not on the client.
func Client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second,
	}}
}

// Propagated are the headers Bookinfo's services copy from the request they
// serve onto the requests they make: trace context (W3C, B3, OpenTracing),
// the request id, and what routing rules match on (end-user, user-agent,
// cookie).
var Propagated = []string{
	"x-request-id", "traceparent", "tracestate",
	"x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "b3",
	"x-ot-span-context", "end-user", "user-agent", "cookie",
}

// Propagate copies the Propagated headers present in from onto to.
func Propagate(to, from http.Header) {
	for _, h := range Propagated {
		if vs := from.Values(h); len(vs) > 0 {
			to.Del(h)
			for _, v := range vs {
				to.Add(h, v)
			}
		}
	}
}

// WriteJSON answers status with v as JSON (one line), or 500 if v does not
// encode.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
