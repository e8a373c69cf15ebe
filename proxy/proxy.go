// Package proxy wires the weft data plane together: the admin server, the
// runtime that serves listeners, and the ADS client that feeds it. It is
// what `weft proxy sidecar|gateway` and `weft run` start.
package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weft-mesh/weft/proxy/accesslog"
	"github.com/weft-mesh/weft/proxy/admin"
	"github.com/weft-mesh/weft/proxy/capture"
	"github.com/weft-mesh/weft/proxy/mtls"
	"github.com/weft-mesh/weft/proxy/observe"
	"github.com/weft-mesh/weft/proxy/runtime"
	"github.com/weft-mesh/weft/proxy/sds"
	"github.com/weft-mesh/weft/proxy/stats"
	"github.com/weft-mesh/weft/proxy/status"
	"github.com/weft-mesh/weft/proxy/trace"
	"github.com/weft-mesh/weft/proxy/xdsclient"
	"github.com/weft-mesh/weft/xds/node"
)

// Grace periods for shutdown.
const (
	// DrainGrace bounds how long in-flight requests may finish after the
	// proxy is told to stop; the rest are closed.
	DrainGrace = 5 * time.Second
	// adminGrace bounds the admin server's shutdown; its requests are short.
	adminGrace = time.Second
	// defaultAdmin is used when the node has no ADMIN_ADDRESS.
	defaultAdmin = "127.0.0.1:0"
)

// Options configures a proxy.
type Options struct {
	// Meta is the proxy's identity and addresses; its Admin address is
	// where the admin server listens (127.0.0.1:0 when empty). Listener
	// addresses come from the control plane's resources, which derive them
	// from Meta.
	Meta *node.Meta
	// XDSAddress is the control plane's gRPC (ADS) address, host:port.
	XDSAddress string
	// Log receives the proxy's events; nil discards them.
	Log *slog.Logger
	// Sockets are sockets bound before the proxy started, by address
	// (admin, inbound, outbound, gateway ports): the proxy serves them
	// rather than binding those addresses itself, so nothing can take the
	// ports in between. Start binds the node's other known addresses
	// itself, before anything else (see Start). The proxy keeps every such
	// socket until it stops: a listener that goes away hands its socket
	// back for the next one at that address.
	Sockets map[string]net.Listener
	// OnNACK, when set, is called with the reason of every configuration
	// the proxy refuses (and NACKs), e.g. a listener that cannot bind its
	// address. The proxy keeps serving its last good configuration.
	OnNACK func(error)

	// TelemetryURL is the control plane's API base URL (e.g.
	// http://127.0.0.1:15080); the proxy POSTs its metrics deltas and
	// spans to TelemetryURL/api/v1/telemetry every ReportInterval. Empty:
	// no reports (metrics are still served on the admin server).
	TelemetryURL string
	// NoTelemetry runs the data path without telemetry: no metrics,
	// spans, access log or reports.
	NoTelemetry bool
	// ReportInterval is the time between reports (default 1s).
	ReportInterval time.Duration
	// TraceSampling is the percent (0..100) of requests without an
	// incoming sampling decision that start a trace; 0 means
	// trace.DefaultSampling (1%), negative means none.
	TraceSampling float64
	// AccessLog is the access log format: "" or "off", "text", "json".
	AccessLog accesslog.Format
	// AccessLogOutput receives the access log (default os.Stdout).
	AccessLogOutput io.Writer

	// JoinToken proves to the control plane that this proxy may join the
	// mesh as the identity Meta claims (a token scoped to it, or the
	// mesh-wide one); it is sent on the xDS stream and with telemetry
	// reports, and never logged.
	JoinToken string
	// JoinTokenFile, when set, holds the token instead of JoinToken and is
	// read again at every (re)connect to the control plane and for every
	// telemetry report: in a pod it is the projected ServiceAccount token,
	// which the kubelet rotates.
	JoinTokenFile string
	// CARoot is a PEM file holding the mesh root the control plane's xDS
	// certificate is verified against; set, the proxy dials xDS over TLS.
	// Empty means plaintext xDS, allowed only to a loopback address so the
	// join token never crosses a network in clear.
	CARoot string
	// XDSServerName, when set, is the name verified on the control plane's
	// xDS certificate instead of XDSAddress's host (which may be an IP,
	// e.g. the istiod Service's ClusterIP). Needs CARoot.
	XDSServerName string

	// Pod, when set, starts the status servers of a sidecar in a pod
	// (readiness, app probes, stats on Istio's ports; see proxy/status).
	Pod *PodOptions
}

