package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/weft-mesh/weft/proxy/status"
	"github.com/weft-mesh/weft/xds/node"
)

func TestParsePortMap(t *testing.T) {
	m, err := parsePortMap("80=127.0.0.1:8080,443=127.0.0.1:8443")
	if err != nil || m[80] != "127.0.0.1:8080" || m[443] != "127.0.0.1:8443" {
		t.Fatalf("parsePortMap = %v, %v", m, err)
	}
	for _, bad := range []string{"80", "x=127.0.0.1:1", "80=nohostport", "0=127.0.0.1:1"} {
		if _, err := parsePortMap(bad); err == nil {
			t.Errorf("parsePortMap(%q) succeeded, want error", bad)
		}
	}
}

// podCmd is `weft proxy sidecar` with args parsed, not run.
func podCmd(t *testing.T, args ...string) (*cobra.Command, *globals, *proxyFlags) {
	t.Helper()
	g := &globals{}
	cmd, f := proxySubCmdFlags(g, node.Sidecar)
	cmd.PersistentFlags().StringVarP(&g.namespace, "namespace", "n", "", "")
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	return cmd, g, f
}

func TestPodSidecarOptions(t *testing.T) {
	dir := t.TempDir()
	labels := filepath.Join(dir, "labels")
	if err := os.WriteFile(labels, []byte("app=\"reviews\"\nversion=\"v1\"\npod-template-hash=\"5d8f\"\nnote=\"a \\\"quoted\\\" value\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		envPodName: "reviews-v1-5d8f-x2", envPodNamespace: "bookinfo", envInstanceIP: "10.1.0.5",
		envServiceAccount: "bookinfo-reviews", envWorkloadName: "reviews-v1", envPodLabels: labels,
		status.ProbersEnv: `{"/app-health/reviews/readyz":{"httpGet":{"path":"/health","port":9080,"scheme":"HTTP"},"timeoutSeconds":1}}`,
	}
	cmd, g, f := podCmd(t, "--interception", "REDIRECT", "--labels", "extra=yes")
	if pod, err := podMode(cmd, f); err != nil || !pod {
		t.Fatalf("podMode = %v, %v", pod, err)
	}
	o, err := podOptions(cmd, g, f, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	m := o.Meta
	if m.Name != "reviews-v1-5d8f-x2" || m.Namespace != "bookinfo" || m.IP != "10.1.0.5" || m.ServiceAccount != "bookinfo-reviews" ||
		m.WorkloadName != "reviews-v1" || !m.Captured() || m.Admin != "127.0.0.1:15000" {
		t.Errorf("meta %+v", m)
	}
	if m.Labels["app"] != "reviews" || m.Labels["note"] != `a "quoted" value` || m.Labels["extra"] != "yes" || len(m.Labels) != 5 {
		t.Errorf("labels %v", m.Labels)
	}
	if o.XDSAddress != DefaultPodXDS || o.CARoot != DefaultPodCARoot || o.JoinTokenFile != DefaultPodTokenFile || o.JoinToken != "" {
		t.Errorf("xds %s root %s token file %s", o.XDSAddress, o.CARoot, o.JoinTokenFile)
	}
	if o.Pod == nil || o.Pod.Probes["/app-health/reviews/readyz"].HTTPGet.Port != 9080 {
		t.Errorf("pod options %+v", o.Pod)
	}
	if m.Node().GetMetadata().GetFields()[node.KeyInterception].GetStringValue() != node.InterceptRedirect {
		t.Error("the node does not say REDIRECT")
	}

	// Flags win over the environment, the environment over the defaults.
	env[envXDSAddress], env[envCARoot], env[envJoinTokenFile] = "cp:15012", "/root.pem", "/tok"
	cmd, g, f = podCmd(t, "--interception", "REDIRECT", "--xds", "other:15012", "-n", "override")
	if o, err = podOptions(cmd, g, f, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if o.XDSAddress != "other:15012" || o.CARoot != "/root.pem" || o.JoinTokenFile != "/tok" || o.Meta.Namespace != "override" {
		t.Errorf("precedence: xds %s root %s token %s namespace %s", o.XDSAddress, o.CARoot, o.JoinTokenFile, o.Meta.Namespace)
	}

	bad := func(what string, edit func(map[string]string), want string) {
		t.Helper()
		e := map[string]string{}
		for k, v := range env {
			e[k] = v
		}
		edit(e)
		cmd, g, f := podCmd(t, "--interception", "REDIRECT")
		if _, err := podOptions(cmd, g, f, func(k string) string { return e[k] }); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", what, err, want)
		}
	}
	bad("no pod name", func(e map[string]string) { delete(e, envPodName) }, envPodName+" is not set")
	bad("no pod IP", func(e map[string]string) { e[envInstanceIP] = "" }, envInstanceIP)
	bad("bad probes", func(e map[string]string) { e[status.ProbersEnv] = `{"/app-health/a/readyz":{}}` }, status.ProbersEnv)
	bad("no labels file", func(e map[string]string) { e[envPodLabels] = filepath.Join(dir, "missing") }, "labels:")
	broken := filepath.Join(dir, "broken")
	os.WriteFile(broken, []byte("app=reviews\n"), 0o644)
	bad("unquoted label", func(e map[string]string) { e[envPodLabels] = broken }, broken+":1: want key=\"value\"")

	cmd, _, f = podCmd(t, "--interception", "TPROXY")
	if _, err := podMode(cmd, f); err == nil || !strings.Contains(err.Error(), "--interception \"TPROXY\"") {
		t.Errorf("TPROXY: %v", err)
	}
	cmd, _, f = podCmd(t)
	t.Setenv(envInterception, "REDIRECT")
	if pod, err := podMode(cmd, f); err != nil || !pod {
		t.Errorf("INTERCEPTION_MODE=REDIRECT: %v %v", pod, err)
	}
}

// TestGatewayInPod: the ingress gateway's Deployment gives it the pod IP
// ($INSTANCE_IP), the control plane's ClusterIP with its certificate's
// name, and the projected token file: it takes the pod IP as its node IP,
// serves Istio's status ports, and re-reads the token at each connection.
func TestGatewayInPod(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("sa-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &globals{}
	cmd, f := proxySubCmdFlags(g, node.Router)
	cmd.PersistentFlags().StringVarP(&g.namespace, "namespace", "n", "", "")
	if err := cmd.ParseFlags([]string{"--name", "istio-ingressgateway-x", "-n", "istio-system", "--port-map", "80=0.0.0.0:8080",
		"--xds", "10.96.0.5:15012", "--xds-server-name", "istiod.istio-system.svc", "--ca-root", "/root.pem", "--join-token-file", tok}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{envInstanceIP: "10.244.0.7"}
	o, err := hostOptions(g, f, node.Router, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if o.Meta.IP != "10.244.0.7" || o.Pod == nil || o.XDSServerName != "istiod.istio-system.svc" || o.JoinTokenFile != tok || o.JoinToken != "" ||
		o.Meta.GatewayHost != "0.0.0.0" || o.Meta.ServiceAccount != gatewayServiceAccount {
		t.Errorf("gateway in a pod: meta %+v, pod %v, server name %q, token file %q", o.Meta, o.Pod, o.XDSServerName, o.JoinTokenFile)
	}
	// On a host (weft up): 127.0.0.1, no status servers.
	env = map[string]string{}
	if o, err = hostOptions(g, f, node.Router, func(k string) string { return env[k] }); err != nil || o.Meta.IP != "127.0.0.1" || o.Pod != nil {
		t.Errorf("gateway on a host: %+v %v", o.Meta, err)
	}
	env[envInstanceIP] = "pod-ip"
	if _, err := hostOptions(g, f, node.Router, func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), envInstanceIP) {
		t.Errorf("a bad pod IP: %v", err)
	}
}
