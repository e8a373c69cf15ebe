package controlplane

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/weft-mesh/weft/canary"
	canarykube "github.com/weft-mesh/weft/canary/kube"
	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/loadtester"
	"github.com/weft-mesh/weft/proxy"
	tstore "github.com/weft-mesh/weft/telemetry/store"
	"github.com/weft-mesh/weft/xds/node"
)

// canaries is the control plane's progressive delivery: the canary
// analysis over the store with the mode's target (canary.Local, or
// canary/kube's Deployments), and the built-in load tester its webhooks
// reach (flagger-loadtester.NS), whose load goes through a sidecar of the
// mesh started on first use, one per namespace.
type canaries struct {
	controller *canary.Controller
	tester     *loadtester.Tester
	kube       *canarykube.Target // Kubernetes mode; nil locally

	mu       sync.Mutex
	sidecars map[string]*http.Client // namespace -> client through its sidecar
	rootDir  string                  // holds the mesh root for the sidecars in Kubernetes mode

	runMu    sync.Mutex
	stopping bool           // no term starts the controller any more
	runs     sync.WaitGroup // the controller's runs, one per term
}

// setupCanaries creates the analysis; runCanaries starts it.
func (c *ControlPlane) setupCanaries() {
	c.canaries = &canaries{sidecars: map[string]*http.Client{}}
	c.canaries.tester = loadtester.New(loadtester.Options{Client: c.loadTesterClient, Log: c.log.With("component", "loadtester")})
	hooks := &http.Client{Transport: loadtester.Transport(c.canaries.tester, &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8, IdleConnTimeout: 30 * time.Second})}
	var target canary.Target = &canary.Local{Store: c.store, Connected: c.connected}
	if c.kube != nil {
		c.canaries.kube = canarykube.New(c.kube.Clients.Kube, c.log.With("component", "canary"))
		target = c.canaries.kube
	}
	c.canaries.controller = canary.New(canary.Options{
		Store:     c.store,
		Target:    target,
		Telemetry: telemetrySource{c},
		HTTP:      hooks,
		Log:       c.log.With("component", "canary"),
	})
}

// runCanaries runs the analysis as a writer of the leader's terms (the
// local control plane's life is one term): in Kubernetes mode the leader
// alone reads the Deployments and writes routing, Deployments, Services
// and statuses, and its telemetry (Service istiod-leader) is what the
// builtin metrics read.
func (c *ControlPlane) runCanaries() {
	lc := c.canaries
	c.OnLeader(func(term context.Context) {
		lc.runMu.Lock()
		if lc.stopping {
			lc.runMu.Unlock()
			return
		}
		lc.runs.Add(1)
		lc.runMu.Unlock()
		defer lc.runs.Done()
		if lc.kube != nil {
			if err := lc.kube.Start(term); err != nil {
				if term.Err() == nil {
					c.log.Error("canary analysis not running this term", "err", err)
				}
				return
			}
		}
		lc.controller.Run(term)
	})
}

// stopCanaries waits for the controller's last run to end (its last
// status write lands before the store closes); no term starts it again.
func (c *ControlPlane) stopCanaries() {
	lc := c.canaries
	lc.runMu.Lock()
	lc.stopping = true
	lc.runMu.Unlock()
	lc.runs.Wait()
	lc.mu.Lock()
	if lc.rootDir != "" {
		os.RemoveAll(lc.rootDir)
	}
	lc.mu.Unlock()
}

// Canaries returns the canary analysis (for the API and tests).
func (c *ControlPlane) Canaries() *canary.Controller { return c.canaries.controller }

// canaryGuard refuses user writes to what a Canary owns.
func (c *ControlPlane) canaryGuard(ctx context.Context, writes []*config.Object, deletes []config.Key) (string, error) {
	return canary.Guard(ctx, c.store, writes, deletes)
}

// telemetrySource reads the telemetry store, which exists once the HTTP
// side is set up.
type telemetrySource struct{ c *ControlPlane }

