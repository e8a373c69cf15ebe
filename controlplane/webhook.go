package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/weft-mesh/weft/kube/inject"
	"github.com/weft-mesh/weft/kube/webhook"
)

// WebhookOptions turn on the admission webhooks (Kubernetes mode): the
// validating webhook and sidecar injection (kube/webhook), served over TLS
// with a certificate from the mesh CA for the istiod Service, and the
// webhook configurations' caBundle kept equal to the mesh root by the
// leader.
type WebhookOptions struct {
	// Addr is the TLS address, DefaultWebhookAddr in a cluster; "" turns
	// the webhooks off.
	Addr string
	Kube kubernetes.Interface
	// ProxyImage is the image injected sidecars run: the control plane's
	// own (env inject.EnvProxyImage, set by the install manifests).
	ProxyImage string
	// Leader reports whether this replica writes (the caBundle); nil:
	// always (a single replica).
	Leader func() bool
	// Hosts are extra names or IPs on the serving certificate (a webhook
	// reached by URL, in tests).
	Hosts []string
	// ControlPlaneService is the Service whose ClusterIP injected proxies
	// dial, "NAMESPACE/NAME"; "": istio-system/istiod.
	ControlPlaneService string
	// MutatingConfigs and ValidatingConfigs name the webhook
	// configurations whose caBundle the leader sets; nil: the install's.
	MutatingConfigs, ValidatingConfigs []string
}

// KubeWebhookOptions are the webhooks of a control plane in a cluster:
// served on DefaultWebhookAddr, injecting the image the install manifests
// name in the environment (inject.EnvProxyImage).
func KubeWebhookOptions(kube kubernetes.Interface, leader func() bool) WebhookOptions {
	return WebhookOptions{Addr: DefaultWebhookAddr, Kube: kube, ProxyImage: os.Getenv(inject.EnvProxyImage), Leader: leader}
}

// DefaultWebhookAddr is where a control plane in a cluster serves its
// webhooks (the istiod Service's port 443).
var DefaultWebhookAddr = fmt.Sprintf(":%d", inject.WebhookPort)

// webhookCertTTL is the serving certificate's lifetime; it is re-issued at
// half of it, on the next handshake.
const webhookCertTTL = 24 * time.Hour

// startWebhooks binds opts.Webhook.Addr and serves the webhooks there
// until ctx ends; it does nothing without an address.
func (c *ControlPlane) startWebhooks(ctx context.Context) error {
	o := c.opts.Webhook
	if o.Addr == "" {
		return nil
	}
	if o.Kube == nil {
		return errors.New("webhooks: no Kubernetes client")
	}
	if o.ProxyImage == "" {
		return fmt.Errorf("webhooks: no sidecar image (env %s)", inject.EnvProxyImage)
	}
	if o.Leader == nil && c.kube != nil {
		o.Leader = c.IsLeader
	}
	log := c.log.With("component", "webhook")
	svc := inject.ControlPlaneName + "." + inject.SystemNamespace
	hosts := append([]string{inject.XDSServerName, svc + ".svc.cluster.local", svc, inject.ControlPlaneName}, o.Hosts...)
	cert, err := c.ca.NewServerCert(hosts, nil, webhookCertTTL)
	if err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	member := func(ns string) (bool, string) { return c.snap.Load().IsMember(ns) }
	cluster := webhook.NewCluster(o.Kube, o.ControlPlaneService, member, inject.Settings{Image: o.ProxyImage, ImagePullPolicy: corev1.PullIfNotPresent})
	mux := http.NewServeMux()
	mux.Handle(webhook.ValidatePath, webhook.Validator(log, &webhook.Guard{Check: c.canaryGuard, Trusted: c.trustedWriter}))
	mux.Handle(webhook.InjectPath, &webhook.Injector{Namespace: cluster.Namespace, Settings: cluster.Settings, Log: log})

	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("webhook address: %w", err)
	}
	c.webhookLn = ln
	srv := &http.Server{Handler: mux, TLSConfig: cert.TLSConfig(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	mutating, validating := o.MutatingConfigs, o.ValidatingConfigs
	if mutating == nil && validating == nil {
		mutating, validating = []string{webhook.InjectorConfig}, []string{webhook.ValidatorConfig}
	}
	bundle := &webhook.CABundle{Kube: o.Kube, Mutating: mutating, Validating: validating, Bundle: c.ca.RootPEM(), Leader: o.Leader, Log: log}
	go func() {
		if err := cluster.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("webhook cluster lookups stopped", "err", err)
		}
	}()
	go func() {
		if err := bundle.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("webhook caBundle controller stopped", "err", err)
		}
	}()
	go srv.ServeTLS(ln, "", "")
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("webhooks up", "addr", ln.Addr().String(), "hosts", hosts)
	return nil
}

// trustedWriter reports whether a request to the API server comes from
// the control plane itself or from Kubernetes' own controllers: the
// canary guard lets their writes through (the canary controller writes
// what a Canary owns; the namespace controller and the garbage collector
// delete what must go). That is any ServiceAccount of the control plane's
// namespace or of kube-system, and the controller manager's own user.
func (c *ControlPlane) trustedWriter(user authenticationv1.UserInfo) bool {
	if user.Username == "system:kube-controller-manager" {
		return true
	}
	ns, _, ok := serviceAccountOf(user.Username)
	if !ok {
		return false
	}
	own := inject.SystemNamespace
	if c.kube != nil {
		own = c.kube.Namespace
	}
	return ns == own || ns == metav1.NamespaceSystem
}

// WebhookAddr is the bound webhook address ("" without webhooks).
func (c *ControlPlane) WebhookAddr() string {
	if c.webhookLn == nil {
		return ""
	}
	return c.webhookLn.Addr().String()
}
