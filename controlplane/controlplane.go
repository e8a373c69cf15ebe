// Package controlplane runs weft's control plane: the store feeds the model,
// the model feeds the xDS server, and the HTTP API writes to the store. It
// also holds the mesh's CA and the tokens that guard its doors: proxies
// present the join token on their xDS stream, API writers the API token.
//
//	store.Changed() -> model.BuildWith -> xds.Push -> translate.Translator per proxy
//
// Locally the store is a bbolt file in the state directory. In Kubernetes
// mode (Options.Kubernetes) it is the cluster (store/kube), the CA and the
// API token live in Secrets, proxies present their ServiceAccount tokens,
// and the replica elected leader writes status and root certificates.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/weft-mesh/weft/api"
	"github.com/weft-mesh/weft/ca"
	"github.com/weft-mesh/weft/console"
	"github.com/weft-mesh/weft/jointoken"
	"github.com/weft-mesh/weft/jwks"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/store"
	"github.com/weft-mesh/weft/store/bolt"
	kstore "github.com/weft-mesh/weft/store/kube"
	"github.com/weft-mesh/weft/telemetry/otlp"
	tstore "github.com/weft-mesh/weft/telemetry/store"
	"github.com/weft-mesh/weft/xds/node"
	"github.com/weft-mesh/weft/xds/server"
	"github.com/weft-mesh/weft/xds/translate"
)

// Options configures a control plane.
type Options struct {
	StateDir string // holds the store; created if missing
	APIAddr  string // HTTP API, e.g. 127.0.0.1:15080
	XDSAddr  string // gRPC ADS, e.g. 127.0.0.1:15010
	// APIListener and XDSListener, when set, are sockets already bound
	// (at APIAddr and XDSAddr) to serve instead of binding those addresses:
	// `weft up` binds every address it serves before starting anything.
	// The control plane owns them from Start on.
	APIListener, XDSListener net.Listener
	Log                      *slog.Logger
	// ReapAfter is how long a registered workload may have no xDS stream
	// before its WorkloadEntry is removed (its endpoints leave load
	// balancing at once). Zero means DefaultReapAfter.
	ReapAfter time.Duration
	// OTLPEndpoint, when set, is an OTLP/HTTP collector (http://HOST:4318)
	// that receives every span proxies report.
	OTLPEndpoint string
	// ConsoleToken is required to use the console and read telemetry on a
	// loopback API address (empty: none). On any other address the
	// console and every read need the API token instead.
	ConsoleToken string

	// TrustDomain is the SPIFFE trust domain; default ca.DefaultTrustDomain.
	TrustDomain string
	// CACertsDir, when set, is an Istio plug-in CA directory to sign with;
	// else a self-signed root lives in STATE_DIR/ca.
	CACertsDir string
	// CertTTL is the lifetime of workload certificates; default
	// ca.DefaultCertTTL. They are re-issued at half of it.
	CertTTL time.Duration
	// JWKSClient fetches RequestAuthentication jwksUri documents; nil: a
	// default client.
	JWKSClient *http.Client

	// Kubernetes, when set, runs the control plane against a cluster
	// instead of the state directory (which it then does not use).
	Kubernetes *KubeOptions
	// Webhook turns on the Kubernetes admission webhooks (webhook.go).
	Webhook WebhookOptions
	// MaxRequestHeadersKB and MaxHeadersCount bound the request headers
	// every proxy's HTTP listeners read (HCM max_request_headers_kb and
	// max_headers_count); 0: Envoy's defaults, 60 KiB and 100 headers.
	MaxRequestHeadersKB, MaxHeadersCount uint32
	// APIHosts are more names the API and console answer to besides IP
	// addresses, localhost, this machine's name and the API address's
	// host: a DNS name clients use for a control plane reachable from
	// other hosts. Requests naming any other Host are refused (DNS
	// rebinding), as are cross-origin ones.
	APIHosts []string
	// JoinTokenScope is JoinScopeIdentity (""; proxies join with tokens
	// scoped to their identity) or JoinScopeMesh (the mesh-wide
	// STATE_DIR/join-token is accepted too).
	JoinTokenScope string

	// DebounceAfter, DebounceMax and PushConcurrency tune pushes (see
	// xds/server); zero means the defaults.
	DebounceAfter, DebounceMax time.Duration
	PushConcurrency            int
}

