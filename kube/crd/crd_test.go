package crd

import (
	"fmt"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/weft-mesh/weft/config"
)

func TestAllKinds(t *testing.T) {
	crds := All()
	if len(crds) != len(config.Kinds) {
		t.Fatalf("%d CRDs for %d kinds", len(crds), len(config.Kinds))
	}
	for i, k := range config.Kinds {
		c := crds[i]
		if c.Name != k.Plural+"."+k.Group || c.Spec.Group != k.Group || c.Spec.Names.Kind != string(k.Kind) ||
			c.Spec.Names.Plural != k.Plural || c.Spec.Names.ListKind != string(k.Kind)+"List" {
			t.Errorf("%s: names %s %+v", k.Kind, c.Name, c.Spec.Names)
		}
		if !reflect.DeepEqual(c.Spec.Names.ShortNames, k.Short) {
			t.Errorf("%s: short names %v, want %v", k.Kind, c.Spec.Names.ShortNames, k.Short)
		}
		if c.Spec.Scope != "Namespaced" || c.Labels["app.kubernetes.io/managed-by"] != "weft" {
			t.Errorf("%s: scope %s labels %v", k.Kind, c.Spec.Scope, c.Labels)
		}
		if len(c.Spec.Versions) != len(k.Versions) {
			t.Fatalf("%s: %d versions, want %v", k.Kind, len(c.Spec.Versions), k.Versions)
		}
		for j, v := range c.Spec.Versions {
			if v.Name != k.Versions[j] || !v.Served || v.Storage != (j == 0) {
				t.Errorf("%s: version %s served %v storage %v", k.Kind, v.Name, v.Served, v.Storage)
			}
			if v.Subresources == nil || v.Subresources.Status == nil {
				t.Errorf("%s %s: no status subresource", k.Kind, v.Name)
			}
			spec := v.Schema.OpenAPIV3Schema.Properties["spec"]
			if spec.Type != "object" || spec.XPreserveUnknownFields == nil || !*spec.XPreserveUnknownFields {
				t.Errorf("%s %s: spec schema %+v", k.Kind, v.Name, spec)
			}
		}
	}
}

func TestIstioNames(t *testing.T) {
	byKind := map[config.Kind]int{}
	for i, k := range config.Kinds {
		byKind[k.Kind] = i
	}
	crds := All()
	vs := crds[byKind[config.KindVirtualService]]
	if !reflect.DeepEqual(vs.Spec.Names.Categories, []string{"istio-io", "networking-istio-io"}) {
		t.Errorf("VirtualService categories %v", vs.Spec.Names.Categories)
	}
	var cols []string
	for _, c := range vs.Spec.Versions[0].AdditionalPrinterColumns {
		cols = append(cols, c.Name+"="+c.JSONPath)
	}
	if want := []string{"Gateways=.spec.gateways", "Hosts=.spec.hosts", "Age=.metadata.creationTimestamp"}; !reflect.DeepEqual(cols, want) {
		t.Errorf("VirtualService columns %v, want %v", cols, want)
	}
	pa := crds[byKind[config.KindPeerAuthentication]]
	if !reflect.DeepEqual(pa.Spec.Names.Categories, []string{"istio-io", "security-istio-io"}) || pa.Spec.Versions[0].AdditionalPrinterColumns[0].JSONPath != ".spec.mtls.mode" {
		t.Errorf("PeerAuthentication %+v", pa.Spec)
	}
	for _, c := range crds {
		if c.Spec.Names.Singular == "" || len(c.Spec.Names.Categories) == 0 {
			t.Errorf("%s: singular %q categories %v", c.Name, c.Spec.Names.Singular, c.Spec.Names.Categories)
		}
	}
}

// A kind added to config.Kinds gets its CRD, with the columns the table
// knows for it, or defaults.
func TestNewKind(t *testing.T) {
	canary := For(config.KindInfo{Kind: "Canary", Group: "flagger.app", Versions: []string{"v1beta1"}, Plural: "canaries", Short: []string{"canary"},
		New: func() proto.Message { return nil }})
	if canary.Name != "canaries.flagger.app" || canary.Spec.Versions[0].AdditionalPrinterColumns[0].JSONPath != ".status.phase" ||
		!reflect.DeepEqual(canary.Spec.Names.Categories, []string{"all"}) {
		t.Errorf("Canary %+v", canary.Spec)
	}
	other := For(config.KindInfo{Kind: "Widget", Group: "example.com", Versions: []string{"v2", "v1"}, Plural: "widgets"})
	if !reflect.DeepEqual(other.Spec.Names.Categories, []string{"example-com"}) || other.Spec.Versions[0].AdditionalPrinterColumns[0].Name != "Age" ||
		!other.Spec.Versions[0].Storage || other.Spec.Versions[1].Storage {
		t.Errorf("Widget %+v", other.Spec)
	}
}

// Flagger's kinds print as Flagger's own CRDs do.
func TestFlaggerColumns(t *testing.T) {
	cols := func(kind string) []string {
		info, ok := config.LookupKind(kind)
		if !ok {
			t.Fatalf("no kind %s", kind)
		}
		var out []string
		for _, c := range For(info).Spec.Versions[0].AdditionalPrinterColumns {
			out = append(out, fmt.Sprintf("%s=%s/%s/%d", c.Name, c.JSONPath, c.Type, c.Priority))
		}
		return out
	}
	if got, want := cols("Canary"), []string{"Status=.status.phase/string/0", "Weight=.status.canaryWeight/string/0",
		"Suspended=.spec.suspend/boolean/1", "FailedChecks=.status.failedChecks/string/1", "Interval=.spec.analysis.interval/string/1",
		"Mirror=.spec.analysis.mirror/boolean/1", "StepWeight=.spec.analysis.stepWeight/string/1", "StepWeights=.spec.analysis.stepWeights/string/1",
		"MaxWeight=.spec.analysis.maxWeight/string/1", "LastTransitionTime=.status.lastTransitionTime/string/0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Canary columns\n%v\nwant\n%v", got, want)
	}
	if got, want := cols("MetricTemplate"), []string{"Provider=.spec.provider.type/string/0"}; !reflect.DeepEqual(got, want) {
		t.Errorf("MetricTemplate columns %v, want %v", got, want)
	}
}
