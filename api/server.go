// Package api is the control plane's HTTP API, mounted at /api/v1: apply,
// get, delete and analyze configuration, and inspect connected proxies.
// Every body is JSON; every error is {"error": "..."} with a fitting status.
// With Options.Token set, writes need "Authorization: Bearer TOKEN" (and
// reads too with Options.ProtectReads); private keys never leave it
// (RedactSecrets).
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/internal/version"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/store"
)

// maxBody caps request bodies; configuration files are small, and a bound
// keeps a stray upload from exhausting memory.
const maxBody = 16 << 20

// Options configure a Server. The zero value is usable.
type Options struct {
	// Log receives request and write logs; nil discards them.
	Log *slog.Logger
	// Snapshot builds the model the analyzer runs on; nil means model.Build.
	Snapshot func(objs []*config.Object, rev int64) *model.Snapshot
	// Proxies answers the /proxies endpoints; nil makes them answer 503.
	Proxies ProxySource
	// Token, when set, is the API token: writes (POST, PUT, PATCH, DELETE)
	// then need "Authorization: Bearer TOKEN" and get 401 without it.
	Token string
	// ProtectReads makes reads need the token too (as the header or the
	// console's login cookie): for an API reachable from other hosts.
	// /healthz stays open. Without a Token it has no effect.
	ProtectReads bool
	// Certificates issues workload certificates (POST /api/v1/certificates);
	// nil answers 503.
	Certificates CertificateIssuer
	// Tokens serves /api/v1/tokens (identity-scoped join tokens), which
	// need the API token for reads too; nil makes them answer 503.
	Tokens Tokens
	// Guard, when set, may refuse an apply or delete (409): objects a
	// Canary owns are written by the canary analysis only.
	Guard Guard
	// Canaries answers /api/v1/canaries; nil makes them answer 503.
	Canaries CanarySource
	// LoadTester, when set, is served at /api/v1/loadtester/ (POST, like
	// every write, needs the API token): the canary analysis' built-in
	// load tester and gates.
	LoadTester http.Handler
}

// Server serves the API over a Store.
type Server struct {
	st       store.Store
	log      *slog.Logger
	snapshot func(objs []*config.Object, rev int64) *model.Snapshot
	proxies  ProxySource
	certs    CertificateIssuer
	tokens   Tokens
	guard    Guard
	canaries CanarySource
	mux      *http.ServeMux
	auth     auth

	// writeMu serializes applies and deletes made through the API, so the
	// analysis an apply reports is of the state it actually writes over.
	writeMu  sync.Mutex
	analyses *analyses
}

// New returns a Server over st.
func New(st store.Store, opts Options) *Server {
	s := &Server{st: st, log: opts.Log, snapshot: opts.Snapshot, proxies: opts.Proxies, certs: opts.Certificates, tokens: opts.Tokens, mux: http.NewServeMux(),
		auth: newAuth(opts.Token, opts.ProtectReads), analyses: newAnalyses(), guard: opts.Guard, canaries: opts.Canaries}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.snapshot == nil {
		s.snapshot = func(objs []*config.Object, rev int64) *model.Snapshot { return model.Build(rev, objs) }
	}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("POST /api/v1/apply", s.apply)
	s.mux.HandleFunc("GET /api/v1/objects", s.listObjects)
	s.mux.HandleFunc("GET /api/v1/objects/{kind}/{namespace}/{name}", s.getObject)
	s.mux.HandleFunc("DELETE /api/v1/objects/{kind}/{namespace}/{name}", s.deleteObject)
	s.mux.HandleFunc("POST /api/v1/delete", s.deleteSources)
	s.mux.HandleFunc("GET /api/v1/analyze", s.analyzeStore)
	s.mux.HandleFunc("POST /api/v1/analyze", s.analyzeSources)
	s.mux.HandleFunc("GET /api/v1/proxies", s.listProxies)
	s.mux.HandleFunc("GET /api/v1/proxies/{id}/config/{kind}", s.proxyConfig)
	s.mux.HandleFunc("GET /api/v1/sync", s.syncStatus)
	s.mux.HandleFunc("POST /api/v1/certificates", s.issueCertificate)
	s.mux.HandleFunc("POST /api/v1/tokens", s.createToken)
	s.mux.HandleFunc("GET /api/v1/tokens", s.listTokens)
	s.mux.HandleFunc("DELETE /api/v1/tokens/{id}", s.revokeToken)
	s.mux.HandleFunc("GET /api/v1/canaries/{namespace}/{name}", s.getCanary)
	s.mux.HandleFunc("POST /api/v1/canaries/{namespace}/{name}/{action}", s.canaryCommand)
	if opts.LoadTester != nil {
		s.mux.Handle("POST /api/v1/loadtester/", http.StripPrefix("/api/v1/loadtester", opts.LoadTester))
	}
	return s
}

