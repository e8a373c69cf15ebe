package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/weft-mesh/weft/controlplane"
	"github.com/weft-mesh/weft/proxy"
)

// gatewayStartTimeout bounds how long `weft up` waits for the ingress
// gateway to serve its configuration before giving up with an error.
const gatewayStartTimeout = 60 * time.Second

// upSockets are the addresses `weft up` serves, bound before anything
// starts: the control plane's API and xDS addresses, and the ingress
// gateway's ports and admin address. A demo's sidecars, which bind ports
// of their own, can then never take one of them, and a port that is taken
// fails `weft up` at once, naming its flag.
type upSockets struct {
	api, xds, admin net.Listener
	gateway         map[uint32]net.Listener // by Gateway server port; 80 is --gateway-addr
	addrs           map[uint32]string       // the addresses to configure for them
}

// bindUp binds every address f names.
func bindUp(f *upFlags) (*upSockets, error) {
	ports, err := parsePortMap(f.gatewayPortMap)
	if err != nil {
		return nil, fmt.Errorf("--gateway-port-map: %w", err)
	}
	if _, ok := ports[80]; ok {
		return nil, fmt.Errorf("--gateway-port-map: port 80 is served on --gateway-addr")
	}
	ports[80] = f.gatewayAddr
	s := &upSockets{gateway: map[uint32]net.Listener{}, addrs: map[uint32]string{}}
	bind := func(flag, addr string) (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("%s %s: %w", flag, addr, err)
		}
		return ln, nil
	}
	if s.api, err = bind("--api-addr", f.apiAddr); err != nil {
		return nil, err
	}
	if s.xds, err = bind("--xds-addr", f.xdsAddr); err != nil {
		return nil, err
	}
	if s.admin, err = bind("--gateway-admin-addr", f.adminAddr); err != nil {
		return nil, err
	}
	for _, p := range slices.Sorted(maps.Keys(ports)) {
		flag := "--gateway-addr"
		if p != 80 {
			flag = fmt.Sprintf("--gateway-port-map %d=", p)
		}
		ln, err := bind(strings.TrimSuffix(flag, "="), ports[p])
		if err != nil {
			return nil, err
		}
		s.gateway[p], s.addrs[p] = ln, proxy.BoundAddress(ports[p], ln)
	}
	return s, nil
}

// close closes what has not been handed over yet.
func (s *upSockets) close() {
	for _, l := range append([]net.Listener{s.api, s.xds, s.admin}, slices.Collect(maps.Values(s.gateway))...) {
		if l != nil {
			l.Close()
		}
	}
}

// adminAddr is the gateway's admin address to configure.
func (s *upSockets) adminAddr(configured string) string {
	return proxy.BoundAddress(configured, s.admin)
}

// proxySockets hands the gateway's sockets to the proxy, by the addresses
// its node metadata names.
func (s *upSockets) proxySockets(adminAddr string) map[string]net.Listener {
	m := map[string]net.Listener{adminAddr: s.admin}
	for p, ln := range s.gateway {
		m[s.addrs[p]] = ln
	}
	return m
}

// waitGatewayReady waits until the ingress gateway serves its first
// complete configuration. A configuration it refuses (a listener that
// cannot bind) is an error: `weft up` never says it is up for a gateway
// that does not serve.
func waitGatewayReady(ctx context.Context, gw *proxy.Handle, nacks <-chan error) error {
	timeout := time.NewTimer(gatewayStartTimeout)
	defer timeout.Stop()
	select {
	case <-gw.Ready():
		return nil
	case err := <-nacks:
		return fmt.Errorf("ingress gateway cannot serve its configuration: %w", err)
	case <-gw.Done():
		return fmt.Errorf("ingress gateway stopped before it was ready: %w", gw.Wait())
	case <-timeout.C:
		return fmt.Errorf("ingress gateway not ready after %v", gatewayStartTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitGatewayServes waits until the ingress gateway serves every listener
// the control plane generates for it from store revision rev on, such as
// a demo's Gateways; a configuration it refuses meanwhile is an error.
func waitGatewayServes(ctx context.Context, cp *controlplane.ControlPlane, gw *proxy.Handle, rev int64, nacks <-chan error) error {
	deadline := time.Now().Add(gatewayStartTimeout)
	var missing []string
	for {
		select {
		case err := <-nacks:
			return fmt.Errorf("ingress gateway cannot serve its configuration: %w", err)
		case <-gw.Done():
			return errors.New("ingress gateway stopped")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		res, at := cp.Resources(gw.Meta())
		missing = missing[:0]
		if at < rev {
			missing = append(missing, fmt.Sprintf("store revision %d (at %d)", rev, at))
		}
		serving := gw.Listeners()
		for name := range res.Listeners {
			if serving[name] == nil {
				missing = append(missing, "listener "+name)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			sort.Strings(missing)
			return fmt.Errorf("ingress gateway still lacks %s after %v", strings.Join(missing, ", "), gatewayStartTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gatewayNACKs reports the configurations the in-process gateway refuses:
// each is logged as an error, and handed to whoever waits on the channel.
func gatewayNACKs(log interface{ Error(string, ...any) }) (func(error), <-chan error) {
	ch := make(chan error, 1)
	return func(err error) {
		log.Error("ingress gateway refused a configuration (NACK); it serves the last one it accepted, if any", "err", err)
		select {
		case ch <- err:
		default: // one pending is enough to fail a start
		}
	}, ch
}

// rebindSockets binds the addresses of old again, for a gateway started
// anew after the one holding them stopped (and closed them).
func rebindSockets(old map[string]net.Listener) (map[string]net.Listener, error) {
	m := make(map[string]net.Listener, len(old))
	for addr, ln := range old {
		nl, err := net.Listen("tcp", ln.Addr().String())
		if err != nil {
			for _, l := range m {
				l.Close()
			}
			return nil, fmt.Errorf("bind %s again: %w", ln.Addr(), err)
		}
		m[addr] = nl
	}
	return m, nil
}
