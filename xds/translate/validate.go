package translate

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/internal/bounded"
)

// validator is what protoc-gen-validate generates on every Envoy message.
type validator interface{ ValidateAll() error }

// Validate checks every resource, and every typed config nested in one,
// against Envoy's own constraints (protoc-gen-validate) and the references between resources that Envoy
// would refuse: an RDS name no RouteConfiguration has, an EDS cluster with
// no ClusterLoadAssignment, duplicate domains or virtual host names in a
// route table, two listeners on one address, filter chains Envoy could not
// tell apart or finish, transport sockets on the wrong side, JWT
// requirements naming no provider, regular expressions that do not compile. A route naming a missing
// cluster is allowed: that is how a subset no DestinationRule defines
// becomes a 503 NC at the proxy.
func (r *Resources) Validate() error {
	var errs []error
	for _, p := range r.problems {
		errs = append(errs, errors.New(p))
	}
	keyed := func(kind, key, name string) {
		if key != name {
			errs = append(errs, fmt.Errorf("%s %q: stored under key %q", kind, name, key))
		}
	}
	addrs := map[string]string{}
	for _, k := range sortedKeys(r.Listeners) {
		l := r.Listeners[k]
		keyed("listener", k, l.GetName())
		errs = append(errs, listenerErrors(l)...)
		if a := listenerAddress(l); a != "" {
			if other, dup := addrs[a]; dup {
				errs = append(errs, fmt.Errorf("listener %q: address %s already used by listener %q", k, a, other))
			}
			addrs[a] = k
		}
		for _, rds := range rdsNames(l) {
			if _, ok := r.Routes[rds]; !ok {
				errs = append(errs, missingRoutes(l.GetName(), rds))
			}
		}
	}
	for _, k := range sortedKeys(r.Routes) {
		rc := r.Routes[k]
		keyed("route configuration", k, rc.GetName())
		errs = append(errs, routeErrors(rc)...)
	}
	for _, k := range sortedKeys(r.Clusters) {
		c := r.Clusters[k]
		keyed("cluster", k, c.GetName())
		errs = append(errs, clusterErrors(c)...)
		if svc, ok := edsName(c); ok {
			if _, ok := r.Endpoints[svc]; !ok {
				errs = append(errs, missingAssignment(k, svc))
			}
		}
	}
	for _, k := range sortedKeys(r.Endpoints) {
		cla := r.Endpoints[k]
		keyed("cluster load assignment", k, cla.GetClusterName())
		errs = append(errs, assignmentErrors(cla)...)
		if c, ok := r.Clusters[k]; !ok || c.GetType() != cluster.Cluster_EDS {
			errs = append(errs, orphanAssignment(k))
		}
	}
	return errors.Join(errs...)
}

// The checks one resource passes or fails on its own, without the others.

func messageErrors(kind, name string, m validator) []error {
	var errs []error
	if err := m.ValidateAll(); err != nil {
		errs = append(errs, fmt.Errorf("%s %q: %w", kind, name, err))
	}
	for _, err := range validateNested(m.(proto.Message).ProtoReflect()) {
		errs = append(errs, fmt.Errorf("%s %q: %w", kind, name, err))
	}
	return errs
}

func listenerErrors(l *listener.Listener) []error {
	errs := messageErrors("listener", l.GetName(), l)
	errs = append(errs, validateFilters(l.GetName(), l.GetFilterChains())...)
	return append(errs, validateListenerChains(l)...)
}

func routeErrors(rc *route.RouteConfiguration) []error {
	return append(messageErrors("route configuration", rc.GetName(), rc), validateRouteTable(rc)...)
}

func clusterErrors(c *cluster.Cluster) []error {
	return append(messageErrors("cluster", c.GetName(), c), validateClusterTLS(c)...)
}

func assignmentErrors(cla *endpoint.ClusterLoadAssignment) []error {
	return messageErrors("cluster load assignment", cla.GetClusterName(), cla)
}

// The references between resources Envoy would refuse.

// listenerAddress is a listener's socket address as host:port, "" for none.
func listenerAddress(l *listener.Listener) string {
	if sa := l.GetAddress().GetSocketAddress(); sa != nil {
		return fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())
	}
	return ""
}

// edsName reports whether c takes its endpoints from EDS, and under which
// assignment name.
func edsName(c *cluster.Cluster) (string, bool) {
	if c.GetType() != cluster.Cluster_EDS {
		return "", false
	}
	if svc := c.GetEdsClusterConfig().GetServiceName(); svc != "" {
		return svc, true
	}
	return c.GetName(), true
}

// rdsNames lists the route configurations a listener's HTTP connection
// managers ask for by RDS.
func rdsNames(l *listener.Listener) []string {
	var out []string
	if a := l.GetApiListener().GetApiListener(); a != nil {
		if m := hcmOf(&listener.Filter{ConfigType: &listener.Filter_TypedConfig{TypedConfig: a}}); m != nil && m.GetRds() != nil {
			out = append(out, m.GetRds().GetRouteConfigName())
		}
	}
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			if m := hcmOf(f); m != nil && m.GetRds() != nil {
				out = append(out, m.GetRds().GetRouteConfigName())
			}
		}
	}
	return out
}

func missingRoutes(listenerName, rds string) error {
	return fmt.Errorf("listener %q: rds names route configuration %q, which does not exist", listenerName, rds)
}

