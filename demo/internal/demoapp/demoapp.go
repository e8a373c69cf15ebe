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

// Serve runs h on 127.0.0.1:$PORT (set by `weft run`) until ctx is done.
func Serve(ctx context.Context, name string, h http.Handler) error {
	port := os.Getenv("PORT")
	if port == "" {
		return fmt.Errorf("%s: $PORT is not set (run me with `weft run`)", name)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
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
