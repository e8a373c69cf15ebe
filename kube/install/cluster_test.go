package install

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/weft-mesh/weft/kube/kubetest"
	"github.com/weft-mesh/weft/kube/manifest"
)

// Tests against the real cluster (kubetest). The cluster is shared by
// every test run on it: these tests install the CRDs for real (and leave
// them: other tests use them) and the rest of the install as a server-side
// dry run, which the API server checks as a real install without storing
// anything.

func manifests(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	objs, err := manifest.Objects(manifest.Options{Image: "docker.io/library/weft:kubeinst-test"})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func TestCRDsOnCluster(t *testing.T) {
	c := kubetest.Clients(t)
	var crds []*unstructured.Unstructured
	for _, u := range manifests(t) {
		if u.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, u)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := Install(ctx, c, crds, Options{Wait: time.Minute, Poll: 100 * time.Millisecond, Out: &out}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "customresourcedefinition.apiextensions.k8s.io/virtualservices.networking.istio.io serverside-applied") ||
		!strings.Contains(out.String(), "CRDs established") {
		t.Errorf("install said:\n%s", out.String())
	}

	ns := kubetest.Namespace(t, c, "kubeinst-crd", nil)
	vs := `apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  gateways: [mesh]
  http: [{route: [{destination: {host: reviews}}]}]
`
	if o, e, ok := kubetest.Kubectl(t, vs, "apply", "-n", ns, "-f", "-"); !ok {
		t.Fatalf("kubectl apply: %s%s", o, e)
	}
	// Istio's habits: the short name, the full name, the category, and
	// the printer columns.
	for _, args := range [][]string{{"get", "vs"}, {"get", "virtualservices.networking.istio.io"}, {"get", "virtualservice"}, {"get", "istio-io"}} {
		o, e, ok := kubetest.Kubectl(t, "", append(args, "-n", ns)...)
		if !ok || !strings.Contains(o, "reviews") {
			t.Errorf("kubectl %s: %s%s", strings.Join(args, " "), o, e)
		}
		if args[1] == "vs" && (!strings.Contains(o, "GATEWAYS") || !strings.Contains(o, `["mesh"]`) || !strings.Contains(o, `["reviews"]`)) {
			t.Errorf("kubectl get vs columns:\n%s", o)
		}
	}
	if o, e, ok := kubetest.Kubectl(t, "", "get", "dr,gw,se,we,pa,ra,ap,rl,smmr", "-n", ns); !ok {
		t.Errorf("kubectl get by short names: %s%s", o, e)
	}
	// Stored in the first version, served in every one.
	o, e, ok := kubetest.Kubectl(t, "", "get", "virtualservices.v1beta1.networking.istio.io", "reviews", "-n", ns, "-o", "jsonpath={.apiVersion}")
	if !ok || o != "networking.istio.io/v1beta1" {
		t.Errorf("v1beta1: %q %s", o, e)
	}
}

func TestInstallDryRunOnCluster(t *testing.T) {
	c := kubetest.Clients(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	objs := manifests(t)
	var out bytes.Buffer
	if err := Install(ctx, c, objs, Options{DryRun: true, Wait: time.Minute, Out: &out}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{
		"clusterrole.rbac.authorization.k8s.io/weft-controlplane serverside-applied (server dry run)",
		"mutatingwebhookconfiguration.admissionregistration.k8s.io/istio-sidecar-injector serverside-applied (server dry run)",
		"validatingwebhookconfiguration.admissionregistration.k8s.io/istio-validator-istio-system serverside-applied (server dry run)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("install --dry-run lacks %q:\n%s", want, out.String())
		}
	}
	// Every object is checked, or said not to be (a dry run cannot
	// create istio-system for the objects in it).
	if n := strings.Count(out.String(), "\n"); n != len(objs) {
		t.Errorf("%d lines for %d objects:\n%s", n, len(objs), out.String())
	}

	// The objects of istio-system, moved to a namespace of the test's own,
	// pass the API server's checks (defaulting, validation, admission).
	ns := kubetest.Namespace(t, c, "kubeinst-dry", nil)
	var namespaced []*unstructured.Unstructured
	for _, u := range objs {
		if u.GetNamespace() != "" {
			u = u.DeepCopy()
			u.SetNamespace(ns)
			namespaced = append(namespaced, u)
		}
	}
	out.Reset()
	if err := Install(ctx, c, namespaced, Options{DryRun: true, Out: &out}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if n := strings.Count(out.String(), "serverside-applied (server dry run)\n"); n != len(namespaced) || len(namespaced) < 8 {
		t.Errorf("%d of %d namespaced objects checked:\n%s", n, len(namespaced), out.String())
	}

	out.Reset()
	if err := Uninstall(ctx, c, objs, Options{DryRun: true, Out: &out}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "customresourcedefinition.apiextensions.k8s.io/") || !strings.HasSuffix(last, "deleted (server dry run)") {
		t.Errorf("uninstall --dry-run: the CRDs are not last:\n%s", out.String())
	}
}
