// Package crd generates the CustomResourceDefinitions of every kind weft
// stores (config.Kinds): the same group, versions, plural and short names
// the CLI accepts, and Istio's categories and printer columns, so
// `kubectl get vs` and `kubectl get istio-io` behave as with Istio.
//
// The schemas do not describe the fields: `spec` keeps unknown fields and
// the validating webhook (kube/webhook) checks objects with the same
// decoder and validation as `weft apply`, so a refusal names the field the
// way the CLI does.
package crd

import (
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weft-mesh/weft/config"
)

// Labels every generated CRD carries, so `weft kube uninstall` and
// `kubectl get crd -l` find them.
var Labels = map[string]string{
	"app.kubernetes.io/managed-by": "weft",
	"app.kubernetes.io/part-of":    "weft",
}

// extra is what a CRD needs beyond config.KindInfo: kubectl's categories
// and printer columns.
type extra struct {
	categories []string
	columns    []apiextensionsv1.CustomResourceColumnDefinition
}

func col(name, path, desc string) apiextensionsv1.CustomResourceColumnDefinition {
	return apiextensionsv1.CustomResourceColumnDefinition{Name: name, Type: "string", JSONPath: path, Description: desc}
}

var age = apiextensionsv1.CustomResourceColumnDefinition{
	Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp",
	Description: "CreationTimestamp is the time the object was created.",
}

var (
	networkingCategories = []string{"istio-io", "networking-istio-io"}
	securityCategories   = []string{"istio-io", "security-istio-io"}
)

// extras holds the categories and printer columns per group and kind, as
// Istio's (and Maistra's, Flagger's) own CRDs print them. Kinds that
// config.Kinds does not hold yet are listed too: adding the kind there is
// all it takes to get its CRD. A group without an entry gets its own name
// as the category and an Age column.
var extras = map[string]extra{
	"networking.istio.io/VirtualService": {networkingCategories, []apiextensionsv1.CustomResourceColumnDefinition{
		col("Gateways", ".spec.gateways", "The names of gateways and sidecars that should apply these routes"),
		col("Hosts", ".spec.hosts", "The destination hosts to which traffic is being sent"),
		age,
	}},
	"networking.istio.io/DestinationRule": {networkingCategories, []apiextensionsv1.CustomResourceColumnDefinition{
		col("Host", ".spec.host", "The name of a service from the service registry"), age,
	}},
	"networking.istio.io/Gateway": {networkingCategories, nil},
	"networking.istio.io/ServiceEntry": {networkingCategories, []apiextensionsv1.CustomResourceColumnDefinition{
		col("Hosts", ".spec.hosts", "The hosts associated with the ServiceEntry"),
		col("Location", ".spec.location", "Whether the service is external to the mesh or part of the mesh (MESH_EXTERNAL or MESH_INTERNAL)"),
		col("Resolution", ".spec.resolution", "Service resolution mode for the hosts (NONE, STATIC, or DNS)"),
		age,
	}},
	"networking.istio.io/WorkloadEntry": {networkingCategories, []apiextensionsv1.CustomResourceColumnDefinition{
		age, col("Address", ".spec.address", "Address associated with the network endpoint."),
	}},
	"networking.istio.io/WorkloadGroup": {networkingCategories, []apiextensionsv1.CustomResourceColumnDefinition{age}},
	"networking.istio.io/Sidecar":       {networkingCategories, nil},
	"security.istio.io/PeerAuthentication": {securityCategories, []apiextensionsv1.CustomResourceColumnDefinition{
		col("Mode", ".spec.mtls.mode", "Defines the mTLS mode used for peer authentication."), age,
	}},
	"security.istio.io/RequestAuthentication": {securityCategories, nil},
	"security.istio.io/AuthorizationPolicy": {securityCategories, []apiextensionsv1.CustomResourceColumnDefinition{
		col("Action", ".spec.action", "The operation to take."), age,
	}},
	"maistra.io/ServiceMeshMemberRoll": {[]string{"maistra-io"}, []apiextensionsv1.CustomResourceColumnDefinition{
		col("Members", ".spec.members", "The namespaces that are members of the mesh"), age,
	}},
	"weft.io/RateLimit": {[]string{"weft-io"}, []apiextensionsv1.CustomResourceColumnDefinition{
		{Name: "Requests", Type: "integer", JSONPath: ".spec.limit.requests", Description: "Tokens added every interval"},
		col("Per", ".spec.limit.per", "The fill interval"),
		col("Routes", ".spec.routes", "The HTTP routes that get a bucket each"),
		age,
	}},
	"flagger.app/Canary": {[]string{"all"}, []apiextensionsv1.CustomResourceColumnDefinition{
		col("Status", ".status.phase", ""),
		{Name: "Weight", Type: "string", JSONPath: ".status.canaryWeight"},
		{Name: "Suspended", Type: "boolean", JSONPath: ".spec.suspend", Priority: 1},
		{Name: "FailedChecks", Type: "string", JSONPath: ".status.failedChecks", Priority: 1},
		{Name: "Interval", Type: "string", JSONPath: ".spec.analysis.interval", Priority: 1},
		{Name: "Mirror", Type: "boolean", JSONPath: ".spec.analysis.mirror", Priority: 1},
		{Name: "StepWeight", Type: "string", JSONPath: ".spec.analysis.stepWeight", Priority: 1},
		{Name: "StepWeights", Type: "string", JSONPath: ".spec.analysis.stepWeights", Priority: 1},
		{Name: "MaxWeight", Type: "string", JSONPath: ".spec.analysis.maxWeight", Priority: 1},
		{Name: "LastTransitionTime", Type: "string", JSONPath: ".status.lastTransitionTime"},
	}},
	"flagger.app/MetricTemplate": {[]string{"all"}, []apiextensionsv1.CustomResourceColumnDefinition{
		col("Provider", ".spec.provider.type", ""),
	}},
}