// Handler returns the HTTP handler serving /healthz and /api/v1/.
func (s *Server) Handler() http.Handler { return s }

// ServeHTTP routes a request, logging it and turning the mux's own 404 and
// 405 answers into JSON errors like every other one.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	h, pattern := s.mux.Handler(r)
	if reason := s.auth.check(r); reason != "" {
		// Before routing: an unauthenticated caller learns nothing about
		// which endpoints exist.
		rec.Header().Set("WWW-Authenticate", `Bearer realm="weft"`)
		writeError(rec, http.StatusUnauthorized, reason)
	} else if pattern == "" {
		c := &captureWriter{header: http.Header{}, status: http.StatusOK}
		h.ServeHTTP(c, r)
		if allow := c.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		msg := fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path)
		if c.status == http.StatusMethodNotAllowed {
			msg = fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path)
		}
		writeError(rec, c.status, msg)
	} else {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		s.mux.ServeHTTP(rec, r)
	}
	level := slog.LevelDebug
	if rec.status >= 500 {
		level = slog.LevelError
	}
	s.log.Log(r.Context(), level, "api request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", time.Since(start))
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// captureWriter swallows the mux's plain-text error page, keeping its status
// and headers.
type captureWriter struct {
	header http.Header
	status int
}

func (c *captureWriter) Header() http.Header         { return c.header }
func (c *captureWriter) Write(b []byte) (int, error) { return len(b), nil }
func (c *captureWriter) WriteHeader(code int)        { c.status = code }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	_, rev, err := s.st.List(r.Context(), config.KindGateway, "")
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "store: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, HealthResponse{Status: "ok", Revision: rev, Version: version.Get().String()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the status is already sent; a failed write means the client left
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, ErrorResponse{Error: msg})
}

// storeError answers for a failed store call: 404 for a missing object,
// 503 if the request was cancelled, else 500.
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, op string, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, store.ErrReadOnly):
		writeError(w, http.StatusConflict, err.Error())
	case r.Context().Err() != nil:
		writeError(w, http.StatusServiceUnavailable, op+": "+err.Error())
	default:
		s.log.Error("store failure", "op", op, "err", err)
		writeError(w, http.StatusInternalServerError, op+": "+err.Error())
	}
}

// boolParam reads an optional boolean query parameter.
func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("query parameter %s=%q is not a boolean", name, v)
	}
	return b, nil
}

// readSources decodes a SourcesRequest body.
func readSources(r *http.Request) ([]Source, error) {
	var req SourcesRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	if len(req.Sources) == 0 {
		return nil, errors.New("no sources given")
	}
	return req.Sources, nil
}

// readJSON decodes a request body holding one JSON object with no
// unknown fields into v.
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return fmt.Errorf("request body larger than %d bytes", tooBig.Limit)
		}
		return fmt.Errorf("read request body: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("read request body: trailing data after the JSON object")
	}
	return nil
}

// nsOptions are the namespace query parameters shared by apply, delete and
// analyze of sources.
type nsOptions struct {
	namespace string // default for objects that name none
	explicit  bool   // the user passed -n: objects must not name another
}

