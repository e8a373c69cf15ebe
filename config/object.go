// Package config defines weft's configuration objects: Istio's API kinds
// (VirtualService, DestinationRule, Gateway, ServiceEntry, WorkloadEntry),
// their decoding from Kubernetes-style YAML, validation and encoding.
//
// An Object's Spec is always the real istio.io/api protobuf message, so the
// same YAML that works with Istio works here unchanged.
package config

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
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

var networkingVersions = []string{"v1", "v1beta1", "v1alpha3"}

// Kinds lists every kind weft stores, in the order `weft get all` prints them.
var Kinds = []KindInfo{
	{KindGateway, "networking.istio.io", networkingVersions, "gateways", []string{"gw"}, func() proto.Message { return &networking.Gateway{} }},
	{KindVirtualService, "networking.istio.io", networkingVersions, "virtualservices", []string{"vs"}, func() proto.Message { return &networking.VirtualService{} }},
	{KindDestinationRule, "networking.istio.io", networkingVersions, "destinationrules", []string{"dr"}, func() proto.Message { return &networking.DestinationRule{} }},
	{KindServiceEntry, "networking.istio.io", networkingVersions, "serviceentries", []string{"se"}, func() proto.Message { return &networking.ServiceEntry{} }},
	{KindWorkloadEntry, "networking.istio.io", networkingVersions, "workloadentries", []string{"we"}, func() proto.Message { return &networking.WorkloadEntry{} }},
}

// LookupKind finds a kind by its name, plural, singular or short name,
// case-insensitively ("VirtualService", "virtualservices", "vs").
func LookupKind(name string) (KindInfo, bool) {
	for _, k := range Kinds {
		if equalFold(name, string(k.Kind)) || equalFold(name, k.Plural) || equalFold(name, k.Plural[:len(k.Plural)-1]) {
			return k, true
		}
		for _, s := range k.Short {
			if equalFold(name, s) {
				return k, true
			}
		}
	}
	return KindInfo{}, false
}

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
)