// DefaultReapAfter is the grace period before an orphaned workload is removed.
const DefaultReapAfter = 30 * time.Second

// ControlPlane is a running control plane.
type ControlPlane struct {
	opts  Options
	log   *slog.Logger
	store store.Store
	xds   *server.Server
	snap  atomic.Pointer[model.Snapshot]
	// translator generates every proxy's resources, sharing what they
	// have in common.
	translator *translate.Translator

	telemetry    *tstore.Store
	exporter     *otlp.Exporter
	consoleToken string

	ca                  *ca.CA
	caSource            string
	joinToken, apiToken string // joinToken: the mesh-wide one, "" unless JoinScopeMesh
	tokens              *jointoken.Store
	xdsTLS              bool
	jwks                *jwks.Cache
	jwksChanged         chan struct{}
	canaries            *canaries
	runCtx              context.Context
	health              *proxyHealth

	// Kubernetes mode: nil locally.
	kube      *KubeOptions
	kstore    *kstore.Store
	reviewer  *tokenReviewer
	electDone chan struct{}
	leader    leadership

	snapMu      sync.Mutex
	snapChanged chan struct{} // closed (and replaced) at every rebuild

	apiLn, xdsLn net.Listener
	webhookLn    net.Listener
	httpSrv      *http.Server
	grpcSrv      *grpc.Server
	done         chan struct{}
	err          error
}

// Start opens the store, binds both addresses (unless given their
// sockets) and begins serving.
func Start(ctx context.Context, opts Options) (*ControlPlane, error) {
	c, err := start(ctx, opts)
	if err != nil {
		for _, l := range []net.Listener{opts.APIListener, opts.XDSListener} {
			if l != nil {
				l.Close()
			}
		}
	}
	return c, err
}

