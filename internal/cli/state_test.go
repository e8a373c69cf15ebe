package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/store/bolt"
)

// reset removes the configuration and keeps the rest, refuses while a
// control plane (the store's holder) runs, and with --all removes the dir.
func TestResetState(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	if msg, err := resetState(state, false); err != nil || !strings.Contains(msg, "nothing to reset") {
		t.Errorf("no state dir: %q, %v", msg, err)
	}
	st, err := bolt.Open(filepath.Join(state, storeFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "join-token"), []byte("t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := resetState(state, false); err == nil || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), "stop `weft up` first") {
		t.Errorf("store in use: %v", err)
	}
	if _, err := resetState(state, true); err == nil {
		t.Error("--all with the store in use: no error")
	}
	if _, err := os.Stat(filepath.Join(state, storeFile)); err != nil {
		t.Fatalf("a refused reset removed the store: %v", err)
	}
	st.Close()
	if msg, err := resetState(state, false); err != nil || !strings.Contains(msg, "kept: CA, tokens, context") {
		t.Errorf("reset: %q, %v", msg, err)
	}
	if _, err := os.Stat(filepath.Join(state, storeFile)); !os.IsNotExist(err) {
		t.Errorf("store still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(state, "join-token")); err != nil {
		t.Errorf("reset removed the join token: %v", err)
	}
	if msg, err := resetState(state, true); err != nil || !strings.Contains(msg, "removed state dir") {
		t.Errorf("reset --all: %q, %v", msg, err)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("state dir still there: %v", err)
	}
}

func TestDescribeState(t *testing.T) {
	objs, err := config.Decode("t.yaml", strings.NewReader(reviewsMesh+`---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: coolapp}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]
`))
	if err != nil {
		t.Fatal(err)
	}
	got := describeState(".weft", true, false, model.Build(4, objs))
	want := ".weft: resumed 4 objects (1 gateway, 1 virtualservice, 1 destinationrule, 1 serviceentry) in namespaces coolapp, default; `weft up --fresh` or `weft reset` starts clean"
	if got != want {
		t.Errorf("resumed:\n got %s\nwant %s", got, want)
	}
	if got := describeState(".weft", false, false, model.Build(0, nil)); got != ".weft: new, no configuration yet" {
		t.Errorf("new: %s", got)
	}
	if got := describeState(".weft", true, true, model.Build(0, nil)); !strings.Contains(got, "fresh start") {
		t.Errorf("fresh: %s", got)
	}
}
