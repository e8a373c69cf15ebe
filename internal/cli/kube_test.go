package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runKube runs `weft kube ARGS...` and returns its output.
func runKube(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newKubeCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestKubeManifests(t *testing.T) {
	out, err := runKube(t, "manifests", "--image", "weft:v9")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kind: CustomResourceDefinition", "name: virtualservices.networking.istio.io",
		"image: docker.io/library/weft:v9", "name: istio-sidecar-injector", "kind: ValidatingWebhookConfiguration"} {
		if !strings.Contains(out, want) {
			t.Errorf("manifests lack %q", want)
		}
	}
	if _, err := runKube(t, "manifests", "--image", "Bad Name"); err == nil || !strings.Contains(err.Error(), "--image") {
		t.Errorf("a bad image name: %v", err)
	}
}

func TestKubeInject(t *testing.T) {
	f := filepath.Join(t.TempDir(), "app.yaml")
	os.WriteFile(f, []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers: [{name: web, image: app:1}]\n"), 0o644)
	out, err := runKube(t, "inject", "-f", f, "--image", "weft:v9", "--xds-address", "10.96.0.5:15012")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: weft-proxy", "--xds=10.96.0.5:15012", "image: docker.io/library/weft:v9", "restartPolicy: Always"} {
		if !strings.Contains(out, want) {
			t.Errorf("inject output lacks %q:\n%s", want, out)
		}
	}
	// Offline, the control plane is addressed by its DNS name.
	out, err = runKube(t, "inject", "-f", f, "--image", "weft:v9", "--offline")
	if err != nil || !strings.Contains(out, "--xds=istiod.istio-system.svc:15012") || !strings.Contains(out, "--telemetry=http://istiod-leader.istio-system.svc:15080") {
		t.Errorf("offline: %v\n%s", err, out)
	}
	os.WriteFile(f, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {sidecar.istio.io/proxyCPU: lots}}\nspec: {containers: [{name: c, image: i}]}\n"), 0o644)
	if _, err := runKube(t, "inject", "-f", f, "--image", "weft:v9", "--offline"); err == nil ||
		!strings.Contains(err.Error(), `app.yaml: document 1: Pod p: metadata.annotations: annotation sidecar.istio.io/proxyCPU: "lots" is not a quantity`) {
		t.Errorf("bad annotation: %v", err)
	}
	if _, err := runKube(t, "inject", "--image", "weft:v9"); err == nil || !strings.Contains(err.Error(), "-f") {
		t.Errorf("no input: %v", err)
	}
}
