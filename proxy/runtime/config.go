// Package runtime is the data plane of the weft proxy: it compiles a complete
// set of xDS resources into an immutable Config (listeners -> route tables ->
// clusters -> load balancers -> endpoints), serves the listeners, and forwards
// each request upstream on the Config current when the request started.
package runtime

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/weft-mesh/weft/proxy/cluster"
	"github.com/weft-mesh/weft/proxy/listener"
	"github.com/weft-mesh/weft/proxy/mtls"
	"github.com/weft-mesh/weft/proxy/route"
	"github.com/weft-mesh/weft/proxy/sds"
)

// Resources is a complete set of xDS resources as the xDS client holds them,
// each map keyed by resource name.
type Resources struct {
	Listeners map[string]*listenerv3.Listener
	Routes    map[string]*routev3.RouteConfiguration
	Clusters  map[string]*clusterv3.Cluster
	Endpoints map[string]*endpointv3.ClusterLoadAssignment
	// Secrets are the SDS secrets ("default" = this workload's certificate
	// and key, "ROOTCA" = the mesh trust bundle) received on the ADS stream.
	Secrets map[string]*tlsv3.Secret
}

// ErrIncomplete is matched (errors.Is) by the error Compile returns when a
// listener references a resource that has not arrived yet. The xDS client
// should wait for more resources rather than NACK.
var ErrIncomplete = errors.New("incomplete resources")

// IncompleteError names the missing resource and who references it.
type IncompleteError struct {
	// Kind is the missing resource's type, e.g. "RouteConfiguration".
	Kind string
	// Name is the missing resource's name.
	Name string
	// Referrer describes the reference, e.g. `listener "virtualOutbound"`.
	Referrer string
}

// Error implements error.
func (e *IncompleteError) Error() string {
	return fmt.Sprintf("%s: %s %q not received yet", e.Referrer, e.Kind, e.Name)
}

// Is makes errors.Is(err, ErrIncomplete) true.
func (e *IncompleteError) Is(target error) bool { return target == ErrIncomplete }

// Config is a compiled, immutable set of resources.
type Config struct {
	listeners map[string]*Listener
	// handoff indexes the listeners that bind no socket (bind_to_port:
	// false) by address: where a use_original_dst listener hands a
	// redirected connection.
	handoff  map[netip.AddrPort]string
	routes   map[string]*route.Table
	clusters map[string]*cluster.Cluster
	// secrets are published to store when the Config is served; TLS
	// settings read them from there at handshake time.
	secrets map[string]*sds.Secret
	store   *sds.Store
}

// Listener is a compiled listener: its spec and the route table it serves.
// A TCP listener (Spec.TCP set) has no route table.
type Listener struct {
	*listener.Spec
	// Routes is the route table (from RDS or inline); nil for TCP.
	Routes *route.Table
	// Selector picks each new connection's filter chain (TLS or not).
	Selector *listener.Selector
	// ByPort are the listener's destination_port chain groups, compiled
	// (Spec.ByDestinationPort); the runtime serves each as a listener of
	// its own that binds no socket.
	ByPort map[uint32]*Listener
}

// tcp reports whether the listener's connections are served by the TCP
// proxy: it has a tcp_proxy, or no chains of its own (only port groups:
// what they do not take is closed).
func (l *Listener) tcp() bool { return l.TCP != nil || len(l.Chains) == 0 }

// steers reports whether the runtime looks at each new connection before
// its filter chains: to recover its original destination, hand it to
// another listener or to one of its port groups.
func (l *Listener) steers() bool { return l.Captured() || len(l.ByPort) > 0 }

// lkey names what the runtime serves: a listener (port 0), or one of its
// destination_port groups.
type lkey struct {
	name string
	port uint32
}

// lookup returns the listener or port group k names, or nil.
func (c *Config) lookup(k lkey) *Listener {
	l := c.listeners[k.name]
	if l == nil || k.port == 0 {
		return l
	}
	return l.ByPort[k.port]
}

