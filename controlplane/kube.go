package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/weft-mesh/weft/ca"
	"github.com/weft-mesh/weft/kube/kubeclient"
	kstore "github.com/weft-mesh/weft/store/kube"
)

// KubeOptions runs the control plane in Kubernetes mode: the cluster is
// its store, its CA lives in a Secret, proxies authenticate with their
// ServiceAccount tokens, and replicas elect the one that writes.
type KubeOptions struct {
	// Clients reach the cluster (kubeclient.New finds it as kubectl does).
	Clients *kubeclient.Clients
	// Namespace holds the control plane: its Lease and its Secrets
	// (cacerts, istio-ca-secret, weft-api-token). Default: $POD_NAMESPACE,
	// else istio-system.
	Namespace string
	// Identity names this replica in the Lease. Default: $POD_NAME, else
	// the host name, with a random suffix (a restarted pod is new).
	Identity string
	// PodName is this replica's pod, when it runs in one (default
	// $POD_NAME): the leader labels it inject.LabelLeader so Service
	// inject.LeaderServiceName routes the proxies' telemetry and the
	// console to it, and the other replicas refuse telemetry reports (see
	// leaderpod.go). Empty: no label, every replica takes reports.
	PodName string
	// Audience proxies' ServiceAccount tokens must be issued for; default
	// DefaultAudience.
	Audience string
	// NamespaceSelector, when set, limits the mesh to the namespaces whose
	// labels it matches (Istio's discoverySelectors); Namespace is always
	// in. nil: every namespace.
	NamespaceSelector labels.Selector
	// Election timings; zero values take DefaultLeaseDuration,
	// DefaultRenewDeadline and DefaultRetryPeriod.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// The Secrets the control plane reads (and creates when missing) in its
// namespace, as Istio names them.
const (
	// PluginCASecret is Istio's plug-in CA: ca-cert.pem, ca-key.pem,
	// root-cert.pem and cert-chain.pem. Used when present.
	PluginCASecret = "cacerts"
	// SelfSignedCASecret holds the self-signed root (ca-cert.pem,
	// ca-key.pem) the first replica creates when there is no plug-in CA.
	SelfSignedCASecret = "istio-ca-secret"
	// APITokenSecret holds the API token (key "token").
	APITokenSecret = "weft-api-token"
	apiTokenKey    = "token"
)

// fieldManager names the control plane in managed fields.
const fieldManager = kstore.FieldManager

func (k *KubeOptions) defaults() error {
	if k.Clients == nil {
		return errors.New("kubernetes mode: no cluster clients")
	}
	if k.Namespace == "" {
		k.Namespace = os.Getenv("POD_NAMESPACE")
	}
	if k.Namespace == "" {
		k.Namespace = "istio-system"
	}
	if k.PodName == "" {
		k.PodName = os.Getenv("POD_NAME")
	}
	if k.Identity == "" {
		k.Identity = os.Getenv("POD_NAME")
		if k.Identity == "" {
			k.Identity, _ = os.Hostname()
		}
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("leader identity: %w", err)
		}
		k.Identity += "_" + base64.RawURLEncoding.EncodeToString(b[:])
	}
	if k.Audience == "" {
		k.Audience = DefaultAudience
	}
	if k.LeaseDuration <= 0 {
		k.LeaseDuration = DefaultLeaseDuration
	}
	if k.RenewDeadline <= 0 {
		k.RenewDeadline = DefaultRenewDeadline
	}
	if k.RetryPeriod <= 0 {
		k.RetryPeriod = DefaultRetryPeriod
	}
	return nil
}

// setupKube loads the CA and API token from the cluster's Secrets, starts
// the store over the cluster, and prepares token review. Nothing is read
// from or written to the state directory.
func (c *ControlPlane) setupKube(ctx context.Context) error {
	k := c.opts.Kubernetes
	if err := k.defaults(); err != nil {
		return err
	}
	c.kube = k
	kube := k.Clients.Kube
	authority, source, err := kubeCA(ctx, kube, k.Namespace, c.opts.TrustDomain)
	if err != nil {
		return err
	}
	c.ca, c.caSource = authority, source
	if c.apiToken, err = kubeToken(ctx, kube, k.Namespace, APITokenSecret); err != nil {
		return err
	}
	st, err := kstore.New(ctx, kstore.Options{
		Kube: kube, Dynamic: k.Clients.Dynamic, Log: c.log.With("component", "store"),
		NamespaceSelector: k.NamespaceSelector, AlwaysNamespaces: []string{k.Namespace},
	})
	if err != nil {
		return err
	}
	c.store, c.kstore = st, st
	c.reviewer = newTokenReviewer(kube, k.Audience)
	return nil
}

