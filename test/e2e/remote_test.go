package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRemoteProxyJoinsOverTLS: a control plane whose xDS port is reachable
// from other hosts serves xDS over TLS. A proxy that trusts the mesh root
// and holds a join token for its identity gets its configuration; one
// trusting another root, or holding no valid token, does not. (The port is bound on all
// interfaces, but every connection here goes to 127.0.0.1.)
func TestRemoteProxyJoinsOverTLS(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	api := freePort(t)
	_, xport, _ := net.SplitHostPort(freePort(t))
	cp := start(t, dir, "weft controlplane", "controlplane", "--state-dir", state, "--api-addr", api, "--xds-addr", "0.0.0.0:"+xport)
	eventually(t, 20*time.Second, "control plane up", func() error {
		if !strings.Contains(cp.output(), "xds_tls=true") {
			return fmt.Errorf("no xds_tls=true in its log yet")
		}
		return nil
	})
	root := filepath.Join(state, "ca", "root-cert.pem")
	wrongRoot, _ := writePEM(t, dir, "other-root", strangerCA(t).cert.Raw, nil)
	empty := filepath.Join(dir, "no-token")
	if err := os.WriteFile(empty, []byte("not-the-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	sidecar := func(name, caRoot, tokenFile string) (string, *proc) {
		admin := freePort(t)
		p := start(t, dir, "weft proxy "+name, "proxy", "sidecar", "--state-dir", state, "--xds", "127.0.0.1:"+xport,
			"--ca-root", caRoot, "--join-token-file", tokenFile, "--name", name, "--namespace", "default",
			"--labels", "app="+name, "--outbound", freePort(t), "--admin", admin)
		return admin, p
	}
	ready := func(admin string) bool {
		resp, err := http.Get("http://" + admin + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	// A token for the sidecars' identity, made as an operator would.
	tokenFile := filepath.Join(dir, "default.token")
	create := exec.Command(weftBin, "token", "create", "--state-dir", state, "--server", "http://"+api, "-n", "default", "--service-account", "default")
	tok, err := create.Output()
	if err != nil {
		t.Fatalf("weft token create: %v", err)
	}
	if err := os.WriteFile(tokenFile, tok, 0o600); err != nil {
		t.Fatal(err)
	}
	good, _ := sidecar("good", root, tokenFile)
	forged, forgedP := sidecar("forged-root", wrongRoot, tokenFile)
	tokenless, tokenlessP := sidecar("wrong-token", root, empty)
	eventually(t, 20*time.Second, "the proxy with the root and the token is served", func() error {
		if !ready(good) {
			return fmt.Errorf("not ready")
		}
		return nil
	})
	// The others had the same time and more: neither may be ready.
	time.Sleep(2 * time.Second)
	if ready(forged) || !strings.Contains(forgedP.output(), "certificate signed by unknown authority") {
		t.Errorf("a proxy trusting another root: ready %v, log:\n%s", ready(forged), forgedP.output())
	}
	if ready(tokenless) || !strings.Contains(tokenlessP.output(), "invalid join token") {
		t.Errorf("a proxy without the join token: ready %v, log:\n%s", ready(tokenless), tokenlessP.output())
	}
	var list struct {
		Proxies []struct{ Name string }
	}
	if err := jsonGet("http://"+api+"/api/v1/proxies", &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Proxies) != 1 || list.Proxies[0].Name != "good" {
		t.Errorf("connected proxies %+v, want only good", list.Proxies)
	}
}