func missingAssignment(clusterName, svc string) error {
	return fmt.Errorf("cluster %q: no ClusterLoadAssignment %q", clusterName, svc)
}

func orphanAssignment(name string) error {
	return fmt.Errorf("cluster load assignment %q: no EDS cluster of that name", name)
}

// hcmOf decodes a network filter's HTTP connection manager, or nil.
func hcmOf(f *listener.Filter) *hcm.HttpConnectionManager {
	tc := f.GetTypedConfig()
	if tc == nil || !strings.HasSuffix(tc.GetTypeUrl(), "HttpConnectionManager") {
		return nil
	}
	m := &hcm.HttpConnectionManager{}
	if tc.UnmarshalTo(m) != nil {
		return nil
	}
	return m
}

// validateFilters checks what HTTP connection managers hold: an RDS
// config source must be ADS, and an inline route table obeys the same
// uniqueness rules as a standalone one. (Their contents are validated by
// validateNested, like every other typed config; whether an RDS name
// exists is a reference, checked with the other resources.)
func validateFilters(listenerName string, chains []*listener.FilterChain) []error {
	var errs []error
	for _, fc := range chains {
		for _, f := range fc.GetFilters() {
			tc := f.GetTypedConfig()
			if tc == nil || !strings.HasSuffix(tc.GetTypeUrl(), "HttpConnectionManager") {
				continue
			}
			m := &hcm.HttpConnectionManager{}
			if err := tc.UnmarshalTo(m); err != nil {
				errs = append(errs, fmt.Errorf("listener %q: filter %s: %w", listenerName, f.GetName(), err))
				continue
			}
			if rds := m.GetRds(); rds != nil {
				if _, ok := rds.GetConfigSource().GetConfigSourceSpecifier().(*core.ConfigSource_Ads); !ok {
					errs = append(errs, fmt.Errorf("listener %q: rds %q: config source is not ADS", listenerName, rds.GetRouteConfigName()))
				}
			}
			if rc := m.GetRouteConfig(); rc != nil {
				errs = append(errs, validateRouteTable(rc)...)
			}
		}
	}
	return errs
}

// validateNested finds every Any inside m (network and HTTP filter
// configs, per-route filter configs, upstream protocol options, retry
// predicates), which protoc-gen-validate leaves opaque, and validates the
// message it holds, recursively: Envoy would unpack and check each one.
// What an Any holds is checked once per content: proxies' filters are
// mostly the same few.
func validateNested(m protoreflect.Message) []error {
	var found []nestedErr
	visitNested("", m, &found)
	errs := make([]error, len(found))
	base := string(m.Descriptor().Name())
	for i, e := range found {
		errs[i] = fmt.Errorf("%s%s: %w", base, e.path, e.err)
	}
	// Range visits fields in an undefined order; sort for stable messages.
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errs
}

// nestedErr is a problem at a path relative to where the walk started.
type nestedErr struct {
	path string
	err  error
}

func visitNested(path string, m protoreflect.Message, out *[]nestedErr) {
	if err := checkMessage(m.Interface()); err != nil {
		*out = append(*out, nestedErr{path, err})
	}
	if a, ok := m.Interface().(*anypb.Any); ok {
		for _, e := range anyErrors(a) {
			*out = append(*out, nestedErr{path + e.path, e.err})
		}
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				visitNested(fmt.Sprintf("%s[%d]", p, i), v.List().Get(i).Message(), out)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				visitNested(fmt.Sprintf("%s[%s]", p, k.String()), mv.Message(), out)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			visitNested(p, v.Message(), out)
		}
		return true
	})
}

// anyChecks remembers what the contents of an Any were found to hold
// wrong, by type and encoding.
var anyChecks = bounded.New[[32]byte, []nestedErr](4096)

// anyErrors unpacks a and validates what it holds, with paths relative to a.
func anyErrors(a *anypb.Any) []nestedErr {
	h := sha256.New()
	h.Write([]byte(a.GetTypeUrl()))
	h.Write([]byte{0})
	h.Write(a.GetValue())
	var key [32]byte
	h.Sum(key[:0])
	return anyChecks.Get(key, func() []nestedErr {
		inner, err := a.UnmarshalNew()
		if err != nil {
			return []nestedErr{{"", err}}
		}
		var found []nestedErr
		if v, ok := inner.(validator); ok {
			if err := v.ValidateAll(); err != nil {
				found = append(found, nestedErr{fmt.Sprintf(" (%s)", inner.ProtoReflect().Descriptor().FullName()), err})
			}
		}
		visitNested("", inner.ProtoReflect(), &found)
		return found
	})
}

// validateRouteTable applies the uniqueness rules Envoy enforces when it
// loads a route table.
func validateRouteTable(rc *route.RouteConfiguration) []error {
	var errs []error
	domains := map[string]string{}
	names := map[string]bool{}
	for _, vh := range rc.GetVirtualHosts() {
		if names[vh.GetName()] {
			errs = append(errs, fmt.Errorf("route configuration %q: duplicate virtual host name %q", rc.GetName(), vh.GetName()))
		}
		names[vh.GetName()] = true
		for _, d := range vh.GetDomains() {
			if other, dup := domains[d]; dup {
				errs = append(errs, fmt.Errorf("route configuration %q: domain %q in both virtual hosts %q and %q", rc.GetName(), d, other, vh.GetName()))
			}
			domains[d] = vh.GetName()
		}
	}
	return errs
}
