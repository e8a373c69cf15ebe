package model

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	security "istio.io/api/security/v1beta1"

	"github.com/weft-mesh/weft/config"
	maistrav1 "github.com/weft-mesh/weft/config/apis/maistra/v1"
	weftv1alpha1 "github.com/weft-mesh/weft/config/apis/weft/v1alpha1"
)

// RootNamespace is the mesh's root namespace: its PeerAuthentication
// without selector is the mesh-wide default, its policies with a selector
// apply in every namespace, and its ServiceMeshMemberRoll lists the mesh's
// members.
const RootNamespace = "istio-system"

// MTLSMode is the effective mutual TLS mode of a workload's inbound port.
type MTLSMode int

// The modes, numbered as Istio's PeerAuthentication.MutualTLS.Mode.
const (
	MTLSUnset      MTLSMode = iota // inherit from the next level
	MTLSDisable                    // plaintext only
	MTLSPermissive                 // mutual TLS or plaintext
	MTLSStrict                     // mutual TLS only
)

// String returns Istio's name of the mode, e.g. "STRICT".
func (m MTLSMode) String() string {
	switch m {
	case MTLSUnset:
		return "UNSET"
	case MTLSDisable:
		return "DISABLE"
	case MTLSPermissive:
		return "PERMISSIVE"
	case MTLSStrict:
		return "STRICT"
	}
	return fmt.Sprintf("MTLSMode(%d)", int(m))
}

func modeOf(m security.PeerAuthentication_MutualTLS_Mode) MTLSMode {
	switch m {
	case security.PeerAuthentication_MutualTLS_DISABLE:
		return MTLSDisable
	case security.PeerAuthentication_MutualTLS_PERMISSIVE:
		return MTLSPermissive
	case security.PeerAuthentication_MutualTLS_STRICT:
		return MTLSStrict
	}
	return MTLSUnset
}

// Options are what Build cannot find in the objects themselves.
type Options struct {
	// JWKS returns the JSON Web Key Set document at a RequestAuthentication's
	// jwksUri, as cached by the control plane (see package jwks); ok is false
	// while it is not known yet. nil: no document is ever known.
	JWKS func(uri string) (doc string, ok bool)
	// Previous is the snapshot this one succeeds, if any: unchanged
	// services are carried over as the same values, and Epochs compare
	// with it. The new snapshot does not keep it.
	Previous *Snapshot
}

// securityIndex holds the security objects arranged for per-workload lookups.
type securityIndex struct {
	// PeerAuthentications with a selector, per namespace, oldest first:
	// when several select a workload, the oldest wins, as in Istio.
	peerAuthSelector map[string][]*config.Object
	// The oldest PeerAuthentication without selector, per namespace.
	peerAuthNamespace map[string]*config.Object
	// AuthorizationPolicy, RequestAuthentication and RateLimit objects, per
	// kind and namespace, sorted by name.
	byNamespace map[config.Kind]map[string][]*config.Object
	// Member namespaces from the root namespace's ServiceMeshMemberRolls;
	// nil when there are none (every namespace is a member).
	members    map[string]bool
	allMembers bool     // a roll lists "*"
	rolls      []string // NS/NAME of the rolls, for messages
}

// policyKinds are the kinds selected per workload with the same rule.
var policyKinds = []config.Kind{config.KindAuthorizationPolicy, config.KindRequestAuthentication, config.KindRateLimit}

