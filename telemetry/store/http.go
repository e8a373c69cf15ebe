package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/weft-mesh/weft/telemetry"
)

// MaxReportBytes caps one report's body.
const MaxReportBytes = 4 << 20

// Window bounds for the read endpoints.
const (
	MinWindow = Resolution
	MaxWindow = time.Hour
)

// HTTPOptions configure the telemetry endpoints.
type HTTPOptions struct {
	// Inventory returns the registry's services and workloads; nil means
	// the graph shows traffic only.
	Inventory func() *Inventory
	// Protect wraps the read endpoints (graph, services, workloads,
	// traces), e.g. with the console's login check; nil leaves them open.
	Protect func(http.Handler) http.Handler
	// ProtectIntake wraps POST /api/v1/telemetry, e.g. with a check of the
	// proxies' join token: reports are writes; nil leaves it open.
	ProtectIntake func(http.Handler) http.Handler
	// ProtectMetrics wraps GET /metrics; nil leaves it open.
	ProtectMetrics func(http.Handler) http.Handler
	// ExtraMetrics appends more exposition to /metrics (e.g. the OTLP
	// exporter's counters).
	ExtraMetrics func(io.Writer)
}

// Register mounts the telemetry endpoints on mux:
//
//	POST /api/v1/telemetry        a proxy's telemetry.Report (JSON, <= 4 MiB)
//	GET  /metrics                 Prometheus text exposition
//	GET  /api/v1/graph?window=    the traffic graph (default 10s, 2s..1h)
//	GET  /api/v1/services?window= services with health (default 1m)
//	GET  /api/v1/workloads?window= workloads with health (default 1m)
//	GET  /api/v1/traces?service=&limit=  recent trace summaries (default limit 50)
//	GET  /api/v1/traces/{id}      one trace's spans
func (s *Store) Register(mux *http.ServeMux, o HTTPOptions) {
	protect := o.Protect
	if protect == nil {
		protect = func(h http.Handler) http.Handler { return h }
	}
	inv := func() *Inventory {
		if o.Inventory == nil {
			return nil
		}
		return o.Inventory()
	}
	open := func(h http.Handler) http.Handler { return h }
	intake, metrics := o.ProtectIntake, o.ProtectMetrics
	if intake == nil {
		intake = open
	}
	if metrics == nil {
		metrics = open
	}
	mux.Handle("POST /api/v1/telemetry", intake(http.HandlerFunc(s.intake)))
	mux.Handle("GET /metrics", metrics(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if err := s.WritePrometheus(w); err != nil {
			return // the client left
		}
		if o.ExtraMetrics != nil {
			o.ExtraMetrics(w)
		}
	})))
	mux.Handle("GET /api/v1/graph", protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		win, ok := window(w, r, 10*time.Second)
		if ok {
			writeJSON(w, http.StatusOK, s.BuildGraph(win, inv(), time.Now()))
		}
	})))
	mux.Handle("GET /api/v1/services", protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		win, ok := window(w, r, time.Minute)
		if ok {
			g := s.BuildGraph(win, inv(), time.Now())
			writeJSON(w, http.StatusOK, map[string]any{"window": g.Window, "services": nodesOf(g, KindService)})
		}
	})))
	mux.Handle("GET /api/v1/workloads", protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		win, ok := window(w, r, time.Minute)
		if ok {
			g := s.BuildGraph(win, inv(), time.Now())
			writeJSON(w, http.StatusOK, map[string]any{"window": g.Window, "workloads": nodesOf(g, KindWorkload, KindGateway)})
		}
	})))
	mux.Handle("GET /api/v1/traces", protect(http.HandlerFunc(s.listTraces)))
	mux.Handle("GET /api/v1/traces/{id}", protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, ok := s.Traces.Get(r.PathValue("id"))
		if !ok {
			writeError(w, http.StatusNotFound, fmt.Sprintf("trace %q not found (only the last %d traces are kept)", r.PathValue("id"), s.opts.MaxTraces))
			return
		}
		writeJSON(w, http.StatusOK, d)
	})))
}

func nodesOf(g *Graph, kinds ...string) []*Node {
	out := []*Node{}
	for _, n := range g.Nodes {
		for _, k := range kinds {
			if n.Kind == k {
				out = append(out, n)
			}
		}
	}
	return out
}

func (s *Store) intake(w http.ResponseWriter, r *http.Request) {
	body := http.MaxBytesReader(w, r.Body, MaxReportBytes)
	var rep telemetry.Report
	if err := json.NewDecoder(body).Decode(&rep); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("report larger than %d bytes: send reports more often", tooBig.Limit))
			return
		}
		writeError(w, http.StatusBadRequest, "decode report: "+err.Error())
		return
	}
	if err := Validate(&rep); err != nil {
		s.mu.Lock()
		s.rejectedStats++
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "invalid report: "+err.Error())
		return
	}
	s.Merge(&rep, time.Now())
	w.WriteHeader(http.StatusNoContent)
}

func (s *Store) listTraces(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit=%q: want a positive integer", v))
			return
		}
		limit = min(n, s.opts.MaxTraces)
	}
	writeJSON(w, http.StatusOK, map[string]any{"traces": s.Traces.List(r.URL.Query().Get("service"), limit)})
}

// window reads ?window=, a Go duration between MinWindow and MaxWindow.
func window(w http.ResponseWriter, r *http.Request, def time.Duration) (time.Duration, bool) {
	v := r.URL.Query().Get("window")
	if v == "" {
		return def, true
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < MinWindow || d > MaxWindow {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("window=%q: want a duration from %s to %s, e.g. 10s or 5m", v, MinWindow, MaxWindow))
		return 0, false
	}
	return d, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // edge IDs hold "->"; keep them greppable
	_ = enc.Encode(v)        // the status is sent; a failed write means the client left
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