// Name is the CRD's name for a kind: "virtualservices.networking.istio.io".
func Name(k config.KindInfo) string { return k.Plural + "." + k.Group }

// All returns the CRD of every kind in config.Kinds, in that order.
func All() []*apiextensionsv1.CustomResourceDefinition {
	out := make([]*apiextensionsv1.CustomResourceDefinition, 0, len(config.Kinds))
	for _, k := range config.Kinds {
		out = append(out, For(k))
	}
	return out
}

// For returns the CRD of one kind: every accepted version served, the
// first one stored, `spec` and `status` free-form (the status subresource
// on, so status writes do not bump the generation).
func For(k config.KindInfo) *apiextensionsv1.CustomResourceDefinition {
	ex, ok := extras[k.Group+"/"+string(k.Kind)]
	if !ok {
		ex = extra{categories: []string{strings.ReplaceAll(k.Group, ".", "-")}, columns: []apiextensionsv1.CustomResourceColumnDefinition{age}}
	}
	preserve := true
	schema := &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
		Type: "object",
		Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"spec": {
				Type: "object", XPreserveUnknownFields: &preserve,
				Description: "The " + string(k.Kind) + " spec; checked by weft's validating webhook (the same checks as `weft apply`).",
			},
			"status": {Type: "object", XPreserveUnknownFields: &preserve},
		},
	}}
	var versions []apiextensionsv1.CustomResourceDefinitionVersion
	for i, v := range k.Versions {
		versions = append(versions, apiextensionsv1.CustomResourceDefinitionVersion{
			Name: v, Served: true, Storage: i == 0,
			Schema:                   schema.DeepCopy(),
			Subresources:             &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
			AdditionalPrinterColumns: append([]apiextensionsv1.CustomResourceColumnDefinition(nil), ex.columns...),
		})
	}
	singular := strings.ToLower(string(k.Kind))
	labels := make(map[string]string, len(Labels))
	for key, v := range Labels {
		labels[key] = v
	}
	return &apiextensionsv1.CustomResourceDefinition{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"},
		ObjectMeta: metav1.ObjectMeta{Name: Name(k), Labels: labels},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: k.Group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Plural: k.Plural, Singular: singular, Kind: string(k.Kind), ListKind: string(k.Kind) + "List",
				ShortNames: append([]string(nil), k.Short...), Categories: append([]string(nil), ex.categories...),
			},
			Scope:    apiextensionsv1.NamespaceScoped,
			Versions: versions,
		},
	}
}
