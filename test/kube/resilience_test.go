package kube

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/weft-mesh/weft/kube/inject"
	"github.com/weft-mesh/weft/kube/kubetest"
)

// rps is the load the resilience tests keep up through the gateway.
const rps = 100

// TestRollingUpdate rolls every reviews Deployment (the pods are replaced
// one by one: a new one ready, then the old one terminated) under 100
// requests per second through the ingress gateway: not one fails.
func TestRollingUpdate(t *testing.T) {
	m := meshFor(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	old, err := m.pods(ctx, "app=reviews")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "whole pages", func() error { _, err := m.versions("", 5); return err })

	l := m.startLoad(rps)
	time.Sleep(2 * time.Second) // steady load before the change
	m.mustKubectl(t, "", "rollout", "restart", "-n", m.ns, "deployment/reviews-v1", "deployment/reviews-v2", "deployment/reviews-v3")
	for _, d := range []string{"reviews-v1", "reviews-v2", "reviews-v3"} {
		m.mustKubectl(t, "", "rollout", "status", "-n", m.ns, "deployment/"+d, "--timeout=3m")
	}
	// rollout status returns once the new pods are available; the old
	// ones may still be draining.
	for _, p := range old {
		kubetest.Poll(t, 2*time.Minute, "old pod "+p.Name+" gone", func() bool { return m.gone(ctx, m.ns, p.Name) })
	}
	time.Sleep(2 * time.Second) // and steady load after it
	s := l.stop()
	s.check(t, "the rolling update of reviews")
	// What the apps saw (a failure the page hides by productpage's own
	// retry, say): reported, not judged.
	t.Logf("requests that did not answer 200, by the proxies' metrics:\n%s", m.failedSeries(ctx))

	pods, err := m.pods(ctx, "app=reviews")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		checkInjected(t, &p)
	}
}

// acked says whether the endpoints a proxy ACKed for service's clusters
// hold ip, as the control plane that serves it reports them.
func (m *mesh) acked(ctx context.Context, r replica, proxyID, service, ip string) (bool, error) {
	var dump struct {
		Configs []struct {
			Dynamic []struct {
				Config struct {
					Cluster   string `json:"cluster_name"`
					Endpoints []struct {
						LB []struct {
							Endpoint struct {
								Address struct {
									Socket struct {
										Address string `json:"address"`
									} `json:"socket_address"`
								} `json:"address"`
							} `json:"endpoint"`
						} `json:"lb_endpoints"`
					} `json:"endpoints"`
				} `json:"endpoint_config"`
			} `json:"dynamic_endpoint_configs"`
		} `json:"configs"`
	}
	if err := m.apiGet(ctx, r, "/api/v1/proxies/"+proxyID+"/config/endpoints", &dump); err != nil {
		return false, err
	}
	for _, c := range dump.Configs {
		for _, d := range c.Dynamic {
			if !strings.HasSuffix(d.Config.Cluster, "|"+service) {
				continue
			}
			for _, e := range d.Config.Endpoints {
				for _, lb := range e.LB {
					if lb.Endpoint.Address.Socket.Address == ip {
						return true, nil
					}
				}
			}
		}
	}
	return false, nil
}

