// Package kubeclient finds and connects to the Kubernetes API server the way
// kubectl does: an explicit kubeconfig path, else $KUBECONFIG, else the
// in-cluster service account when running in a pod, else ~/.kube/config.
// Every weft command that talks to a cluster goes through it, so they all
// agree on which cluster that is.
package kubeclient

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// UserAgent is sent on every request, so the API server's audit log names weft.
const UserAgent = "weft"

// Clients holds the clients weft uses against one cluster.
type Clients struct {
	Config  *rest.Config
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	// Source says where the configuration came from (a file path or
	// "in-cluster"), for messages.
	Source string
}

// Config returns the REST configuration for kubeconfig (a path; empty:
// $KUBECONFIG, then in-cluster, then ~/.kube/config) and where it was found.
func Config(kubeconfig string) (*rest.Config, string, error) {
	path := kubeconfig
	if path == "" {
		path = os.Getenv("KUBECONFIG")
	}
	if path == "" {
		if c, err := rest.InClusterConfig(); err == nil {
			return c, "in-cluster", nil
		} else if !errors.Is(err, rest.ErrNotInCluster) {
			return nil, "", fmt.Errorf("in-cluster configuration: %w", err)
		}
		if home, err := os.UserHomeDir(); err == nil {
			if p := filepath.Join(home, ".kube", "config"); fileExists(p) {
				path = p
			}
		}
	}
	if path == "" {
		return nil, "", errors.New("no cluster configured: pass --kubeconfig, set KUBECONFIG, or run in a pod")
	}
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: path}
	if kubeconfig == "" {
		// $KUBECONFIG may list several files, as kubectl allows.
		rules = &clientcmd.ClientConfigLoadingRules{Precedence: filepath.SplitList(path)}
	}
	c, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return c, path, nil
}

// New connects to the cluster named by kubeconfig (see Config). It does not
// contact the server; the first request does.
func New(kubeconfig string) (*Clients, error) {
	c, src, err := Config(kubeconfig)
	if err != nil {
		return nil, err
	}
	return ForConfig(c, src)
}

// ForConfig builds the clients for an existing REST configuration.
func ForConfig(c *rest.Config, source string) (*Clients, error) {
	c = rest.CopyConfig(c)
	if c.UserAgent == "" {
		c.UserAgent = UserAgent
	}
	// Informers over a few thousand objects start with bursts of LISTs;
	// client-go's defaults (5 qps, burst 10) would throttle the first sync.
	if c.QPS == 0 {
		c.QPS, c.Burst = 50, 100
	}
	k, err := kubernetes.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client (%s): %w", source, err)
	}
	d, err := dynamic.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("dynamic client (%s): %w", source, err)
	}
	return &Clients{Config: c, Kube: k, Dynamic: d, Source: source}, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