// PodOptions are a pod sidecar's status servers. Empty addresses default
// to Istio's ports on all addresses.
type PodOptions struct {
	// HealthAddr serves /healthz/ready (":15021").
	HealthAddr string
	// StatusAddr serves the app probes (":15020").
	StatusAddr string
	// StatsAddr serves /stats/prometheus (":15090").
	StatsAddr string
	// Probes are the app's original probes (status.ParseProbers of
	// ISTIO_KUBE_APP_PROBERS), performed against the pod's IP (Meta.IP).
	Probes map[string]*status.Probe
}

// Handle is a started proxy.
type Handle struct {
	ready chan struct{}
	done  chan struct{}
	admin string
	meta  *node.Meta
	rt    *runtime.Proxy
	err   error // set before done is closed
}

// Ready is closed once the first complete config is applied and served.
func (h *Handle) Ready() <-chan struct{} { return h.ready }

// Wait blocks until the proxy has stopped and drained, and returns why it
// stopped if that was not the context ending or /quitquitquit.
func (h *Handle) Wait() error {
	<-h.done
	return h.err
}

// Admin returns the admin server's bound address, host:port.
func (h *Handle) Admin() string { return h.admin }

// Done is closed once the proxy has stopped and drained.
func (h *Handle) Done() <-chan struct{} { return h.done }

// Meta is the node metadata the proxy presents to the control plane: the
// caller's, with the addresses it bound (the admin address, ports 0).
func (h *Handle) Meta() *node.Meta { return h.meta }

// Listeners returns the bound address of every listener being served, by
// name.
func (h *Handle) Listeners() map[string]net.Addr { return h.rt.Listeners() }

// Run starts the proxy and blocks until ctx is done or /quitquitquit is
// called, then drains in-flight requests for up to DrainGrace and returns.
func Run(ctx context.Context, o Options) error {
	h, err := Start(ctx, o)
	if err != nil {
		return err
	}
	return h.Wait()
}