// kubeCA returns the mesh CA: Istio's plug-in Secret cacerts if present,
// else the self-signed root in Secret istio-ca-secret, which the first
// replica to start creates (create-if-missing: a replica that loses the
// race reads the winner's, so every replica signs with the same root).
func kubeCA(ctx context.Context, kube kubernetes.Interface, ns, trustDomain string) (*ca.CA, string, error) {
	secrets := kube.CoreV1().Secrets(ns)
	plug, err := secrets.Get(ctx, PluginCASecret, metav1.GetOptions{})
	switch {
	case err == nil:
		src := "secret " + ns + "/" + PluginCASecret
		authority, err := ca.FromPlugin(src, ca.PluginPEM{
			Cert: plug.Data[ca.PluginCertFile], Key: plug.Data[ca.PluginKeyFile],
			Root: plug.Data[ca.PluginRootFile], Chain: plug.Data[ca.PluginChainFile],
		})
		return authority, src, err
	case !apierrors.IsNotFound(err):
		return nil, "", fmt.Errorf("read secret %s/%s: %w", ns, PluginCASecret, err)
	}
	s, err := getOrCreateSecret(ctx, kube, ns, SelfSignedCASecret, func() (map[string][]byte, error) {
		cert, key, err := ca.NewRoot(trustDomain)
		if err != nil {
			return nil, err
		}
		// Istio's layout: a self-signed root has no chain and is its own root.
		return map[string][]byte{ca.PluginCertFile: cert, ca.PluginKeyFile: key, ca.PluginChainFile: {}, ca.PluginRootFile: {}}, nil
	})
	if err != nil {
		return nil, "", err
	}
	src := "secret " + ns + "/" + SelfSignedCASecret
	authority, err := ca.FromRoot(src, s.Data[ca.PluginCertFile], s.Data[ca.PluginKeyFile])
	return authority, src, err
}

// kubeToken returns the token in Secret ns/name (key "token"), creating
// the Secret with a random token when missing.
func kubeToken(ctx context.Context, kube kubernetes.Interface, ns, name string) (string, error) {
	s, err := getOrCreateSecret(ctx, kube, ns, name, func() (map[string][]byte, error) {
		tok, err := newToken()
		if err != nil {
			return nil, err
		}
		return map[string][]byte{apiTokenKey: []byte(tok)}, nil
	})
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(s.Data[apiTokenKey]))
	if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("secret %s/%s: key %q must hold one non-empty word; delete the Secret to generate a new token", ns, name, apiTokenKey)
	}
	return tok, nil
}

// getOrCreateSecret reads Secret ns/name, or creates it with gen's data.
// Replicas starting together may all try: the API server lets one create
// it, and the others read what it created.
func getOrCreateSecret(ctx context.Context, kube kubernetes.Interface, ns, name string, gen func() (map[string][]byte, error)) (*corev1.Secret, error) {
	secrets := kube.CoreV1().Secrets(ns)
	s, err := secrets.Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		return s, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("read secret %s/%s: %w", ns, name, err)
	}
	data, err := gen()
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s: %w", ns, name, err)
	}
	s, err = secrets.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app.kubernetes.io/managed-by": "weft"}},
		Type:       corev1.SecretTypeOpaque, Data: data,
	}, metav1.CreateOptions{FieldManager: fieldManager})
	if apierrors.IsAlreadyExists(err) {
		if s, err = secrets.Get(ctx, name, metav1.GetOptions{}); err == nil {
			return s, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create secret %s/%s: %w", ns, name, err)
	}
	return s, nil
}

// CASource says where the CA comes from: a directory, or a Secret in
// Kubernetes mode.
func (c *ControlPlane) CASource() string { return c.caSource }

// Kubernetes returns the resolved Kubernetes options (namespace,
// identity, audience), or nil for a local control plane.
func (c *ControlPlane) Kubernetes() *KubeOptions { return c.kube }