// units calls fn for every listener and port group of c.
func (c *Config) units(fn func(lkey, *Listener) error) error {
	for _, name := range sortedKeys(c.listeners) {
		l := c.listeners[name]
		if err := fn(lkey{name: name}, l); err != nil {
			return err
		}
		for _, p := range sortedPorts(l.ByPort) {
			if err := fn(lkey{name: name, port: p}, l.ByPort[p]); err != nil {
				return err
			}
		}
	}
	return nil
}

// Compile validates and compiles r into a Config whose clusters have fresh
// circuit-breaker counters, outlier state and transports. A running proxy
// uses Proxy.Compile, which carries them over from the Configs it served.
// Errors name the resource and the field; a listener whose RDS route
// configuration is missing yields an error matching ErrIncomplete. A route
// (or tcp_proxy) naming an unknown cluster is not an error: such requests
// get 503, and such connections are closed, with response flag NC.
//
// Secrets are compiled too: a listener or cluster whose TLS settings name
// an SDS secret not received yet yields an error matching ErrIncomplete.
// A Config from this function has a secret store of its own, filled at
// once; the proxy's Compile fills the proxy's store when Update serves the
// Config.
func Compile(r *Resources) (*Config, error) {
	c, err := compile(r, cluster.NewState(cluster.StateOptions{}))
	if err != nil {
		return nil, err
	}
	c.store.Publish(c.secrets)
	return c, nil
}

// Compile is like the package's Compile, but the clusters share p's state:
// circuit-breaker counters and outlier ejections (by cluster name and
// endpoint address) survive the swap to the new Config, and clusters whose
// connection settings are unchanged keep their transport and its pooled
// connections. TLS settings read the proxy's secret store, which Update
// fills with the Config's secrets: a rotated certificate reaches every
// listener and transport without rebuilding them.
func (p *Proxy) Compile(r *Resources) (*Config, error) { return compile(r, p.state) }

func compile(r *Resources, state *cluster.State) (*Config, error) {
	c := &Config{
		listeners: map[string]*Listener{},
		handoff:   map[netip.AddrPort]string{},
		routes:    map[string]*route.Table{},
		clusters:  map[string]*cluster.Cluster{},
		secrets:   map[string]*sds.Secret{},
		store:     state.Secrets(),
	}
	for _, name := range sortedKeys(r.Secrets) {
		ps := r.Secrets[name]
		if ps.GetName() != name {
			return nil, fmt.Errorf("secret %q: name: does not match resource name %q", ps.GetName(), name)
		}
		sec, err := sds.Parse(ps)
		if err != nil {
			return nil, err
		}
		c.secrets[name] = sec
	}
	for _, name := range sortedKeys(r.Clusters) {
		pc := r.Clusters[name]
		if pc.GetName() != name {
			return nil, fmt.Errorf("cluster %q: name: does not match resource name %q", pc.GetName(), name)
		}
		cl, err := state.Compile(pc, r.Endpoints[cluster.AssignmentName(pc)])
		if err != nil {
			return nil, err
		}
		if err := c.checkSecrets(cl.Secrets(), fmt.Sprintf("cluster %q", name)); err != nil {
			return nil, err
		}
		c.clusters[name] = cl
	}
	for _, name := range sortedKeys(r.Routes) {
		rc := r.Routes[name]
		if rc.GetName() != name {
			return nil, fmt.Errorf("route config %q: name: does not match resource name %q", rc.GetName(), name)
		}
		t, err := route.Compile(rc)
		if err != nil {
			return nil, err
		}
		c.routes[name] = t
	}
	bound := map[string]string{}
	for _, name := range sortedKeys(r.Listeners) {
		pl := r.Listeners[name]
		if pl.GetName() != name {
			return nil, fmt.Errorf("listener %q: name: does not match resource name %q", pl.GetName(), name)
		}
		spec, err := listener.Parse(pl)
		if err != nil {
			return nil, err
		}
		if other, ok := bound[spec.Address]; ok {
			return nil, fmt.Errorf("listener %q: address: %s already used by listener %q", name, spec.Address, other)
		}
		bound[spec.Address] = name
		l, err := c.compileListener(name, spec)
		if err != nil {
			return nil, err
		}
		if !spec.BindToPort {
			if ap, err := netip.ParseAddrPort(spec.Address); err == nil {
				c.handoff[unmapAddrPort(ap)] = name
			}
		}
		c.listeners[name] = l
	}
	return c, nil
}

