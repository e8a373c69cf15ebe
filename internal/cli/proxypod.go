package cli

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weft-mesh/weft/proxy"
	"github.com/weft-mesh/weft/proxy/status"
	"github.com/weft-mesh/weft/workload"
	"github.com/weft-mesh/weft/xds/node"
)

// The environment of a sidecar in a pod, named as Istio's injector names
// it, and weft's own names (WEFT_*) where Istio has none. The injector
// sets them; docs/ARCHITECTURE.md ("The captured sidecar") lists them.
const (
	envInterception   = "INTERCEPTION_MODE"
	envPodName        = "POD_NAME"
	envPodNamespace   = "POD_NAMESPACE"
	envInstanceIP     = "INSTANCE_IP"
	envServiceAccount = "SERVICE_ACCOUNT"
	envWorkloadName   = "ISTIO_META_WORKLOAD_NAME"
	envPodLabels      = "WEFT_POD_LABELS"
	envXDSAddress     = "WEFT_XDS_ADDRESS"
	envXDSServerName  = "WEFT_XDS_SERVER_NAME"
	envCARoot         = "WEFT_CA_ROOT"
	envJoinTokenFile  = "WEFT_JOIN_TOKEN_FILE"
	envTelemetry      = "WEFT_TELEMETRY_URL"
)

// Defaults of a sidecar in a pod: the paths the injector mounts.
const (
	// DefaultPodLabelsFile is the downward-API file of the pod's labels.
	DefaultPodLabelsFile = "/etc/weft/pod/labels"
	// DefaultPodTokenFile is the projected ServiceAccount token (audience weft).
	DefaultPodTokenFile = "/var/run/secrets/tokens/weft-token"
	// DefaultPodCARoot is the mesh root (ConfigMap istio-ca-root-cert).
	DefaultPodCARoot = "/var/run/secrets/istio/root-cert.pem"
	// DefaultPodXDS is the control plane's xDS address in the cluster.
	DefaultPodXDS = "istiod.istio-system.svc:15012"
)

// podMode reports whether the sidecar runs captured in a pod: --interception
// REDIRECT, else $INTERCEPTION_MODE.
func podMode(cmd *cobra.Command, f *proxyFlags) (bool, error) {
	mode := f.interception
	if !cmd.Flags().Changed("interception") {
		mode = os.Getenv(envInterception)
	}
	switch strings.ToUpper(mode) {
	case "", "NONE":
		return false, nil
	case node.InterceptRedirect:
		return true, nil
	}
	return false, fmt.Errorf("--interception %q: want %s (or nothing: the app addresses its sidecar, as with weft run)", mode, node.InterceptRedirect)
}

// podOptions builds a pod sidecar's options: identity from the injected
// environment and the labels file, xDS address, root, token file and
// telemetry URL from flags, else the environment, else the pod defaults.
func podOptions(cmd *cobra.Command, g *globals, f *proxyFlags, getenv func(string) string) (proxy.Options, error) {
	fl := cmd.Flags()
	pick := func(flag, env, def string) string {
		if fl.Changed(flag) {
			v, _ := fl.GetString(flag)
			return v
		}
		if v := getenv(env); v != "" {
			return v
		}
		return def
	}
	m := &node.Meta{
		Type: node.Sidecar, Interception: node.InterceptRedirect, Admin: f.admin,
		Name:           pick("name", envPodName, ""),
		IP:             getenv(envInstanceIP),
		ServiceAccount: pick("service-account", envServiceAccount, f.serviceAccount),
		WorkloadName:   pick("workload", envWorkloadName, ""),
	}
	m.Namespace = getenv(envPodNamespace)
	if ns, named := g.ns(); named || m.Namespace == "" {
		m.Namespace = ns
	}
	if m.Name == "" {
		return proxy.Options{}, fmt.Errorf("pod sidecar: %s is not set (the injector sets it to the pod's name), nor --name", envPodName)
	}
	if _, err := netip.ParseAddr(m.IP); err != nil {
		return proxy.Options{}, fmt.Errorf("pod sidecar: %s %q: want the pod's IP address (the injector sets it from status.podIP)", envInstanceIP, m.IP)
	}
	if m.WorkloadName == "" {
		m.WorkloadName = m.Name
	}
	labelsFile := pick("pod-labels", envPodLabels, DefaultPodLabelsFile)
	labels, err := readLabelsFile(labelsFile)
	if err != nil {
		return proxy.Options{}, fmt.Errorf("pod sidecar: labels: %w", err)
	}
	extra, err := workload.ParseLabels(f.labels)
	if err != nil {
		return proxy.Options{}, fmt.Errorf("--labels: %w", err)
	}
	for k, v := range extra {
		labels[k] = v
	}
	m.Labels = labels
	probes, err := status.ParseProbers(getenv(status.ProbersEnv))
	if err != nil {
		return proxy.Options{}, fmt.Errorf("pod sidecar: %w", err)
	}
	o := proxy.Options{
		Meta:          m,
		XDSAddress:    pick("xds", envXDSAddress, DefaultPodXDS),
		XDSServerName: pick("xds-server-name", envXDSServerName, ""),
		CARoot:        pick("ca-root", envCARoot, DefaultPodCARoot),
		JoinTokenFile: pick("join-token-file", envJoinTokenFile, DefaultPodTokenFile),
		TelemetryURL:  pick("telemetry", envTelemetry, ""),
		Log:           g.logger(),
		Pod:           &proxy.PodOptions{Probes: probes},
	}
	if err := f.tf.apply(&o.TraceSampling, &o.AccessLog); err != nil {
		return proxy.Options{}, err
	}
	return o, nil
}

// readLabelsFile reads a Kubernetes downward-API labels file: one
// key="value" per line, the value quoted as Go quotes strings.
func readLabelsFile(path string) (map[string]string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(fh)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		k, q, ok := strings.Cut(line, "=")
		v, err := strconv.Unquote(q)
		if !ok || k == "" || err != nil {
			return nil, fmt.Errorf("%s:%d: want key=\"value\", got %q", path, n, line)
		}
		out[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}
