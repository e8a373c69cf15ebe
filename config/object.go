// Package config defines weft's configuration objects: Istio's API kinds
// (VirtualService, DestinationRule, Gateway, ServiceEntry, WorkloadEntry, Sidecar,
// PeerAuthentication, AuthorizationPolicy, RequestAuthentication), Maistra's
// ServiceMeshMemberRoll, weft's own RateLimit and Flagger's Canary and
// MetricTemplate, their decoding from
// Kubernetes-style YAML, validation and encoding.
//
// An Object's Spec is always the real istio.io/api protobuf message (for
// the Istio kinds), so the same YAML that works with Istio works here
// unchanged. The other kinds' messages are generated from the .proto files
// under config/apis.
package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	flaggerv1beta1 "github.com/weft-mesh/weft/config/apis/flagger/v1beta1"
	maistrav1 "github.com/weft-mesh/weft/config/apis/maistra/v1"
	weftv1alpha1 "github.com/weft-mesh/weft/config/apis/weft/v1alpha1"
)

// Kind names an object kind, as written in YAML (e.g. "VirtualService").
type Kind string

// The kinds weft understands.
const (
	KindVirtualService  Kind = "VirtualService"
	KindDestinationRule Kind = "DestinationRule"
	KindGateway         Kind = "Gateway"
	KindServiceEntry    Kind = "ServiceEntry"
	KindWorkloadEntry   Kind = "WorkloadEntry"
	KindSidecar         Kind = "Sidecar" // networking.istio.io: scopes what a proxy receives

	KindPeerAuthentication    Kind = "PeerAuthentication"    // security.istio.io
	KindAuthorizationPolicy   Kind = "AuthorizationPolicy"   // security.istio.io
	KindRequestAuthentication Kind = "RequestAuthentication" // security.istio.io
	KindServiceMeshMemberRoll Kind = "ServiceMeshMemberRoll" // maistra.io, spec *maistrav1.ServiceMeshMemberRoll
	KindRateLimit             Kind = "RateLimit"             // weft.io, spec *weftv1alpha1.RateLimit
	KindCanary                Kind = "Canary"                // flagger.app, spec *flaggerv1beta1.Canary, status *flaggerv1beta1.CanaryStatus
	KindMetricTemplate        Kind = "MetricTemplate"        // flagger.app, spec *flaggerv1beta1.MetricTemplate
)

// KindInfo describes how one kind is spelled and which message holds its spec.
type KindInfo struct {
	Kind     Kind
	Group    string   // API group, e.g. "networking.istio.io"
	Versions []string // accepted versions; the first is the one written out
	Plural   string   // lower-case plural, e.g. "virtualservices"
	Short    []string // short names accepted by `weft get`, e.g. "vs"
	New      func() proto.Message
}

// PreferredAPIVersion is the apiVersion written when an object is encoded.
func (k KindInfo) PreferredAPIVersion() string { return k.Group + "/" + k.Versions[0] }

var (
	networkingVersions = []string{"v1", "v1beta1", "v1alpha3"}
	securityVersions   = []string{"v1", "v1beta1"}
)

// Kinds lists every kind weft stores, in the order `weft get all` prints them.
var Kinds = []KindInfo{
	{KindGateway, "networking.istio.io", networkingVersions, "gateways", []string{"gw"}, func() proto.Message { return &networking.Gateway{} }},
	{KindVirtualService, "networking.istio.io", networkingVersions, "virtualservices", []string{"vs"}, func() proto.Message { return &networking.VirtualService{} }},
	{KindDestinationRule, "networking.istio.io", networkingVersions, "destinationrules", []string{"dr"}, func() proto.Message { return &networking.DestinationRule{} }},
	{KindServiceEntry, "networking.istio.io", networkingVersions, "serviceentries", []string{"se"}, func() proto.Message { return &networking.ServiceEntry{} }},
	{KindWorkloadEntry, "networking.istio.io", networkingVersions, "workloadentries", []string{"we"}, func() proto.Message { return &networking.WorkloadEntry{} }},
	{KindSidecar, "networking.istio.io", networkingVersions, "sidecars", nil, func() proto.Message { return &networking.Sidecar{} }},
	{KindPeerAuthentication, "security.istio.io", securityVersions, "peerauthentications", []string{"pa"}, func() proto.Message { return &security.PeerAuthentication{} }},
	{KindRequestAuthentication, "security.istio.io", securityVersions, "requestauthentications", []string{"ra"}, func() proto.Message { return &security.RequestAuthentication{} }},
	{KindAuthorizationPolicy, "security.istio.io", securityVersions, "authorizationpolicies", []string{"ap"}, func() proto.Message { return &security.AuthorizationPolicy{} }},
	{KindRateLimit, "weft.io", []string{"v1alpha1"}, "ratelimits", []string{"rl"}, func() proto.Message { return &weftv1alpha1.RateLimit{} }},
	{KindServiceMeshMemberRoll, "maistra.io", []string{"v1"}, "servicemeshmemberrolls", []string{"smmr"}, func() proto.Message { return &maistrav1.ServiceMeshMemberRoll{} }},
	{KindCanary, "flagger.app", []string{"v1beta1"}, "canaries", nil, func() proto.Message { return &flaggerv1beta1.Canary{} }},
	{KindMetricTemplate, "flagger.app", []string{"v1beta1"}, "metrictemplates", nil, func() proto.Message { return &flaggerv1beta1.MetricTemplate{} }},
}

