package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/weft-mesh/weft/kube/image"
	"github.com/weft-mesh/weft/kube/inject"
	"github.com/weft-mesh/weft/kube/install"
	"github.com/weft-mesh/weft/kube/kubeclient"
	"github.com/weft-mesh/weft/kube/manifest"
)

// kubeCluster are the flags of every `weft kube` command that talks to a cluster.
type kubeCluster struct{ kubeconfig string }

func (k *kubeCluster) clients() (*kubeclient.Clients, error) { return kubeclient.New(k.kubeconfig) }

func newKubeCmd() *cobra.Command {
	k := &kubeCluster{}
	cmd := &cobra.Command{
		Use:   "kube",
		Short: "Run weft on Kubernetes: install, manifests, sidecar injection, images",
	}
	cmd.PersistentFlags().StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)")
	cmd.AddCommand(newKubeManifestsCmd(), newKubeInstallCmd(k), newKubeUninstallCmd(k), newKubeInjectCmd(k), newKubeImageCmd())
	return cmd
}

// defaultImage is the image `weft kube image` makes of this binary by default.
func defaultImage() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the weft binary: %w", err)
	}
	return image.DefaultName(exe)
}

func imageFlag(cmd *cobra.Command, dst *string, required bool) {
	help := "weft image (entrypoint weft) of the control plane, gateway and sidecars"
	if !required {
		help += " (default: the name `weft kube image` gives this binary)"
	}
	cmd.Flags().StringVar(dst, "image", "", help)
	if required {
		_ = cmd.MarkFlagRequired("image")
	}
}

// manifestObjects returns the install's objects for an image (""
// the default) and the image's full name.
func manifestObjects(img string) ([]*unstructured.Unstructured, string, error) {
	if img == "" {
		var err error
		if img, err = defaultImage(); err != nil {
			return nil, "", err
		}
	}
	name, err := image.NormalizeName(img)
	if err != nil {
		return nil, "", fmt.Errorf("--image: %w", err)
	}
	objs, err := manifest.Objects(manifest.Options{Image: name})
	return objs, name, err
}

func newKubeManifestsCmd() *cobra.Command {
	var img string
	cmd := &cobra.Command{
		Use:   "manifests [--image IMG]",
		Short: "Print what `weft kube install` applies, as one YAML stream",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			objs, _, err := manifestObjects(img)
			if err != nil {
				return err
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			if err := manifest.WriteYAML(w, objs); err != nil {
				return err
			}
			return w.Flush()
		},
	}
	imageFlag(cmd, &img, false)
	return cmd
}

func newKubeInstallCmd(k *kubeCluster) *cobra.Command {
	var (
		img     string
		dryRun  bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "install --image IMG [--dry-run]",
		Short: "Install weft's CRDs, control plane, ingress gateway and webhooks in istio-system",
		Long: "Applies `weft kube manifests` with server-side apply and waits for the control plane to be ready.\n" +
			"Then label a namespace for injection: kubectl label namespace NS istio-injection=enabled",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			objs, name, err := manifestObjects(img)
			if err != nil {
				return err
			}
			c, err := k.clients()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "installing weft (image %s) into %s (%s)\n", name, c.Config.Host, c.Source)
			return install.Install(cmd.Context(), c, objs, install.Options{DryRun: dryRun, Wait: timeout, Out: cmd.OutOrStdout()})
		},
	}
	imageFlag(cmd, &img, true)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "send everything as a server-side dry run: the API server checks it, nothing changes")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the control plane to be ready (0: do not wait)")
	return cmd
}

func newKubeUninstallCmd(k *kubeCluster) *cobra.Command {
	var (
		dryRun  bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "uninstall [--dry-run]",
		Short: "Remove everything `weft kube install` and the control plane created, the CRDs (and so every Istio object) last",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The objects' names do not depend on the image.
			objs, err := manifest.Objects(manifest.Options{Image: "weft"})
			if err != nil {
				return err
			}
			c, err := k.clients()
			if err != nil {
				return err
			}
			return install.Uninstall(cmd.Context(), c, objs, install.Options{DryRun: dryRun, Wait: timeout, Out: cmd.OutOrStdout()})
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "send the deletions as a server-side dry run")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait until everything deleted is gone (0: do not wait)")
	return cmd
}

