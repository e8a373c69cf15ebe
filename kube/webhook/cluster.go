package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"

	"github.com/weft-mesh/weft/kube/inject"
)

// Cluster is what the injector reads from the cluster, from informers: the
// namespaces' labels and the control plane's Services, whose ClusterIPs the
// sidecars dial (a cluster may have no DNS): the control plane's for xDS,
// and for telemetry its leader's (NAME-leader, inject.LeaderServiceName
// for the install's), else the control plane's.
type Cluster struct {
	kube     kubernetes.Interface
	member   func(ns string) (bool, string)
	nsFac    informers.SharedInformerFactory
	svcFac   informers.SharedInformerFactory
	ns       listersv1.NamespaceLister
	svc      listersv1.ServiceLister
	svcNS    string
	svcName  string
	settings inject.Settings
	synced   chan struct{} // closed once both informers have listed
}

// NewCluster watches the namespaces and the control plane's Service
// (svc, "NAMESPACE/NAME"; "": inject.SystemNamespace/inject.ControlPlaneName).
// member reports a namespace's mesh membership (nil: every namespace is a
// member). base is completed by Settings with the Service's address.
func NewCluster(kube kubernetes.Interface, svc string, member func(ns string) (bool, string), base inject.Settings) *Cluster {
	c := &Cluster{kube: kube, member: member, svcNS: inject.SystemNamespace, svcName: inject.ControlPlaneName, settings: base, synced: make(chan struct{})}
	if ns, name, ok := strings.Cut(svc, "/"); ok {
		c.svcNS, c.svcName = ns, name
	}
	c.nsFac = informers.NewSharedInformerFactory(kube, 10*time.Minute)
	c.svcFac = informers.NewSharedInformerFactoryWithOptions(kube, 10*time.Minute, informers.WithNamespace(c.svcNS))
	c.ns = c.nsFac.Core().V1().Namespaces().Lister()
	c.svc = c.svcFac.Core().V1().Services().Lister()
	return c
}

// Run runs the informers until ctx ends. Lookups wait for their first
// list (bounded by the lookup's context: the API server's webhook timeout).
func (c *Cluster) Run(ctx context.Context) error {
	c.nsFac.Start(ctx.Done())
	c.svcFac.Start(ctx.Done())
	defer c.nsFac.Shutdown()
	defer c.svcFac.Shutdown()
	for _, synced := range []map[reflect.Type]bool{c.nsFac.WaitForCacheSync(ctx.Done()), c.svcFac.WaitForCacheSync(ctx.Done())} {
		for typ, ok := range synced {
			if !ok {
				return fmt.Errorf("webhook: %v informer did not sync", typ)
			}
		}
	}
	close(c.synced)
	<-ctx.Done()
	return nil
}

func (c *Cluster) wait(ctx context.Context) error {
	select {
	case <-c.synced:
		return nil
	case <-ctx.Done():
		return errors.New("webhook: the cluster's namespaces and Services are not listed yet")
	}
}

// Namespace returns a namespace's labels and membership. A namespace the
// informer has not seen yet (created a moment ago) is read from the API.
func (c *Cluster) Namespace(ctx context.Context, name string) (inject.Namespace, error) {
	if err := c.wait(ctx); err != nil {
		return inject.Namespace{}, err
	}
	ns, err := c.ns.Get(name)
	if apierrors.IsNotFound(err) {
		ns, err = c.kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return inject.Namespace{}, err
	}
	out := inject.Namespace{Name: name, Labels: ns.Labels, Member: true}
	if c.member != nil {
		out.Member, out.NotMemberReason = c.member(name)
	}
	return out, nil
}

// Settings returns the injection settings with the control plane's
// address: its Service's ClusterIP, on the xDS port and the API port.
func (c *Cluster) Settings(ctx context.Context) (inject.Settings, error) {
	if err := c.wait(ctx); err != nil {
		return inject.Settings{}, err
	}
	svc, err := c.svc.Services(c.svcNS).Get(c.svcName)
	if err != nil {
		return inject.Settings{}, fmt.Errorf("the control plane's Service %s/%s: %w", c.svcNS, c.svcName, err)
	}
	ip := svc.Spec.ClusterIP
	if !hasClusterIP(svc) {
		return inject.Settings{}, errors.New("the control plane's Service " + c.svcNS + "/" + c.svcName + " has no ClusterIP")
	}
	s := c.settings
	s.XDSAddress = net.JoinHostPort(ip, strconv.Itoa(inject.XDSPort))
	if s.TelemetryURL == "" {
		tip := ip
		if leader, err := c.svc.Services(c.svcNS).Get(c.svcName + leaderSuffix); err == nil && hasClusterIP(leader) {
			tip = leader.Spec.ClusterIP
		}
		s.TelemetryURL = "http://" + net.JoinHostPort(tip, strconv.Itoa(inject.APIPort))
	}
	return s, nil
}

// leaderSuffix makes the control plane's leader Service name of its
// Service's: istiod-leader.
const leaderSuffix = "-leader"

func hasClusterIP(s *corev1.Service) bool {
	return s.Spec.ClusterIP != "" && s.Spec.ClusterIP != corev1.ClusterIPNone
}