// LookupKind finds a kind the ways kubectl takes a resource type,
// case-insensitively: its name, plural, singular or short name
// ("VirtualService", "virtualservices", "virtualservice", "vs"), and the
// plural or singular qualified by its group, optionally with a version
// ("virtualservice.networking.istio.io",
// "virtualservices.v1beta1.networking.istio.io").
func LookupKind(name string) (KindInfo, bool) {
	resource, qualifier, qualified := strings.Cut(name, ".")
	for _, k := range Kinds {
		if qualified {
			if k.namedBy(resource, false) && k.qualifiedBy(qualifier) {
				return k, true
			}
			continue
		}
		if k.namedBy(name, true) {
			return k, true
		}
	}
	return KindInfo{}, false
}

// namedBy reports whether name is the kind, its plural or singular, or
// (with short) one of its short names.
func (k KindInfo) namedBy(name string, short bool) bool {
	if equalFold(name, string(k.Kind)) || equalFold(name, k.Plural) {
		return true
	}
	if short {
		for _, s := range k.Short {
			if equalFold(name, s) {
				return true
			}
		}
	}
	return false
}

// qualifiedBy reports whether q is the kind's group, or VERSION.GROUP
// with a version the kind accepts.
func (k KindInfo) qualifiedBy(q string) bool {
	if equalFold(q, k.Group) {
		return true
	}
	v, group, ok := strings.Cut(q, ".")
	return ok && equalFold(group, k.Group) && slices.Contains(k.Versions, strings.ToLower(v))
}

// Singular is the kind's lower-case singular, as kubectl prints it in
// "virtualservice.networking.istio.io/reviews".
func (k KindInfo) Singular() string { return strings.ToLower(string(k.Kind)) }

// FullName is the singular qualified by the group:
// "virtualservice.networking.istio.io".
func (k KindInfo) FullName() string { return k.Singular() + "." + k.Group }

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}

// Meta is the subset of Kubernetes ObjectMeta that weft keeps.
type Meta struct {
	Name              string            `json:"name"`
	Namespace         string            `json:"namespace,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	Generation        int64             `json:"generation,omitempty"`
	CreationTimestamp time.Time         `json:"creationTimestamp,omitempty"`
}

// Key identifies an object in the store.
type Key struct {
	Kind      Kind
	Namespace string
	Name      string
}

func (k Key) String() string { return fmt.Sprintf("%s %s/%s", k.Kind, k.Namespace, k.Name) }

// Object is one configuration object. Spec holds the istio.io/api message
// matching Kind (e.g. *networking.VirtualService); objects are treated as
// immutable once stored: copy before changing.
type Object struct {
	APIVersion string
	Kind       Kind
	Meta       Meta
	Spec       proto.Message
	// Status is what a controller records about the object (a Canary's
	// *flaggerv1beta1.CanaryStatus), nil for kinds without one. Like
	// Kubernetes' status subresource it is not configuration: Decode
	// ignores it in user input, Equal ignores it, and only a store's
	// UpdateStatus changes it (see store.StatusWriter).
	Status proto.Message
}

// Key returns the object's store key.
func (o *Object) Key() Key { return Key{o.Kind, o.Meta.Namespace, o.Meta.Name} }

// DefaultNamespace is used when neither the object nor the command names one.
const DefaultNamespace = "default"

// Labels and annotations weft itself sets on objects it creates.
const (
	// LabelService marks a WorkloadEntry registered by `weft run` with the
	// service it serves; the ServiceEntry `weft run` creates selects on it.
	LabelService = "weft.io/service"
	// LabelWorkload names the workload (a deployment, in Kubernetes terms)
	// a WorkloadEntry is an instance of, e.g. "catalog-v1" for instance
	// "catalog-v1-6d6b478456-9vsm2"; metrics report it as destination_workload.
	LabelWorkload = "weft.io/workload"
	// AnnotationProxy records the xDS node ID of the sidecar that registered
	// a WorkloadEntry, so the control plane can remove it when that sidecar
	// is gone.
	AnnotationProxy = "weft.io/proxy"
	// LabelTLSMode is Istio's label for a workload that runs a sidecar and
	// so accepts mutual TLS; its value is "istio" (`weft run` sets it).
	LabelTLSMode = "security.istio.io/tlsMode"
)

// ValidateNamespace checks a namespace name as Kubernetes does: a DNS
// label.
func ValidateNamespace(ns string) error {
	if !isDNS1123Label(ns) {
		return fmt.Errorf("%q is not a valid namespace: use lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters", ns)
	}
	return nil
}
