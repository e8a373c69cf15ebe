// Package filter is the HTTP filter framework of the weft proxy, in the style
// of CoreDNS plugins: every filter lives in its own sub-package
// (proxy/filter/<name>), registers itself under its Envoy filter name from an
// init function, and parses its per-route typed config in a Setup function.
// Route compilation (proxy/route) builds each route's Chain once from
// typed_per_filter_config; listener parsing (proxy/listener) builds the
// listener's Chain from the HTTP connection manager's http_filters configs
// (RegisterHCM). The forwarder runs the listener's chain, then the route's,
// per request before routing upstream.
//
// The design does not allocate per filter: a filter is an immutable value
// built from configuration, and per-request state lives in one Exchange.
package filter

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// Filter is one compiled filter, per route or at the listener's HTTP
// connection manager. Request runs before the request is forwarded; it
// returns false when it answered the request itself (with Exchange.Reply),
// which ends the exchange.
type Filter interface {
	Request(x *Exchange) bool
}

// ResponseFilter is implemented by filters that edit response headers before
// they are sent downstream (for upstream responses and for local replies
// sent after the filter let the request through).
type ResponseFilter interface {
	Response(x *Exchange, code int, h http.Header)
}

// Exchange is one request as the filters see it. It runs up to two chains
// in turn, the listener's (HCM-level) and the matched route's; the response
// hooks of both run for every response.
type Exchange struct {
	W http.ResponseWriter
	R *http.Request
	// Flags are the response flags filters set (DI, FI, DC, RL, RBAC).
	Flags Flag
	// Code is the status of the local reply a filter sent; 0 when none.
	Code int
	// Marks is per-request scratch space: each filter package owns the bits
	// it got from NewMark.
	Marks uint32
	// RouteFilters is the matched route's own chain (nil when no route
	// matched or it has none). A listener-level filter looks there for a
	// per-route config of its own kind, which replaces it for the route as
	// Envoy's typed_per_filter_config does.
	RouteFilters Chain
	// Metadata is the request's dynamic metadata, Envoy's StreamInfo
	// metadata: filter namespace -> key -> value. Values are what
	// encoding/json decodes into an any (string, float64, bool, nil,
	// []any, map[string]any). Nil until a filter writes (SetMetadata).
	Metadata map[string]map[string]any

	stages  [2]stage
	nstages int
	conn    ConnInfo
	path    string
	hasConn bool
	hasPath bool
}

// stage is one chain an Exchange ran: n of its filters let the request
// through (their response hooks run).
type stage struct {
	c Chain
	n int
}

// NewExchange returns the Exchange of one request.
func NewExchange(w http.ResponseWriter, r *http.Request) *Exchange {
	return &Exchange{W: w, R: r}
}

// Run runs c on x after the chains it already ran (at most two per
// exchange: the listener's, then the route's). It returns false when a
// filter answered the request.
func (x *Exchange) Run(c Chain) bool {
	if x.nstages == len(x.stages) {
		panic("filter: more than two chains on one exchange")
	}
	s := &x.stages[x.nstages]
	x.nstages++
	s.c = c
	for i, f := range c {
		s.n = i
		if !f.Request(x) {
			return false
		}
	}
	s.n = len(c)
	return true
}

// Response runs the response hooks of the filters that let the request
// through, last first (the route's, then the listener's), on h, the
// headers about to be sent with code.
func (x *Exchange) Response(code int, h http.Header) {
	for s := x.nstages - 1; s >= 0; s-- {
		st := &x.stages[s]
		for i := st.n - 1; i >= 0; i-- {
			if rf, ok := st.c[i].(ResponseFilter); ok {
				rf.Response(x, code, h)
			}
		}
	}
}

// Reply sends a local reply: status code and, if not empty, a text/plain
// body. Headers already set on x.W are kept. The response hooks of the filters
// before the replying one run first.
func (x *Exchange) Reply(code int, body string) {
	x.Response(code, x.W.Header())
	x.Code = code
	WriteReply(x.W, code, body)
}

// WriteReply writes a local reply on w: status code and, if not empty, a
// text/plain body (else Content-Length 0). Headers already set are kept.
func WriteReply(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	if body != "" {
		h["Content-Type"] = textPlain
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
		return
	}
	h["Content-Length"] = zeroLength
	w.WriteHeader(code)
}

// LocalReply is Reply as Envoy sends local replies to gRPC clients too: a
// gRPC request gets HTTP 200 with grpc-status (GRPCStatus(code)) and
// grpc-message (body) in the header block (trailers-only), so its client
// sees a gRPC error rather than a transport failure.
func (x *Exchange) LocalReply(code int, body string) {
	if !IsGRPC(x.R.Header) {
		x.Reply(code, body)
		return
	}
	h := x.W.Header()
	h["Content-Type"] = grpcContentType
	h["Grpc-Status"] = grpcStatusValues[GRPCStatus(code)]
	if body != "" {
		h["Grpc-Message"] = []string{body}
	}
	x.Reply(http.StatusOK, "")
}

// Path returns the request's normalized path (RequestPath), computed on
// first use and kept for the rest of the exchange: jwt_authn and every RBAC
// filter match it, as Envoy normalizes the path once per request.
func (x *Exchange) Path() string {
	if !x.hasPath {
		x.path, x.hasPath = RequestPath(x.R), true
	}
	return x.path
}

