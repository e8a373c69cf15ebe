package cli

import (
	"strings"
	"testing"
)

func TestKubeFlags(t *testing.T) {
	for _, bad := range []kubeFlags{{kubeconfig: "x"}, {selector: "a=b"}, {namespace: "ns"}} {
		if _, err := bad.options(); err == nil || !strings.Contains(err.Error(), "need --kubernetes") {
			t.Errorf("%+v without --kubernetes: %v", bad, err)
		}
	}
	if o, err := (&kubeFlags{}).options(); o != nil || err != nil {
		t.Errorf("local mode: %v %v", o, err)
	}
	if _, err := (&kubeFlags{enabled: true, selector: "a in (b"}).options(); err == nil || !strings.Contains(err.Error(), "--discovery-selector") {
		t.Errorf("bad selector: %v", err)
	}
	o, err := (&kubeFlags{enabled: true, kubeconfig: "testdata/none.kubeconfig", selector: "istio-injection=enabled"}).options()
	if err == nil || o != nil || !strings.Contains(err.Error(), "testdata/none.kubeconfig") {
		t.Errorf("missing kubeconfig: %v %v", o, err)
	}
	cmd := newControlPlaneCmd(&globals{})
	if err := cmd.ParseFlags([]string{"--kubernetes", "--kubeconfig", "k", "--kube-namespace", "mesh", "--discovery-selector", "a=b", "--token-audience", "x"}); err != nil {
		t.Fatal(err)
	}
}