func newKubeInjectCmd(k *kubeCluster) *cobra.Command {
	var (
		file, img, xds, telemetry string
		offline                   bool
	)
	cmd := &cobra.Command{
		Use:   "inject -f FILE|- [--image IMG] [--xds-address HOST:PORT]",
		Short: "Add the sidecar to the pods and pod templates of a YAML stream, as the injection webhook would",
		Long: "Reads Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs and KubeVirt\n" +
			"VirtualMachines (which get sidecar.istio.io/inject: \"true\" on their template, for the webhook to\n" +
			"inject their virt-launcher pod) and prints the stream with every pod template injected as in a\n" +
			"namespace labelled istio-injection=enabled. The control plane's address is its Service's ClusterIP,\n" +
			"read from the cluster unless --xds-address is given (or --offline: istiod.istio-system.svc, which\n" +
			"needs cluster DNS).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return errors.New("no input: give -f FILE or -f -")
			}
			if img == "" {
				var err error
				if img, err = defaultImage(); err != nil {
					return err
				}
			}
			name, err := image.NormalizeName(img)
			if err != nil {
				return fmt.Errorf("--image: %w", err)
			}
			s := inject.Settings{Image: name, ImagePullPolicy: corev1.PullIfNotPresent, XDSAddress: xds, TelemetryURL: telemetry}
			if s.XDSAddress == "" {
				if s.XDSAddress, s.TelemetryURL, err = controlPlaneAddress(cmd.Context(), k, offline, telemetry); err != nil {
					return err
				}
			}
			in := io.Reader(os.Stdin)
			if file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			w := bufio.NewWriter(cmd.OutOrStdout())
			if err := inject.Stream(in, w, s); err != nil {
				return fmt.Errorf("%s: %w", displayName(file), err)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "YAML file, or - for standard input")
	imageFlag(cmd, &img, false)
	cmd.Flags().StringVar(&xds, "xds-address", "", "control plane xDS address HOST:PORT (default: the istiod Service's ClusterIP, port 15012)")
	cmd.Flags().StringVar(&telemetry, "telemetry-url", "", "where proxies report telemetry (default: the istiod-leader Service's ClusterIP, port 15080)")
	cmd.Flags().BoolVar(&offline, "offline", false, "do not contact a cluster: address the control plane by its DNS name")
	return cmd
}

func displayName(file string) string {
	if file == "-" {
		return "standard input"
	}
	return filepath.Base(file)
}

// controlPlaneAddress finds the xDS address and telemetry URL: the istiod
// and istiod-leader Services' ClusterIPs, or their DNS names offline.
func controlPlaneAddress(ctx context.Context, k *kubeCluster, offline bool, telemetry string) (string, string, error) {
	host, telemetryHost := inject.XDSServerName, inject.LeaderServiceName+"."+inject.SystemNamespace+".svc"
	if !offline {
		c, err := k.clients()
		if err != nil {
			return "", "", fmt.Errorf("%w (or give --xds-address, or --offline)", err)
		}
		svc, err := c.Kube.CoreV1().Services(inject.SystemNamespace).Get(ctx, inject.ControlPlaneName, metav1.GetOptions{})
		if err != nil {
			return "", "", fmt.Errorf("the control plane's Service: %w (is weft installed? or give --xds-address, or --offline)", err)
		}
		if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
			return "", "", fmt.Errorf("Service %s/%s has no ClusterIP", inject.SystemNamespace, inject.ControlPlaneName)
		}
		host, telemetryHost = svc.Spec.ClusterIP, svc.Spec.ClusterIP
		// Telemetry goes to the leader (see inject.LeaderServiceName),
		// when the install has its Service.
		if l, err := c.Kube.CoreV1().Services(inject.SystemNamespace).Get(ctx, inject.LeaderServiceName, metav1.GetOptions{}); err == nil &&
			l.Spec.ClusterIP != "" && l.Spec.ClusterIP != corev1.ClusterIPNone {
			telemetryHost = l.Spec.ClusterIP
		}
	}
	if telemetry == "" {
		telemetry = "http://" + net.JoinHostPort(telemetryHost, strconv.Itoa(inject.APIPort))
	}
	return net.JoinHostPort(host, strconv.Itoa(inject.XDSPort)), telemetry, nil
}

func newKubeImageCmd() *cobra.Command {
	var out, tag string
	cmd := &cobra.Command{
		Use:   "image --out FILE.tar [--tag NAME]",
		Short: "Write an OCI image archive of this weft binary (import it with: ctr -n k8s.io images import FILE.tar)",
		Long: "The image holds only this binary, as its entrypoint, so it runs the control plane, the gateway,\n" +
			"the sidecars and the demo apps (args: demo-app ...). The binary must be statically linked:\n" +
			"CGO_ENABLED=0 go build -o weft ./cmd/weft",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out FILE.tar is required")
			}
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find the weft binary: %w", err)
			}
			if exe, err = filepath.EvalSymlinks(exe); err != nil {
				return fmt.Errorf("find the weft binary: %w", err)
			}
			if tag == "" {
				if tag, err = image.DefaultName(exe); err != nil {
					return err
				}
			}
			tmp := out + ".tmp"
			f, err := os.Create(tmp)
			if err != nil {
				return err
			}
			res, err := image.Write(exe, tag, f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Rename(tmp, out)
			}
			if err != nil {
				os.Remove(tmp)
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s (%s, linux/%s)\n", out, res.Name, res.Digest, res.Arch)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "archive to write (required)")
	cmd.Flags().StringVar(&tag, "tag", "", "image name (default: docker.io/library/weft:<the binary's sha256 prefix>)")
	return cmd
}
