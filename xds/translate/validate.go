package translate

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
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
	check := func(kind, key, name string, m validator) {
		if key != name {
			errs = append(errs, fmt.Errorf("%s %q: stored under key %q", kind, name, key))
		}
		if err := m.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", kind, name, err))
		}
		for _, err := range validateNested(m.(proto.Message).ProtoReflect()) {
			errs = append(errs, fmt.Errorf("%s %q: %w", kind, name, err))
		}
	}
	addrs := map[string]string{}
	for _, k := range sortedKeys(r.Listeners) {
		l := r.Listeners[k]
		check("listener", k, l.GetName(), l)
		if sa := l.GetAddress().GetSocketAddress(); sa != nil {
			a := fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())
			if other, dup := addrs[a]; dup {
				errs = append(errs, fmt.Errorf("listener %q: address %s already used by listener %q", k, a, other))
			}
			addrs[a] = k
		}
		errs = append(errs, r.validateFilters(l.GetName(), l.GetFilterChains())...)
		errs = append(errs, validateListenerChains(l)...)
	}
	for _, k := range sortedKeys(r.Routes) {
		rc := r.Routes[k]
		check("route configuration", k, rc.GetName(), rc)
		errs = append(errs, validateRouteTable(rc)...)
	}
	for _, k := range sortedKeys(r.Clusters) {
		c := r.Clusters[k]
		check("cluster", k, c.GetName(), c)
		errs = append(errs, validateClusterTLS(c)...)
		if c.GetType() == cluster.Cluster_EDS {
			svc := c.GetEdsClusterConfig().GetServiceName()
			if svc == "" {
				svc = c.GetName()
			}
			if _, ok := r.Endpoints[svc]; !ok {
				errs = append(errs, fmt.Errorf("cluster %q: no ClusterLoadAssignment %q", k, svc))
			}
		}
	}
	for _, k := range sortedKeys(r.Endpoints) {
		cla := r.Endpoints[k]
		check("cluster load assignment", k, cla.GetClusterName(), cla)
		if c, ok := r.Clusters[k]; !ok || c.GetType() != cluster.Cluster_EDS {
			errs = append(errs, fmt.Errorf("cluster load assignment %q: no EDS cluster of that name", k))
		}
	}
	return errors.Join(errs...)
}

// validateFilters checks the references HTTP connection managers make:
// an RDS name must have a RouteConfiguration, and an inline route table
// obeys the same uniqueness rules as a standalone one. (Their contents are
// validated by validateNested, like every other typed config.)
func (r *Resources) validateFilters(listenerName string, chains []*listener.FilterChain) []error {
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
				if _, ok := r.Routes[rds.GetRouteConfigName()]; !ok {
					errs = append(errs, fmt.Errorf("listener %q: rds names route configuration %q, which does not exist", listenerName, rds.GetRouteConfigName()))
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
func validateNested(m protoreflect.Message) []error {
	var errs []error
	var visit func(path string, m protoreflect.Message)
	visit = func(path string, m protoreflect.Message) {
		if err := checkMessage(m.Interface()); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
		}
		if a, ok := m.Interface().(*anypb.Any); ok {
			inner, err := a.UnmarshalNew()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", path, err))
				return
			}
			if v, ok := inner.(validator); ok {
				if err := v.ValidateAll(); err != nil {
					errs = append(errs, fmt.Errorf("%s (%s): %w", path, inner.ProtoReflect().Descriptor().FullName(), err))
				}
			}
			visit(path, inner.ProtoReflect())
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			p := path + "." + string(fd.Name())
			switch {
			case fd.IsList() && fd.Message() != nil:
				for i := 0; i < v.List().Len(); i++ {
					visit(fmt.Sprintf("%s[%d]", p, i), v.List().Get(i).Message())
				}
			case fd.IsMap() && fd.MapValue().Message() != nil:
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					visit(fmt.Sprintf("%s[%s]", p, k.String()), mv.Message())
					return true
				})
			case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
				visit(p, v.Message())
			}
			return true
		})
	}
	visit(string(m.Descriptor().Name()), m)
	// Range visits fields in an undefined order; sort for stable messages.
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errs
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