// compileListener compiles spec, a listener or one of its port groups, and
// its port groups.
func (c *Config) compileListener(name string, spec *listener.Spec) (*Listener, error) {
	if err := c.checkSecrets(spec.Secrets(), fmt.Sprintf("listener %q", name)); err != nil {
		return nil, err
	}
	l := &Listener{Spec: spec, Selector: listener.NewSelector(spec, c.store)}
	field := spec.Field + ".filters[0].typed_config"
	var err error
	switch {
	case spec.TCP != nil, len(spec.Chains) == 0:
		// Clusters are looked up per connection; a missing one is NC.
	case spec.RouteConfig != nil:
		if l.Routes, err = route.Compile(spec.RouteConfig); err != nil {
			return nil, fmt.Errorf("listener %q: %s.route_config: %w", name, field, err)
		}
	default:
		if l.Routes = c.routes[spec.RouteConfigName]; l.Routes == nil {
			return nil, &IncompleteError{
				Kind:     "RouteConfiguration",
				Name:     spec.RouteConfigName,
				Referrer: fmt.Sprintf("listener %q: %s.rds.route_config_name", name, field),
			}
		}
	}
	for _, p := range sortedPorts(spec.ByDestinationPort) {
		u, err := c.compileListener(name, spec.ByDestinationPort[p])
		if err != nil {
			return nil, err
		}
		if l.ByPort == nil {
			l.ByPort = map[uint32]*Listener{}
		}
		l.ByPort[p] = u
	}
	return l, nil
}

// unmapAddrPort turns an IPv4-mapped address into IPv4, as connections
// report them.
func unmapAddrPort(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// checkSecrets makes sure the secrets refs name have arrived, and are of the
// kind the referring field needs. referrer names the resource.
func (c *Config) checkSecrets(refs []mtls.SecretRef, referrer string) error {
	for _, ref := range refs {
		sec := c.secrets[ref.Name]
		switch {
		case sec == nil:
			return &IncompleteError{Kind: "Secret", Name: ref.Name, Referrer: referrer + ": " + ref.Field}
		case ref.Roots && sec.Roots == nil:
			return fmt.Errorf("%s: %s: secret %q holds no validation_context", referrer, ref.Field, ref.Name)
		case !ref.Roots && sec.Certificate == nil:
			return fmt.Errorf("%s: %s: secret %q holds no tls_certificate", referrer, ref.Field, ref.Name)
		}
	}
	return nil
}

// Listener returns the named listener, or nil.
func (c *Config) Listener(name string) *Listener { return c.listeners[name] }

// Listeners returns all listeners sorted by name.
func (c *Config) Listeners() []*Listener {
	out := make([]*Listener, 0, len(c.listeners))
	for _, n := range sortedKeys(c.listeners) {
		out = append(out, c.listeners[n])
	}
	return out
}

// Cluster returns the named cluster, or nil.
func (c *Config) Cluster(name string) *cluster.Cluster { return c.clusters[name] }

// Clusters returns all clusters sorted by name.
func (c *Config) Clusters() []*cluster.Cluster {
	out := make([]*cluster.Cluster, 0, len(c.clusters))
	for _, n := range sortedKeys(c.clusters) {
		out = append(out, c.clusters[n])
	}
	return out
}

// RouteTable returns the named RDS route table, or nil.
func (c *Config) RouteTable(name string) *route.Table { return c.routes[name] }

func sortedPorts[V any](m map[uint32]V) []uint32 {
	out := make([]uint32, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
