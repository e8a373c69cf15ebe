package controlplane

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/weft-mesh/weft/canary"
	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/loadtester"
	"github.com/weft-mesh/weft/proxy"
	tstore "github.com/weft-mesh/weft/telemetry/store"
	"github.com/weft-mesh/weft/xds/node"
)

// canaries is the control plane's progressive delivery: the canary
// analysis over the store with the local target, and the built-in load
// tester its webhooks reach (flagger-loadtester.NS), whose load goes
// through a sidecar of the mesh started on first use, one per namespace.
type canaries struct {
	controller *canary.Controller
	tester     *loadtester.Tester
	done       chan struct{} // closed when the controller has stopped

	mu       sync.Mutex
	sidecars map[string]*http.Client // namespace -> client through its sidecar
}

// setupCanaries creates the analysis; runCanaries starts it.
func (c *ControlPlane) setupCanaries() {
	c.canaries = &canaries{sidecars: map[string]*http.Client{}, done: make(chan struct{})}
	c.canaries.tester = loadtester.New(loadtester.Options{Client: c.loadTesterClient, Log: c.log.With("component", "loadtester")})
	hooks := &http.Client{Transport: loadtester.Transport(c.canaries.tester, &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8, IdleConnTimeout: 30 * time.Second})}
	c.canaries.controller = canary.New(canary.Options{
		Store:     c.store,
		Target:    &canary.Local{Store: c.store, Connected: c.connected},
		Telemetry: telemetrySource{c},
		HTTP:      hooks,
		Log:       c.log.With("component", "canary"),
	})
}

// runCanaries runs the analysis as a writer of the leader's term (locally,
// the control plane's life). In Kubernetes mode it does not run yet: its
// target there (Deployments, NAME-primary) is not built, and the local one
// reads WorkloadEntries only (canary/README.md).
func (c *ControlPlane) runCanaries() {
	if c.kube != nil {
		close(c.canaries.done)
		c.log.Info("canary analysis runs in local mode only for now; Canaries in the cluster are stored and validated, not acted on")
		return
	}
	c.OnLeader(func(term context.Context) {
		c.canaries.controller.Run(term)
		close(c.canaries.done) // one term: the local control plane's life
	})
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
	// The sidecar joins as its own identity, with a token scoped to it.
	token, err := c.MintJoinToken(namespace, loadTesterAccount, "the canary analysis' load tester")
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("load tester sidecar: join token: %w", err)
	}
	opts := proxy.Options{Meta: meta, XDSAddress: localHost(c.XDSAddr()), Log: c.log.With("component", "loadtester-sidecar", "namespace", namespace),
		Sockets: map[string]net.Listener{meta.Outbound: socks[0], meta.Admin: socks[1]}, TelemetryURL: "http://" + localHost(c.APIAddr()),
		JoinToken: token}
	if c.xdsTLS {
		opts.CARoot = c.ca.RootFile()
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