func (t telemetrySource) Edges(window time.Duration, now time.Time) ([]tstore.EdgeStat, float64) {
	return t.c.telemetry.Edges(window, now)
}

// connected reports whether the proxy with this node ID has an xDS stream.
func (c *ControlPlane) connected(id string) bool {
	for _, ci := range c.xds.Connections() {
		if ci.ID == id {
			return true
		}
	}
	return false
}

// loadTesterAccount is the load tester's service account, in every
// namespace it sends load from (its SPIFFE identity there).
const loadTesterAccount = "flagger-loadtester"

// loadTesterClient returns a client whose requests go through the load
// tester's sidecar in namespace, starting the sidecar on first use.
func (c *ControlPlane) loadTesterClient(ctx context.Context, namespace string) (*http.Client, error) {
	lc := c.canaries
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if hc := lc.sidecars[namespace]; hc != nil {
		return hc, nil
	}
	var socks []net.Listener
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, s := range socks {
				s.Close()
			}
			return nil, fmt.Errorf("load tester sidecar: %w", err)
		}
		socks = append(socks, l)
	}
	meta := &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "flagger-loadtester-" + namespace, Namespace: namespace,
		WorkloadName: "flagger-loadtester", Labels: map[string]string{"app": "flagger-loadtester"}, ServiceAccount: loadTesterAccount,
		Outbound: socks[0].Addr().String(), Admin: socks[1].Addr().String()}
	closeAll := func() {
		for _, s := range socks {
			s.Close()
		}
	}
	// The sidecar joins as its own identity: locally with a join token
	// scoped to it; in a cluster, where proxies prove themselves with
	// their pod's ServiceAccount token and this one has no pod, with a
	// credential of this process that never leaves it.
	var token string
	var err error
	if c.reviewer != nil {
		token, err = c.reviewer.mintInternal(namespace, loadTesterAccount)
	} else {
		token, err = c.MintJoinToken(namespace, loadTesterAccount, "the canary analysis' load tester")
	}
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("load tester sidecar: join token: %w", err)
	}
	opts := proxy.Options{Meta: meta, XDSAddress: localHost(c.XDSAddr()), Log: c.log.With("component", "loadtester-sidecar", "namespace", namespace),
		Sockets: map[string]net.Listener{meta.Outbound: socks[0], meta.Admin: socks[1]}, TelemetryURL: "http://" + localHost(c.APIAddr()),
		JoinToken: token}
	if c.xdsTLS {
		if opts.CARoot, err = c.rootFileLocked(); err != nil {
			closeAll()
			return nil, fmt.Errorf("load tester sidecar: %w", err)
		}
	}
	h, err := proxy.Start(c.runCtx, opts)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("load tester sidecar: %w", err)
	}
	select {
	case <-h.Ready():
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("load tester sidecar in namespace %s got no configuration in 30s", namespace)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	hc := &http.Client{
		Transport:     &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: meta.Outbound}), MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	lc.sidecars[namespace] = hc
	c.log.Info("load tester sidecar started", "namespace", namespace, "outbound", meta.Outbound)
	return hc, nil
}

// rootFileLocked is a file holding the mesh root, for the load tester's
// sidecars to verify the xDS server: the CA's own, or (Kubernetes mode,
// where the root lives in a Secret) a copy written once. lc.mu is held.
func (c *ControlPlane) rootFileLocked() (string, error) {
	if f := c.ca.RootFile(); f != "" {
		return f, nil
	}
	lc := c.canaries
	if lc.rootDir == "" {
		dir, err := os.MkdirTemp("", "weft-loadtester-")
		if err != nil {
			return "", fmt.Errorf("mesh root for the sidecar: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "root-cert.pem"), c.ca.RootPEM(), 0o600); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("mesh root for the sidecar: %w", err)
		}
		lc.rootDir = dir
	}
	return filepath.Join(lc.rootDir, "root-cert.pem"), nil
}