// SetMetadata sets dynamic metadata key in namespace ns to v.
func (x *Exchange) SetMetadata(ns, key string, v any) {
	if x.Metadata == nil {
		x.Metadata = map[string]map[string]any{}
	}
	m := x.Metadata[ns]
	if m == nil {
		m = map[string]any{}
		x.Metadata[ns] = m
	}
	m[key] = v
}

var (
	textPlain       = []string{"text/plain"}
	zeroLength      = []string{"0"}
	grpcContentType = []string{"application/grpc"}
	// grpcStatusValues holds the header value of every gRPC status code.
	grpcStatusValues = func() (v [17][]string) {
		for i := range v {
			v[i] = []string{strconv.Itoa(i)}
		}
		return v
	}()
)

// GRPCStatus maps the HTTP status of a local reply to the gRPC status Envoy
// sends gRPC clients in its place.
func GRPCStatus(code int) int {
	switch code {
	case 400:
		return 13 // INTERNAL
	case 401:
		return 16 // UNAUTHENTICATED
	case 403:
		return 7 // PERMISSION_DENIED
	case 404:
		return 12 // UNIMPLEMENTED
	case 429, 502, 503, 504:
		return 14 // UNAVAILABLE
	}
	return 2 // UNKNOWN
}

// Chain is a list of filters in execution order. A nil Chain does nothing.
type Chain []Filter

// Request runs the chain on x (x.Run(c)); false means a filter answered the
// request.
func (c Chain) Request(x *Exchange) bool { return x.Run(c) }

var marks struct {
	sync.Mutex
	next uint32
}

// NewMark returns a bit of Exchange.Marks for the calling filter package's
// exclusive use. Call it from a package-level variable initializer.
func NewMark() uint32 {
	marks.Lock()
	defer marks.Unlock()
	if marks.next >= 32 {
		panic("filter: out of exchange marks")
	}
	m := uint32(1) << marks.next
	marks.next++
	return m
}

// Setup parses and validates a filter's per-route typed config. Errors name
// the offending field relative to the config message; a config that does
// not unmarshal is reported as "typed_config: ...".
type Setup func(config *anypb.Any) (Filter, error)

type registration struct {
	name  string
	order int
	setup Setup
}

var registry struct {
	sync.RWMutex
	filters []registration // sorted by order
}

// Register makes a filter configurable per route under its Envoy name.
// order fixes its place in every route's chain (lower runs first), the
// contract's HCM order: local_ratelimit (50), fault (100), cors (200), then
// the router. Register panics on a duplicate name.
func Register(name string, order int, setup Setup) {
	registry.Lock()
	defer registry.Unlock()
	for _, r := range registry.filters {
		if r.name == name {
			panic("filter: duplicate registration of " + name)
		}
	}
	registry.filters = append(registry.filters, registration{name, order, setup})
	slices.SortStableFunc(registry.filters, func(a, b registration) int { return a.order - b.order })
}

// Build compiles a route's typed_per_filter_config into its Chain, in
// registration order. A key naming no registered filter is an error. An
// empty map yields a nil Chain.
func Build(configs map[string]*anypb.Any) (Chain, error) {
	if len(configs) == 0 {
		return nil, nil
	}
	registry.RLock()
	defer registry.RUnlock()
	for _, name := range sortedKeys(configs) {
		if !slices.ContainsFunc(registry.filters, func(r registration) bool { return r.name == name }) {
			return nil, fmt.Errorf("[%q]: unsupported filter", name)
		}
	}
	var c Chain
	for _, r := range registry.filters {
		cfg, ok := configs[r.name]
		if !ok {
			continue
		}
		if cfg == nil {
			return nil, fmt.Errorf("[%q]: empty config", r.name)
		}
		f, err := r.setup(cfg)
		if err != nil {
			return nil, fmt.Errorf("[%q].%w", r.name, err)
		}
		if f != nil {
			c = append(c, f)
		}
	}
	return c, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Fraction is a compiled FractionalPercent: Sample reports true for
// Numerator out of every Denominator requests on average.
type Fraction struct {
	Numerator, Denominator uint64
}

// Always is the fraction that samples every request.
var Always = Fraction{1, 1}

// ParseFraction compiles fp. A numerator above the denominator means 100%,
// as in Envoy. A nil fp is 0%.
func ParseFraction(fp *typev3.FractionalPercent) (Fraction, error) {
	if fp == nil {
		return Fraction{0, 100}, nil
	}
	var den uint64
	switch fp.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		den = 100
	case typev3.FractionalPercent_TEN_THOUSAND:
		den = 10_000
	case typev3.FractionalPercent_MILLION:
		den = 1_000_000
	default:
		return Fraction{}, fmt.Errorf("denominator: unsupported %v", fp.GetDenominator())
	}
	return Fraction{Numerator: min(uint64(fp.GetNumerator()), den), Denominator: den}, nil
}

// Sample draws once, lock-free (math/rand/v2's per-thread generator).
func (f Fraction) Sample() bool {
	switch {
	case f.Numerator == 0:
		return false
	case f.Numerator >= f.Denominator:
		return true
	}
	return rand.Uint64N(f.Denominator) < f.Numerator
}

// String formats f as a percentage.
func (f Fraction) String() string {
	if f.Denominator == 0 {
		return "0%"
	}
	return fmt.Sprintf("%g%%", float64(f.Numerator)*100/float64(f.Denominator))
}

// IsGRPC reports whether h is a gRPC request's headers.
func IsGRPC(h http.Header) bool {
	ct := h["Content-Type"]
	return len(ct) > 0 && strings.HasPrefix(ct[0], "application/grpc")
}