// Start binds the addresses the node serves (its admin address, a sidecar's
// inbound and outbound addresses, a gateway's mapped ports) unless
// o.Sockets holds them, starts the admin server, the runtime and the ADS
// client, and returns at once; the proxy stops and drains when ctx is done
// or /quitquitquit is called. Errors are returned only for what prevents
// starting at all, such as an address that cannot be bound.
func Start(ctx context.Context, o Options) (*Handle, error) {
	if o.Meta == nil {
		return nil, errors.New("proxy: no node metadata")
	}
	if o.XDSAddress == "" {
		return nil, errors.New("proxy: no xDS address")
	}
	xdsTLS, err := xdsTLSConfig(o.XDSAddress, o.CARoot, o.XDSServerName)
	if err != nil {
		return nil, err
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	meta := *o.Meta // the bound admin address may differ; do not write back
	log = log.With("node", meta.ID())

	token, err := tokenSource(o)
	if err != nil {
		return nil, err
	}

	ctx, stop := context.WithCancel(ctx)
	h := &Handle{ready: make(chan struct{}), done: make(chan struct{})}
	var readyOnce sync.Once
	var draining atomic.Bool
	isReady := func() bool {
		select {
		case <-h.ready:
			return true
		default:
			return false
		}
	}

	sockets := newSocketSet(o.Sockets)
	if err := bindNodeAddresses(&meta, sockets); err != nil {
		stop()
		return nil, err
	}
	tel, err := newTelemetry(o, &meta)
	if err != nil {
		stop()
		sockets.closeAll()
		return nil, err
	}
	var tap runtime.Tap = tel.tap
	if o.NoTelemetry {
		tap = nil
	}
	rt := runtime.New(runtime.Options{Log: log.With("component", "runtime"), Tap: tap, Sockets: sockets.take})
	h.rt, h.meta = rt, &meta
	var principalOnce sync.Once
	apply := func(r *runtime.Resources) error {
		cfg, err := rt.Compile(r)
		if err != nil {
			return err // may wrap runtime.ErrIncomplete; the client decides
		}
		principalOnce.Do(func() {
			// Before the first Update binds any listener: the telemetry
			// labels name the identity the CA issued (its trust domain
			// included), not one guessed from node metadata.
			if s := r.Secrets[sds.DefaultName]; s != nil {
				if parsed, err := sds.Parse(s); err == nil && parsed.Certificate != nil && parsed.Certificate.Leaf != nil {
					tel.tap.SetPrincipal(mtls.SPIFFEID(parsed.Certificate.Leaf))
				}
			}
		})
		if err := rt.Update(cfg); err != nil {
			return fmt.Errorf("serve config: %w", err)
		}
		readyOnce.Do(func() {
			log.Info("proxy ready")
			close(h.ready)
		})
		return nil
	}

	// The ADS client is created after the admin server is bound, so the Node
	// advertises the real admin address even when the port was 0; until
	// then src gives the admin server an empty dump.
	src := new(lazySource)
	adm := admin.New(admin.Options{
		Listener: sockets.take(meta.Admin),
		Address:  adminAddress(meta.Admin),
		Ready:    isReady,
		Config:   src,
		Quit: func() {
			log.Info("quit requested through the admin server")
			stop()
		},
		Log: log.With("component", "admin"),
		Handlers: map[string]http.Handler{"/stats/prometheus": tel.stats.Handler(), "/stats": tel.stats.TextHandler(),
			"/listeners": listenersHandler(rt)},
	})
	if err := adm.Start(); err != nil {
		stop()
		tel.accessLog.Close()
		sockets.closeAll()
		return nil, fmt.Errorf("proxy: %w", err)
	}
	meta.Admin = adm.Addr()
	h.admin = meta.Admin
	if !IsLoopback(meta.Admin) {
		log.Warn("the admin server is reachable from other hosts and has no authentication: whoever reaches it can read the configuration and stop the proxy (/quitquitquit); keep it on loopback unless that is meant", "admin", meta.Admin)
	}
	var st *status.Server
	if o.Pod != nil {
		serving := func() bool { return isReady() && !draining.Load() }
		if st, err = startStatus(o.Pod, &meta, serving, tel, log); err != nil {
			stop()
			_ = adm.Shutdown(context.Background())
			tel.accessLog.Close()
			return nil, err
		}
	}
	// The reporter outlives ctx until the drain is over, so its last
	// report covers the requests that finished while draining.
	reported := make(chan struct{})
	repCtx, stopReporter := context.WithCancel(context.Background())
	if o.TelemetryURL != "" {
		rep := observe.NewReporter(observe.ReporterOptions{
			URL: o.TelemetryURL, Node: meta.ID(), Stats: tel.stats, Spans: tel.spans,
			Interval: o.ReportInterval, Log: log.With("component", "telemetry"), TokenSource: token,
		})
		go func() { defer close(reported); rep.Run(repCtx) }()
	} else {
		close(reported)
	}

	xc := xdsclient.New(xdsclient.Options{
		Server:      o.XDSAddress,
		Node:        meta.Node(),
		Apply:       apply,
		Log:         log.With("component", "xds"),
		TokenSource: token,
		TLS:         xdsTLS,
		OnNACK:      o.OnNACK,
	})
	src.Store(xc)
	xdsDone := make(chan error, 1)
	go func() { xdsDone <- xc.Run(ctx) }()
	log.Info("proxy started", "admin", meta.Admin, "xds", o.XDSAddress, "xds_tls", xdsTLS != nil)

	go func() {
		defer close(h.done)
		// Waiting for the client first means no Apply can race the drain.
		runErr := <-xdsDone // before ctx ends, only for unusable options
		stop()
		draining.Store(true) // readiness fails first, so callers stop sending
		h.err = shutdown(log, adm, st, rt, runErr)
		sockets.closeAll()
		stopReporter()
		<-reported
		tel.accessLog.Close()
	}()
	return h, nil
}

// shutdown drains the proxy: readiness fails first so callers stop sending,
// then the listeners drain, then the status (st, may be nil) and admin
// servers stop.
func shutdown(log *slog.Logger, adm *admin.Server, st *status.Server, rt *runtime.Proxy, runErr error) error {
	adm.SetDraining()
	log.Info("proxy draining", "grace", DrainGrace)
	dctx, cancel := context.WithTimeout(context.Background(), DrainGrace)
	defer cancel()
	if err := rt.Shutdown(dctx); err != nil {
		// Requests still running after the grace are cut; that is the
		// contract of the grace, not a failure of the proxy.
		log.Warn("drain incomplete", "err", err)
	}
	actx, cancel2 := context.WithTimeout(context.Background(), adminGrace)
	defer cancel2()
	if st != nil {
		if err := st.Shutdown(actx); err != nil {
			log.Warn("status servers shutdown", "err", err)
		}
	}
	if err := adm.Shutdown(actx); err != nil {
		log.Warn("admin shutdown", "err", err)
	}
	log.Info("proxy stopped")
	if runErr != nil {
		return fmt.Errorf("proxy: xds client: %w", runErr)
	}
	return nil
}

// startStatus starts a pod sidecar's status servers.
func startStatus(po *PodOptions, meta *node.Meta, ready func() bool, tel *telemetry, log *slog.Logger) (*status.Server, error) {
	addr := func(a string, port int) string {
		if a != "" {
			return a
		}
		return fmt.Sprintf(":%d", port)
	}
	st, err := status.Start(status.Options{
		HealthAddr:  addr(po.HealthAddr, node.HealthPort),
		StatusAddr:  addr(po.StatusAddr, node.StatusPort),
		StatsAddr:   addr(po.StatsAddr, node.StatsPort),
		Ready:       ready,
		Stats:       tel.stats.Handler(),
		Probes:      po.Probes,
		PodIP:       meta.IP,
		ProbeSource: capture.InboundPassthroughSource.String(),
		Log:         log.With("component", "status"),
	})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	log.Info("status servers started", "health", st.Addr("health"), "status", st.Addr("status"), "stats", st.Addr("stats"), "app_probes", len(po.Probes))
	return st, nil
}

// tokenSource returns how the proxy finds its token for each connection
// and report: JoinTokenFile read anew each time (it must be readable now),
// else JoinToken, else none.
func tokenSource(o Options) (func() (string, error), error) {
	if o.JoinTokenFile == "" {
		tok := o.JoinToken
		return func() (string, error) { return tok, nil }, nil
	}
	path := o.JoinTokenFile
	if _, err := ReadJoinTokenFile(path); err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	return func() (string, error) { return ReadJoinTokenFile(path) }, nil
}

func adminAddress(a string) string {
	if a == "" {
		return defaultAdmin
	}
	return a
}

// lazySource defers to the ADS client, which exists only after the admin
// server starts; until then the dump is empty.
type lazySource struct {
	atomic.Pointer[xdsclient.Client]
}

// Acked implements admin.Source.
func (l *lazySource) Acked() map[string]xdsclient.AckedType {
	if c := l.Load(); c != nil {
		return c.Acked()
	}
	return nil
}

// telemetry is a proxy's metrics, spans and access log.
type telemetry struct {
	stats     *stats.Registry
	spans     *trace.Buffer
	accessLog *accesslog.Logger
	tap       *observe.Tap
}

func newTelemetry(o Options, meta *node.Meta) (*telemetry, error) {
	format, err := accesslog.ParseFormat(string(o.AccessLog))
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	out := o.AccessLogOutput
	if out == nil {
		out = os.Stdout
	}
	sampling := o.TraceSampling
	switch {
	case sampling == 0:
		sampling = trace.DefaultSampling
	case sampling < 0:
		sampling = 0
	}
	t := &telemetry{stats: stats.NewRegistry(0), spans: trace.NewBuffer(0), accessLog: accesslog.New(format, out, 0)}
	t.tap = observe.New(observe.Options{Meta: meta, Stats: t.stats, Sampling: sampling, Spans: t.spans, AccessLog: t.accessLog})
	return t, nil
}

// listenersHandler serves the admin's /listeners as Envoy does: one
// "NAME::ADDRESS" line per listener, or with ?format=json
// {"listener_statuses": [{"name", "local_address": {"socket_address":
// {"address", "port_value"}}}]}. The addresses are the bound ones, so a
// listener configured at port 0 shows the port it got.
func listenersHandler(rt *runtime.Proxy) http.Handler {
	type socketAddress struct {
		Address   string `json:"address"`
		PortValue int    `json:"port_value"`
	}
	type status struct {
		Name         string `json:"name"`
		LocalAddress struct {
			SocketAddress socketAddress `json:"socket_address"`
		} `json:"local_address"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ls := rt.Listeners()
		names := make([]string, 0, len(ls))
		for n := range ls {
			names = append(names, n)
		}
		sort.Strings(names)
		if r.URL.Query().Get("format") != "json" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			for _, n := range names {
				fmt.Fprintf(w, "%s::%s\n", n, ls[n])
			}
			return
		}
		out := struct {
			Statuses []status `json:"listener_statuses"`
		}{Statuses: []status{}}
		for _, n := range names {
			st := status{Name: n}
			if a, ok := ls[n].(*net.TCPAddr); ok {
				st.LocalAddress.SocketAddress = socketAddress{Address: a.IP.String(), PortValue: a.Port}
			}
			out.Statuses = append(out.Statuses, st)
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
	})
}