func (s *Snapshot) indexSecurity() {
	idx := securityIndex{
		peerAuthSelector:  map[string][]*config.Object{},
		peerAuthNamespace: map[string]*config.Object{},
		byNamespace:       map[config.Kind]map[string][]*config.Object{},
	}
	for _, o := range s.objects[config.KindPeerAuthentication] {
		pa, ok := o.Spec.(*security.PeerAuthentication)
		if !ok {
			continue
		}
		ns := o.Meta.Namespace
		if len(pa.GetSelector().GetMatchLabels()) > 0 {
			idx.peerAuthSelector[ns] = append(idx.peerAuthSelector[ns], o)
		} else if cur := idx.peerAuthNamespace[ns]; cur == nil || older(o, cur) {
			idx.peerAuthNamespace[ns] = o
		}
	}
	for _, list := range idx.peerAuthSelector {
		sort.SliceStable(list, func(i, j int) bool { return older(list[i], list[j]) })
	}
	for _, kind := range policyKinds {
		m := map[string][]*config.Object{}
		for _, o := range s.objects[kind] { // already sorted by namespace/name
			m[o.Meta.Namespace] = append(m[o.Meta.Namespace], o)
		}
		idx.byNamespace[kind] = m
	}
	for _, o := range s.objects[config.KindServiceMeshMemberRoll] {
		roll, ok := o.Spec.(*maistrav1.ServiceMeshMemberRoll)
		if !ok || o.Meta.Namespace != RootNamespace {
			continue // Maistra reads the roll in the control plane's namespace only
		}
		if idx.members == nil {
			idx.members = map[string]bool{}
		}
		idx.rolls = append(idx.rolls, o.Meta.Namespace+"/"+o.Meta.Name)
		for _, m := range roll.GetMembers() {
			if m == "*" {
				idx.allMembers = true
			}
			idx.members[m] = true
		}
	}
	s.sec = idx
}

// older orders objects as Istio breaks ties between policies: by creation
// time, then by name.
func older(a, b *config.Object) bool {
	ta, tb := a.Meta.CreationTimestamp, b.Meta.CreationTimestamp
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	if a.Meta.Namespace != b.Meta.Namespace {
		return a.Meta.Namespace < b.Meta.Namespace
	}
	return a.Meta.Name < b.Meta.Name
}

// InboundMTLS returns the effective mutual TLS mode of a workload's inbound
// port: the workload's port (the one its inbound listener serves). The most
// specific PeerAuthentication decides: the oldest one in ns whose selector
// matches labels (its portLevelMtls entry for port first, then its mtls),
// then the one of ns without selector, then the root namespace's without
// selector; UNSET at a level defers to the next. Never MTLSUnset: with no
// policy at all the mode is STRICT, weft's mesh-wide default.
func (s *Snapshot) InboundMTLS(ns string, labels map[string]string, port uint32) MTLSMode {
	for _, o := range s.sec.peerAuthSelector[ns] {
		pa := o.Spec.(*security.PeerAuthentication)
		if !LabelsMatch(labels, pa.GetSelector().GetMatchLabels()) {
			continue
		}
		if m := modeOf(pa.GetPortLevelMtls()[port].GetMode()); m != MTLSUnset {
			return m
		}
		if m := modeOf(pa.GetMtls().GetMode()); m != MTLSUnset {
			return m
		}
		break // only the oldest matching policy applies; its UNSET inherits
	}
	for _, level := range []string{ns, RootNamespace} {
		if o := s.sec.peerAuthNamespace[level]; o != nil {
			if m := modeOf(o.Spec.(*security.PeerAuthentication).GetMtls().GetMode()); m != MTLSUnset {
				return m
			}
		}
	}
	return MTLSStrict
}

// AuthorizationPolicies returns the AuthorizationPolicy objects that apply
// to a workload in namespace ns with the given labels: those of the root
// namespace and of ns whose selector is absent or empty or matches labels
// (a root-namespace policy with a selector applies in every namespace).
// Sorted by namespace, then name.
func (s *Snapshot) AuthorizationPolicies(ns string, labels map[string]string) []*config.Object {
	return s.selecting(config.KindAuthorizationPolicy, ns, labels)
}

// RequestAuthentications returns the RequestAuthentication objects that
// apply to a workload, by the same rule as AuthorizationPolicies.
func (s *Snapshot) RequestAuthentications(ns string, labels map[string]string) []*config.Object {
	return s.selecting(config.KindRequestAuthentication, ns, labels)
}

// RateLimits returns the weft RateLimit objects that apply to a workload,
// by the same rule as AuthorizationPolicies.
func (s *Snapshot) RateLimits(ns string, labels map[string]string) []*config.Object {
	return s.selecting(config.KindRateLimit, ns, labels)
}