func readNSOptions(r *http.Request) (nsOptions, error) {
	o := nsOptions{namespace: r.URL.Query().Get("namespace")}
	var err error
	if o.explicit, err = boolParam(r, "namespaceExplicit"); err != nil {
		return o, err
	}
	if o.namespace == "" {
		o.namespace = config.DefaultNamespace
		o.explicit = false
	}
	return o, nil
}

// DecodeSources decodes and validates sources as an apply does, with no
// control plane: objects that name no namespace get ns; with explicit (the
// user passed -n), an object naming another namespace is refused, and so is
// an object given twice. It reports every problem at once. `weft validate`
// and the CLI's offline checks call it.
func DecodeSources(sources []Source, ns string, explicit bool) ([]*config.Object, config.ErrorList) {
	if ns == "" {
		ns, explicit = config.DefaultNamespace, false
	}
	return decodeSources(sources, nsOptions{namespace: ns, explicit: explicit})
}

// decodeSources decodes every source (config.Decode also validates), fills in namespaces and
// rejects duplicate keys. It reports all problems at once: a user fixes a
// batch of files in one round.
func decodeSources(sources []Source, ns nsOptions) ([]*config.Object, config.ErrorList) {
	var (
		objs   []*config.Object
		errs   config.ErrorList
		origin = map[config.Key]string{}
	)
	for _, src := range sources {
		decoded, err := config.Decode(src.Name, strings.NewReader(src.Content))
		if err != nil {
			var list config.ErrorList
			if !errors.As(err, &list) {
				list = config.ErrorList{{Source: src.Name, Msg: err.Error()}}
			}
			list.DefaultNamespace(ns.namespace)
			errs = append(errs, list...)
			// The documents that decoded are still checked below, so one
			// round reports every problem.
		}
		for _, o := range decoded {
			if o.Meta.Namespace == "" {
				o.Meta.Namespace = ns.namespace
			} else if ns.explicit && o.Meta.Namespace != ns.namespace {
				// kubectl's wording, so users recognise the rule.
				errs = append(errs, &config.Error{
					Source: src.Name, Kind: o.Kind, Namespace: o.Meta.Namespace, Name: o.Meta.Name, Field: "metadata.namespace",
					Msg: fmt.Sprintf("the namespace from the provided object %q does not match the namespace %q. You must pass '--namespace=%s' to perform this operation.",
						o.Meta.Namespace, ns.namespace, o.Meta.Namespace),
				})
				continue
			}
			k := o.Key()
			if first, dup := origin[k]; dup {
				errs = append(errs, &config.Error{
					Source: src.Name, Kind: k.Kind, Namespace: k.Namespace, Name: k.Name,
					Msg: "object given more than once in one request (first in " + first + ")",
				})
				continue
			}
			origin[k] = src.Name
			objs = append(objs, o)
		}
	}
	return objs, errs
}

// writeDecodeErrors answers 400 with every decoding problem.
func writeDecodeErrors(w http.ResponseWriter, errs config.ErrorList) {
	resp := ErrorResponse{Error: errs.Error()}
	for _, e := range errs {
		resp.Errors = append(resp.Errors, FieldError{
			Source: e.Source, Doc: e.Doc, Kind: string(e.Kind), Namespace: e.Namespace, Name: e.Name, Field: e.Field, Message: e.Msg,
		})
	}
	writeJSON(w, http.StatusBadRequest, resp)
}

func results(rs []store.Result) []ObjectResult {
	out := make([]ObjectResult, 0, len(rs))
	for _, r := range rs {
		out = append(out, ObjectResult{Kind: string(r.Key.Kind), Namespace: r.Key.Namespace, Name: r.Key.Name, Action: string(r.Action)})
	}
	return out
}

// notFound renders kubectl's wording: virtualservices.networking.istio.io "x" not found.
func notFound(k config.Key) string {
	if info, ok := config.LookupKind(string(k.Kind)); ok {
		return fmt.Sprintf("%s.%s %q not found", info.Plural, info.Group, k.Name)
	}
	return fmt.Sprintf("%s %q not found", k.Kind, k.Name)
}
