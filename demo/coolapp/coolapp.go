// Package coolapp is the demo of the OpenShift Service Mesh introduction:
// gateway => partner => catalog, with catalog in versions v1 and v2. Each
// app answers one line that names the chain it went through, e.g.
//
//	gateway => partner => catalog v1 from '6d6b478456-9vsm2': 3
package coolapp

import (
	"context"
	"embed"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/weft-mesh/weft/demo/internal/demoapp"
)

// Files holds the demo's Istio YAML, named as in the seed walkthrough.
//
//go:embed *.yaml *.yml
var Files embed.FS

// Apps lists the app names Serve accepts.
var Apps = []string{"gateway", "partner", "catalog"}

// next maps each app to the service it calls.
var next = map[string]string{"gateway": "http://partner:8080/", "partner": "http://catalog:8080/"}

// propagated are the request headers an app copies onto its outbound call,
// as the original Java services (and Bookinfo) do for tracing and routing.
var propagated = []string{
	"x-request-id", "end-user", "user-agent", "traceparent", "tracestate",
	"x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "b3",
}

// Serve runs app on 127.0.0.1:$PORT until ctx is done. The version comes
// from $VERSION and the instance name from $HOSTNAME (set by `weft run`).
func Serve(ctx context.Context, app string) error {
	var h http.Handler
	switch app {
	case "catalog":
		h = catalog(os.Getenv("VERSION"), instanceID(os.Getenv("HOSTNAME")))
	case "gateway", "partner":
		h = caller(app, next[app])
	default:
		return fmt.Errorf("coolapp: unknown app %q (have %v)", app, Apps)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.Handle("/", h)
	return demoapp.Serve(ctx, "coolapp "+app, mux)
}

// instanceID is what the seed prints for a pod: its name without the
// deployment prefix ("catalog-v1-6d6b478456-9vsm2" -> "6d6b478456-9vsm2").
func instanceID(host string) string {
	parts := strings.Split(host, "-")
	if len(parts) > 2 {
		return strings.Join(parts[len(parts)-2:], "-")
	}
	return host
}

func catalog(version, instance string) http.Handler {
	if version == "" {
		version = "v1"
	}
	var count atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "catalog %s from '%s': %d\n", version, instance, count.Add(1))
	})
}

// caller answers "NAME => " followed by what the next service said. When
// the next service fails, it answers with the same status and
// "NAME => CODE BODY", as the seed shows: "gateway => 503 partner => 503".
func caller(name, url string) http.Handler {
	client := demoapp.Client()
	client.Timeout = 10 * time.Second
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, url, nil)
		for _, h := range propagated {
			if v := r.Header.Get(h); v != "" {
				req.Header.Set(h, v)
			}
		}
		resp, err := client.Do(req)
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "%s => %v\n", name, err)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		text := strings.TrimSpace(string(body))
		if resp.StatusCode >= 300 {
			w.WriteHeader(resp.StatusCode)
			fmt.Fprintf(w, "%s => %s\n", name, strings.TrimSpace(fmt.Sprintf("%d %s", resp.StatusCode, text)))
			return
		}
		fmt.Fprintf(w, "%s => %s\n", name, text)
	})
}