func (s *Snapshot) selecting(kind config.Kind, ns string, labels map[string]string) []*config.Object {
	byNS := s.sec.byNamespace[kind]
	namespaces := []string{ns}
	if ns != RootNamespace {
		namespaces = append(namespaces, RootNamespace)
		sort.Strings(namespaces)
	}
	var out []*config.Object
	for _, n := range namespaces {
		for _, o := range byNS[n] {
			if sel := Selector(o); len(sel) == 0 || LabelsMatch(labels, sel) {
				out = append(out, o)
			}
		}
	}
	return out
}

// Selector returns the matchLabels of a PeerAuthentication,
// AuthorizationPolicy, RequestAuthentication or RateLimit object; nil (any
// workload of the namespace) for every other object.
func Selector(o *config.Object) map[string]string {
	switch spec := o.Spec.(type) {
	case *security.PeerAuthentication:
		return spec.GetSelector().GetMatchLabels()
	case *security.AuthorizationPolicy:
		return spec.GetSelector().GetMatchLabels()
	case *security.RequestAuthentication:
		return spec.GetSelector().GetMatchLabels()
	case *weftv1alpha1.RateLimit:
		return spec.GetSelector().GetMatchLabels()
	}
	return nil
}

// IsMember reports whether namespace ns belongs to the mesh. With no
// ServiceMeshMemberRoll in the root namespace every namespace does; with
// some, the root namespace and the namespaces any of them lists (or all,
// if one lists "*"). When ns is refused, reason says so and names the
// member rolls.
func (s *Snapshot) IsMember(ns string) (ok bool, reason string) {
	if s.sec.members == nil || ns == RootNamespace || s.sec.allMembers || s.sec.members[ns] {
		return true, ""
	}
	kind := "ServiceMeshMemberRoll " + s.sec.rolls[0]
	if len(s.sec.rolls) > 1 {
		kind = "ServiceMeshMemberRolls " + strings.Join(s.sec.rolls, ", ")
	}
	return false, fmt.Sprintf("namespace %q is not a member of the mesh: %s does not list it", ns, kind)
}

// Members returns the member namespaces the root namespace's member rolls
// list, sorted, and whether any roll exists at all (false: every namespace
// is a member). "*" is returned as written.
func (s *Snapshot) Members() (namespaces []string, restricted bool) {
	if s.sec.members == nil {
		return nil, false
	}
	for ns := range s.sec.members {
		namespaces = append(namespaces, ns)
	}
	slices.Sort(namespaces)
	return namespaces, true
}

// JWKS returns the JSON Web Key Set document fetched from uri, as the
// Options the snapshot was built with provide it; ok is false while it is
// not known.
func (s *Snapshot) JWKS(uri string) (doc string, ok bool) {
	doc, ok = s.jwks[uri]
	return doc, ok
}

// freezeJWKS reads, once, the documents the RequestAuthentications name,
// so the snapshot answers the same for its whole life and a fetched
// document is a change between snapshots.
func (s *Snapshot) freezeJWKS() {
	if s.opts.JWKS == nil {
		return
	}
	for _, o := range s.objects[config.KindRequestAuthentication] {
		ra, ok := o.Spec.(*security.RequestAuthentication)
		if !ok {
			continue
		}
		for _, r := range ra.GetJwtRules() {
			uri := r.GetJwksUri()
			if uri == "" {
				continue
			}
			if _, done := s.jwks[uri]; done {
				continue
			}
			if doc, ok := s.opts.JWKS(uri); ok {
				if s.jwks == nil {
					s.jwks = map[string]string{}
				}
				s.jwks[uri] = doc
			}
		}
	}
}

// hasSidecar reports whether a workload runs a sidecar that terminates
// mutual TLS: Istio's tlsMode label, or the weft.io/proxy annotation that
// `weft run` puts on the WorkloadEntry of the sidecar it started.
func hasSidecar(labels map[string]string, meta *config.Meta) bool {
	if labels[config.LabelTLSMode] == "istio" {
		return true
	}
	if meta == nil {
		return false
	}
	_, proxied := meta.Annotations[config.AnnotationProxy]
	return meta.Labels[config.LabelTLSMode] == "istio" || proxied
}