func start(ctx context.Context, opts Options) (*ControlPlane, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.ReapAfter == 0 {
		opts.ReapAfter = DefaultReapAfter
	}
	if opts.TrustDomain == "" {
		opts.TrustDomain = ca.DefaultTrustDomain
	}
	if opts.CertTTL <= 0 {
		opts.CertTTL = ca.DefaultCertTTL
	}
	c := &ControlPlane{opts: opts, log: opts.Log, done: make(chan struct{}), jwksChanged: make(chan struct{}, 1),
		snapChanged: make(chan struct{}), health: newProxyHealth(), runCtx: ctx}
	c.translator = translate.NewTranslator(c.translateOptions())
	if err := c.setupStore(ctx); err != nil {
		return nil, err
	}
	st := c.store
	// A changed key set is a model change: the watch loop rebuilds and
	// pushes, as for a store write.
	c.jwks = jwks.New(jwks.Options{Client: opts.JWKSClient, Logger: opts.Log.With("component", "jwks"), OnChange: func() {
		select {
		case c.jwksChanged <- struct{}{}:
		default:
		}
	}})
	fail := func(err error) (*ControlPlane, error) {
		for _, l := range []net.Listener{c.xdsLn, c.apiLn} {
			if l != nil {
				l.Close()
			}
		}
		c.jwks.Close()
		st.Close()
		return nil, err
	}
	if err := c.rebuild(ctx); err != nil {
		return fail(err)
	}
	// Locally proxies join with join tokens (scoped, or the mesh-wide one
	// when allowed); in a cluster with their ServiceAccount tokens.
	authenticate, revalidate := c.authenticate, c.revalidate
	if c.reviewer != nil {
		authenticate, revalidate = c.reviewer.authenticate, nil
	}
	// A client certificate from the mesh CA (proxyless gRPC) is a
	// credential too.
	authenticate = server.PeerCertAuth(opts.TrustDomain, authenticate)
	c.xds = server.New(generator{c}, server.Options{
		Log:             opts.Log.With("component", "xds"),
		Authenticate:    authenticate,
		Revalidate:      revalidate,
		Admit:           c.admit,
		Issuer:          c.ca,
		TrustDomain:     opts.TrustDomain,
		CertTTL:         opts.CertTTL,
		OnStream:        c.onStream,
		DebounceAfter:   opts.DebounceAfter,
		DebounceMax:     opts.DebounceMax,
		PushConcurrency: opts.PushConcurrency,
	})
	grpcOpts, err := c.xdsServerOptions()
	if err != nil {
		return fail(err)
	}

	if c.xdsLn = opts.XDSListener; c.xdsLn == nil {
		if c.xdsLn, err = net.Listen("tcp", opts.XDSAddr); err != nil {
			return fail(fmt.Errorf("xds address: %w", err))
		}
	}
	if c.apiLn = opts.APIListener; c.apiLn == nil {
		if c.apiLn, err = net.Listen("tcp", opts.APIAddr); err != nil {
			return fail(fmt.Errorf("api address: %w", err))
		}
	}
	c.grpcSrv = grpc.NewServer(append(append(grpcOpts, server.ServerOptions()...),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		// Thousands of mostly idle streams: write buffers only while
		// writing, and small read buffers (requests are small).
		grpc.SharedWriteBuffer(true), grpc.ReadBufferSize(8<<10),
	)...)
	c.xds.Register(c.grpcSrv)
	c.setupCanaries()
	apiSrv := api.New(st, api.Options{Log: opts.Log.With("component", "api"), Proxies: proxySource{c},
		Token: c.apiToken, ProtectReads: console.NeedsToken(c.APIAddr()), Tokens: c.apiTokens(), Certificates: c.issueWorkloadCert,
		Guard: c.canaryGuard, Canaries: c.canaries.controller, LoadTester: c.canaries.tester})
	mux, err := c.setupTelemetry(apiSrv.Handler())
	if err != nil {
		return fail(err)
	}
	c.httpSrv = &http.Server{Handler: c.guard(mux), ReadHeaderTimeout: 10 * time.Second}
	if err := c.startWebhooks(ctx); err != nil {
		return fail(err)
	}

	go c.grpcSrv.Serve(c.xdsLn)
	go c.httpSrv.Serve(c.apiLn)
	go c.watch(ctx)
	go c.runTelemetry(ctx)
	if c.kube != nil {
		// Every replica serves; the leader alone writes to the cluster.
		c.electDone = make(chan struct{})
		c.OnLeader(c.writeStatuses)
		c.OnLeader(c.publishRootCert)
		c.OnLeader(c.labelLeaderPod)
		c.clearLeaderLabel(ctx)
		go c.elect(ctx)
	} else {
		// Pods' endpoints come and go with their EndpointSlices; only
		// locally registered workloads need reaping.
		go c.reap(ctx)
		c.startTerm(ctx)
	}
	c.runCanaries()
	go func() {
		<-ctx.Done()
		c.stop()
	}()
	where := []any{"api", c.APIAddr(), "xds", c.XDSAddr(), "xds_tls", c.xdsTLS, "trust_domain", opts.TrustDomain, "ca", c.caSource}
	if c.kube != nil {
		where = append(where, "cluster", c.kube.Clients.Source, "namespace", c.kube.Namespace, "identity", c.kube.Identity)
	} else {
		where = append(where, "state", opts.StateDir)
	}
	c.log.Info("control plane up", where...)
	return c, nil
}

