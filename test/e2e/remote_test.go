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
	m, cp := startControlPlane(t, "--xds-addr", "0.0.0.0:0")
	if !strings.Contains(cp.output(), "xds_tls=true") {
		t.Fatalf("xDS on all interfaces without TLS:\n%s", cp.output())
	}
	_, xport, err := net.SplitHostPort(m.xds)
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(m.dir, ".weft")
	root := filepath.Join(state, "ca", "root-cert.pem")
	wrongRoot, _ := writePEM(t, m.dir, "other-root", strangerCA(t).cert.Raw, nil)
	empty := filepath.Join(m.dir, "no-token")
	if err := os.WriteFile(empty, []byte("not-the-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	sidecar := func(name, caRoot, tokenFile string) (string, *proc) {
		p, admin := m.startProxy("weft proxy "+name, "sidecar", "--state-dir", state, "--xds", "127.0.0.1:"+xport,
			"--ca-root", caRoot, "--join-token-file", tokenFile, "--name", name, "--namespace", "default",
			"--labels", "app="+name, "--outbound", anyPort)
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
	tokenFile := filepath.Join(m.dir, "default.token")
	create := exec.Command(weftBin, "token", "create", "--state-dir", state, "--server", "http://"+m.api, "-n", "default", "--service-account", "default")
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
	// The others were turned away (their logs say why), and stay unready.
	for _, c := range []struct {
		p    *proc
		why  string
		name string
	}{{forgedP, "certificate signed by unknown authority", "a proxy trusting another root"}, {tokenlessP, "invalid join token", "a proxy without the join token"}} {
		eventually(t, 30*time.Second, c.name+" is refused", func() error {
			if !strings.Contains(c.p.output(), c.why) {
				return fmt.Errorf("no %q in its log yet", c.why)
			}
			return nil
		})
	}
	if ready(forged) {
		t.Errorf("a proxy trusting another root is ready; log:\n%s", forgedP.output())
	}
	if ready(tokenless) {
		t.Errorf("a proxy without the join token is ready; log:\n%s", tokenlessP.output())
	}
	var list struct {
		Proxies []struct{ Name string }
	}
	if err := jsonGet("http://"+m.api+"/api/v1/proxies", &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Proxies) != 1 || list.Proxies[0].Name != "good" {
		t.Errorf("connected proxies %+v, want only good", list.Proxies)
	}
}