// TestEndpointRemoval deletes a reviews pod and measures, for every proxy
// that had its endpoint, the time from the EndpointSlice change (the
// endpoint terminating) to the proxy's ACK of endpoints without it, as its
// control plane reports it (polled every 20 ms). The issue asks for 1 s;
// the test reports the times and fails only past a generous bound.
func TestEndpointRemoval(t *testing.T) {
	m := meshFor(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pods, err := m.pods(ctx, "app=reviews,version=v1")
	if err != nil || len(pods) != 1 {
		t.Fatalf("reviews-v1 pods: %v %v", len(pods), err)
	}
	victim := pods[0]
	ip := victim.Status.PodIP
	service := "reviews." + m.ns + ".svc.cluster.local"

	// The proxies that hold the endpoint now (all but the victim's own).
	var holders map[string]replica
	kubetest.Poll(t, time.Minute, "the proxies to hold "+victim.Name+"'s endpoint", func() bool {
		conn, err := m.connected(ctx)
		if err != nil {
			return false
		}
		holders = map[string]replica{}
		for id, r := range conn {
			if strings.Contains(id, "~"+ip+"~") {
				continue
			}
			if has, err := m.acked(ctx, r, id, service, ip); err == nil && has {
				holders[id] = r
			}
		}
		return len(holders) >= 2 // at least the gateway and productpage
	})

	// The slice change, as the API server announces it.
	slices0, err := m.c.Kube.DiscoveryV1().EndpointSlices(m.ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=reviews"})
	if err != nil {
		t.Fatal(err)
	}
	w, err := m.c.Kube.DiscoveryV1().EndpointSlices(m.ns).Watch(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=reviews", ResourceVersion: slices0.ResourceVersion,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	sliceChanged := make(chan time.Time, 1)
	go func() {
		for ev := range w.ResultChan() {
			es, ok := ev.Object.(*discoveryv1.EndpointSlice)
			if !ok {
				continue
			}
			if ev.Type == watch.Deleted || !servesReady(es, ip) {
				sliceChanged <- time.Now()
				return
			}
		}
	}()

	type result struct {
		id   string
		at   time.Time
		err  error
		last error
	}
	results := make(chan result, len(holders))
	for id, r := range holders {
		go func() {
			var last error
			for {
				has, err := m.acked(ctx, r, id, service, ip)
				if err == nil && !has {
					results <- result{id: id, at: time.Now()}
					return
				}
				if err != nil {
					last = err
				}
				select {
				case <-ctx.Done():
					results <- result{id: id, err: fmt.Errorf("still holds the endpoint: %v", ctx.Err()), last: last}
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
	}
	deleted := time.Now()
	if err := m.c.Kube.CoreV1().Pods(m.ns).Delete(ctx, victim.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var changed time.Time
	select {
	case changed = <-sliceChanged:
	case <-time.After(time.Minute):
		t.Fatal("the EndpointSlice did not change within a minute of the pod's deletion")
	}
	var took []time.Duration
	byProxy := map[string]time.Duration{}
	for range holders {
		r := <-results
		if r.err != nil {
			t.Errorf("proxy %s: %v (last error %v)", r.id, r.err, r.last)
			continue
		}
		d := r.at.Sub(changed)
		took = append(took, d)
		byProxy[shortID(r.id)] = d.Round(time.Millisecond)
	}
	if len(took) == 0 {
		return
	}
	slices.Sort(took)
	t.Logf("endpoint removal: pod deleted -> slice changed %s; slice change -> proxies ACKed without it (%d proxies): min %s, median %s, max %s; %v",
		changed.Sub(deleted).Round(time.Millisecond), len(took), took[0].Round(time.Millisecond),
		took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), byProxy)
	// Not a timing assertion: the polling above is bounded by its
	// context; say plainly when the 1 s the issue asks for was missed.
	if took[len(took)-1] > time.Second {
		t.Logf("NOTE: slower than 1 s for some proxy")
	}
	if err := m.waitRollout(ctx, "reviews-v1"); err != nil {
		t.Fatal(err)
	}
}

// servesReady says whether the slice lists ip as ready and not terminating.
func servesReady(es *discoveryv1.EndpointSlice, ip string) bool {
	for _, e := range es.Endpoints {
		if !slices.Contains(e.Addresses, ip) {
			continue
		}
		c := e.Conditions
		return (c.Ready == nil || *c.Ready) && (c.Terminating == nil || !*c.Terminating)
	}
	return false
}

// shortID is a proxy's pod name.ns from its node ID (TYPE~IP~POD.NS~DOMAIN).
func shortID(id string) string {
	if f := strings.Split(id, "~"); len(f) == 4 {
		return f[2]
	}
	return id
}

func (m *mesh) waitRollout(ctx context.Context, deployment string) error {
	_, err := m.kubectl("", "rollout", "status", "-n", m.ns, "deployment/"+deployment, "--timeout=3m")
	return err
}

// leader returns the pod name holding the control plane's Lease (its
// holder identity is POD_NAME_SUFFIX), "" when none does.
func (m *mesh) leader(ctx context.Context) (string, error) {
	l, err := m.c.Kube.CoordinationV1().Leases(inject.SystemNamespace).Get(ctx, inject.LeaderLease, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	h := ""
	if l.Spec.HolderIdentity != nil {
		h = *l.Spec.HolderIdentity
	}
	if i := strings.IndexByte(h, '_'); i > 0 { // pod names have no '_'
		h = h[:i]
	}
	return h, nil
}

// TestLeaderFailover runs the control plane as installed (2 replicas,
// leader election) and deletes the leading pod under 100 requests per
// second through the gateway: not one fails, another replica leads
// within 15 s (the Lease's 10 s duration plus a 2 s retry bound it even
// if the leader could not release it) and does the leader's work, and
// every proxy reconnects to a remaining replica.
func TestLeaderFailover(t *testing.T) {
	m := meshFor(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var leader string
	kubetest.Poll(t, 30*time.Second, "a leader", func() bool {
		leader, _ = m.leader(ctx)
		return leader != ""
	})
	// The proxies of this test: Bookinfo's running pods and the gateway.
	pods, err := m.pods(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	gw, err := m.c.Kube.CoreV1().Pods(inject.SystemNamespace).List(ctx, metav1.ListOptions{LabelSelector: "istio=ingressgateway"})
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]bool{}
	for _, p := range append(pods, gw.Items...) {
		if p.DeletionTimestamp == nil {
			live[p.Name+"."+p.Namespace] = true
		}
	}
	var ours []string
	onLeader := 0
	kubetest.Poll(t, time.Minute, "every Bookinfo pod's and the gateway's proxy connected", func() bool {
		before, err := m.connected(ctx)
		if err != nil {
			return false
		}
		ours, onLeader = ours[:0], 0
		for id, r := range before {
			if live[shortID(id)] {
				ours = append(ours, id)
				if r.name == leader {
					onLeader++
				}
			}
		}
		return len(ours) == len(live)
	})
	sort.Strings(ours)
	eventually(t, time.Minute, "whole pages", func() error { _, err := m.versions("", 5); return err })

	all, err := m.replicas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	survivors := slices.DeleteFunc(all, func(r replica) bool { return r.name == leader })
	l := m.startLoad(rps)
	time.Sleep(2 * time.Second)
	deleted := time.Now()
	if err := m.c.Kube.CoreV1().Pods(inject.SystemNamespace).Delete(ctx, leader, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var next string
	kubetest.Poll(t, 15*time.Second, "another replica to lead", func() bool {
		next, _ = m.leader(ctx)
		return next != "" && next != leader
	})
	takeover := time.Since(deleted)
	eventually(t, 2*time.Minute, "every proxy connected to a remaining replica", func() error {
		now, err := m.connected(ctx)
		if err != nil {
			return err
		}
		var missing []string
		for _, id := range ours {
			if r, ok := now[id]; !ok || r.name == leader {
				missing = append(missing, shortID(id))
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("not connected: %v", missing)
		}
		return nil
	})
	reconnected := time.Since(deleted)
	// The new leader does the leader's work: a new namespace gets the
	// mesh's root certificate.
	ns, err := m.namespace("failover", false)
	if err != nil {
		t.Fatal(err)
	}
	kubetest.Poll(t, time.Minute, "the root certificate ConfigMap in a new namespace", func() bool {
		_, err := m.c.Kube.CoreV1().ConfigMaps(ns).Get(ctx, inject.RootCertConfigMap, metav1.GetOptions{})
		return err == nil
	})
	rootCert := time.Since(deleted)
	if _, err := m.kubectl("", "rollout", "status", "-n", inject.SystemNamespace, "deployment/"+inject.ControlPlaneName, "--timeout=3m"); err != nil {
		t.Fatal(err)
	}
	kubetest.Poll(t, 2*time.Minute, "the old leader pod gone", func() bool { return m.gone(ctx, inject.SystemNamespace, leader) })
	time.Sleep(2 * time.Second)
	s := l.stop()
	s.check(t, "the control plane's leader failover")
	if t.Failed() {
		t.Logf("requests that did not answer 200, by the proxies' metrics:\n%s", m.failedSeries(ctx))
	}
	// The telemetry follows the leader: the console, through its Service,
	// shows the traffic again.
	m.waitGraph(t, 2*time.Minute)
	graph := time.Since(deleted)
	who := "the other replica"
	if !slices.ContainsFunc(survivors, func(r replica) bool { return r.name == next }) {
		who = "the Deployment's new replica"
	}
	t.Logf("leader failover: %s deleted (%d of our %d proxies on it); after the deletion: %s (%s) leads at %s, every proxy is on a remaining replica at %s, a new namespace has the root certificate at %s, the console shows Bookinfo's graph at %s",
		leader, onLeader, len(ours), next, who, takeover.Round(time.Millisecond), reconnected.Round(time.Millisecond), rootCert.Round(time.Millisecond), graph.Round(time.Millisecond))
}