// setupStore opens the store and the credentials that go with it: the
// cluster's in Kubernetes mode, else the state directory's.
func (c *ControlPlane) setupStore(ctx context.Context) error {
	if c.opts.Kubernetes != nil {
		return c.setupKube(ctx)
	}
	if err := os.MkdirAll(c.opts.StateDir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if err := checkStateFiles(c.opts.StateDir); err != nil {
		return err
	}
	if err := c.setupSecurity(); err != nil {
		return err
	}
	st, err := bolt.Open(filepath.Join(c.opts.StateDir, "store.db"))
	if err != nil {
		return err
	}
	c.store = st
	return nil
}

// APIAddr is the bound HTTP API address.
func (c *ControlPlane) APIAddr() string { return c.apiLn.Addr().String() }

// XDSAddr is the bound xDS address.
func (c *ControlPlane) XDSAddr() string { return c.xdsLn.Addr().String() }

// Snapshot returns the current model.
func (c *ControlPlane) Snapshot() *model.Snapshot { return c.snap.Load() }

// Done is closed once the control plane has stopped.
func (c *ControlPlane) Done() <-chan struct{} { return c.done }

func (c *ControlPlane) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c.httpSrv.Shutdown(ctx)
	stopped := make(chan struct{})
	go func() { c.grpcSrv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		c.grpcSrv.Stop() // ADS streams never end by themselves
	}
	if c.exporter != nil {
		<-c.exporter.Done() // flushes queued spans, bounded by its timeout
	}
	if c.electDone != nil {
		// Released on the way out, the Lease passes to another replica at
		// once instead of after it expires.
		select {
		case <-c.electDone:
		case <-time.After(c.kube.RenewDeadline):
		}
	}
	c.stopCanaries()
	c.canaries.tester.Close()
	c.jwks.Close()
	c.store.Close()
	close(c.done)
}

// rebuild reads the whole store into a new model snapshot, whose
// RequestAuthentications read key sets from the JWKS cache; the cache
// stops refreshing URIs no object names any more.
func (c *ControlPlane) rebuild(ctx context.Context) error {
	objs, rev, err := c.store.List(ctx, "", "")
	if err != nil {
		return fmt.Errorf("read store: %w", err)
	}
	snap := model.BuildWith(rev, objs, model.Options{JWKS: c.jwks.Get, Previous: c.snap.Load()})
	c.snap.Store(snap)
	c.snapMu.Lock()
	close(c.snapChanged)
	c.snapChanged = make(chan struct{})
	c.snapMu.Unlock()
	uris := jwksURIs(snap)
	c.jwks.Retain(func(uri string) bool { return uris[uri] })
	return nil
}

// watch rebuilds the model and pushes to proxies after every store write
// and whenever a fetched JWKS document changes.
func (c *ControlPlane) watch(ctx context.Context) {
	for {
		changed := c.store.Changed()
		why := "store revision"
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-c.jwksChanged:
			why = "JWKS fetched; store revision"
		}
		prev := c.snap.Load()
		if err := c.rebuild(ctx); err != nil {
			if !errors.Is(err, context.Canceled) {
				c.log.Error("rebuild model", "err", err)
			}
			continue
		}
		snap := c.snap.Load()
		if hosts, only := snap.EndpointChanges(prev); only {
			// Only endpoints changed: only their watchers need a push.
			c.xds.PushEndpoints(fmt.Sprintf("endpoints of %d services; %s %d", len(hosts), why, snap.Revision), hosts)
			continue
		}
		c.xds.Push(fmt.Sprintf("%s %d", why, snap.Revision))
	}
}

// snapshotChanged returns a channel closed at the next model rebuild.
func (c *ControlPlane) snapshotChanged() <-chan struct{} {
	c.snapMu.Lock()
	defer c.snapMu.Unlock()
	return c.snapChanged
}

type generator struct{ c *ControlPlane }

// Resources returns what the xDS server sends a proxy with metadata p now,
// and the store revision it reflects.
func (c *ControlPlane) Resources(p *node.Meta) (*translate.Resources, int64) {
	snap := c.snap.Load()
	return c.translator.Generate(snap, p, nil).Resources(), snap.Revision
}

// translateOptions are the options every generation uses. The trust domain
// names the SANs clients expect of their peers: the one the CA issues
// certificates in. Proxy health changes without a new snapshot, so the
// translator is told when it did (DownEpoch).
func (c *ControlPlane) translateOptions() translate.Options {
	return translate.Options{TrustDomain: c.opts.TrustDomain, ProxyDown: c.health.isDown, DownEpoch: c.health.epoch,
		MaxRequestHeadersKB: c.opts.MaxRequestHeadersKB, MaxHeadersCount: c.opts.MaxHeadersCount}
}

func (g generator) Generate(p *node.Meta, prev *translate.Output) (*translate.Output, error) {
	return g.c.translator.Generate(g.c.snap.Load(), p, prev), nil
}
