// Package status is a captured sidecar's status servers, on Istio's ports,
// so a pod's probes and scrapers work as they do with Istio's sidecar:
//
//   - readiness, :15021 /healthz/ready: 200 once the proxy serves its first
//     configuration, 503 before and while it drains;
//   - app probes, :15020 /app-health/CONTAINER/livez|readyz|startupz: the
//     injector rewrites the app's probes to these paths and passes the
//     originals in ISTIO_KUBE_APP_PROBERS; the server performs the original
//     (HTTP GET or TCP connect) against the app, from 127.0.0.6 so the
//     capture rules leave it alone, and answers 200 or 503. It also serves
//     /healthz/ready and /stats/prometheus (Istio merges the app's metrics
//     there; weft serves the proxy's);
//   - stats, :15090 /stats/prometheus.
package status

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Options configures the servers. An empty address leaves that server out.
type Options struct {
	// HealthAddr serves /healthz/ready (":15021").
	HealthAddr string
	// StatusAddr serves the app probes, /healthz/ready and /stats/prometheus (":15020").
	StatusAddr string
	// StatsAddr serves /stats/prometheus (":15090").
	StatsAddr string
	// Ready reports whether the proxy serves a configuration and is not
	// draining.
	Ready func() bool
	// Stats is the Prometheus handler.
	Stats http.Handler
	// Probes are the app's original probes by rewritten path (ParseProbers).
	Probes map[string]*Probe
	// PodIP is the host a probe without one is sent to (the kubelet sends
	// them to the pod's IP, where the app may listen alone).
	PodIP string
	// ProbeSource is the address probes are made from (127.0.0.6), so the
	// capture rules do not redirect them into the sidecar's inbound
	// listener; empty: the system's choice.
	ProbeSource string
	// Log receives server errors; nil discards them.
	Log *slog.Logger
}

// Server is the running status servers.
type Server struct {
	servers []*http.Server
	addrs   map[string]string
	log     *slog.Logger
}

// Start binds every configured address, then serves them in the
// background; a bind failure closes what was bound and is returned.
func Start(o Options) (*Server, error) {
	if o.Ready == nil {
		return nil, errors.New("status: no readiness")
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pr := &prober{dialer: &net.Dialer{}, host: o.PodIP}
	if o.ProbeSource != "" {
		pr.dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(o.ProbeSource)}
	}
	if pr.host == "" {
		pr.host = "127.0.0.1"
	}
	stats := o.Stats
	if stats == nil {
		stats = http.NotFoundHandler()
	}
	ready := readyHandler(o.Ready)
	health := http.NewServeMux()
	health.Handle("GET /healthz/ready", ready)
	statsMux := http.NewServeMux()
	statsMux.Handle("GET /stats/prometheus", stats)
	statusMux := http.NewServeMux()
	statusMux.Handle("GET /healthz/ready", ready)
	statusMux.Handle("GET /stats/prometheus", stats)
	statusMux.Handle("GET "+AppHealthPrefix, appHealth(pr, o.Probes, log))

	s := &Server{addrs: map[string]string{}, log: log}
	for _, b := range []struct {
		name, addr string
		h          http.Handler
	}{{"health", o.HealthAddr, health}, {"status", o.StatusAddr, statusMux}, {"stats", o.StatsAddr, statsMux}} {
		if b.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", b.addr)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("status: %s server: listen on %s: %w", b.name, b.addr, err)
		}
		srv := &http.Server{Handler: b.h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
		s.servers = append(s.servers, srv)
		s.addrs[b.name] = ln.Addr().String()
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("status server stopped", "server", b.name, "err", err)
			}
		}()
	}
	return s, nil
}

// Addr returns the bound address of server "health", "status" or "stats".
func (s *Server) Addr(name string) string { return s.addrs[name] }

// Shutdown stops the servers, waiting for requests in flight until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	for _, srv := range s.servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Server) close() {
	for _, srv := range s.servers {
		srv.Close()
	}
}

func readyHandler(ready func() bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
}

// appHealth performs the probe registered for the request's path.
func appHealth(pr *prober, probes map[string]*Probe, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := probes[r.URL.Path]
		if p == nil {
			known := make([]string, 0, len(probes))
			for k := range probes {
				known = append(known, k)
			}
			sort.Strings(known)
			http.Error(w, fmt.Sprintf("no app probe %s (known: %s)", r.URL.Path, strings.Join(known, ", ")), http.StatusNotFound)
			return
		}
		if err := pr.run(r.Context(), p); err != nil {
			log.Debug("app probe failed", "path", r.URL.Path, "err", err)
			http.Error(w, "app probe failed: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
}
