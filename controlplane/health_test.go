package controlplane

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/xds/node"
	"github.com/weft-mesh/weft/xds/server"
	"github.com/weft-mesh/weft/xds/translate"
)

const catalogHost = "catalog.shop.svc.cluster.local"

// catalogWE is a WorkloadEntry of catalog at port http: port, registered
// by the sidecar with node ID proxy ("" for one applied by hand).
func catalogWE(name, proxy string, port int) string {
	ann := ""
	if proxy != "" {
		ann = fmt.Sprintf("\n  annotations: {%s: %q}", config.AnnotationProxy, proxy)
	}
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: %s%s
spec:
  address: 127.0.0.1
  ports: {http: %d}
  labels: {app: catalog}
`, name, ann, port)
}

const catalogSE = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: catalog}
spec:
  hosts: [catalog.shop.svc.cluster.local]
  ports: [{number: 8080, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: catalog}}
`

func sidecarNamed(name string) *node.Meta {
	return &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: name, Namespace: "shop", WorkloadName: "catalog"}
}

// applyAndWait applies docs in namespace shop and waits until the model
// holds the write.
func applyAndWait(t *testing.T, cp *ControlPlane, docs ...string) {
	t.Helper()
	var srcs []client.Source
	for i, d := range docs {
		srcs = append(srcs, client.Source{Name: fmt.Sprintf("doc-%d.yaml", i), Content: d})
	}
	resp, err := client.New(cp.APIAddr(), client.WithToken(cp.APIToken())).Apply(context.Background(), srcs, client.ApplyOptions{Namespace: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the model at the applied revision", func() bool { return cp.Snapshot().Revision >= resp.Revision })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// connectSidecar opens an ADS stream as meta and returns what ends it,
// once the control plane counts the proxy as connected.
func connectSidecar(t *testing.T, cp *ControlPlane, meta *node.Meta) (disconnect func()) {
	t.Helper()
	conn, err := grpc.NewClient(cp.XDSAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	sa := meta.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	tok, err := cp.MintJoinToken(meta.Namespace, sa, "test sidecar "+meta.Name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok))
	st, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, err := st.Recv(); err != nil {
				return
			}
		}
	}()
	if err := st.Send(&discovery.DiscoveryRequest{TypeUrl: server.SecretType, Node: meta.Node()}); err != nil {
		t.Fatal(err)
	}
	stop := func() { cancel(); conn.Close() }
	t.Cleanup(stop)
	waitFor(t, meta.ID()+" connected", func() bool { st, ok := cp.health.state(meta.ID()); return ok && st.connected })
	return stop
}

// healthOf returns the health status every proxy is sent for the catalog
// endpoint at port.
func healthOf(t *testing.T, cp *ControlPlane, port uint32) corev3.HealthStatus {
	t.Helper()
	res, _ := cp.Resources(sidecarNamed("observer"))
	cla := res.Endpoints[translate.ClusterName(8080, "", catalogHost)]
	for _, l := range cla.GetEndpoints() {
		for _, e := range l.GetLbEndpoints() {
			if e.GetEndpoint().GetAddress().GetSocketAddress().GetPortValue() == port {
				return e.GetHealthStatus()
			}
		}
	}
	t.Fatalf("no catalog endpoint at port %d in %v", port, cla)
	return 0
}

// TestEndpointHealthFollowsSidecarStream: the endpoint a sidecar
// registered turns UNHEALTHY as soon as the sidecar's xDS stream drops and
// healthy again when it reconnects; an endpoint nobody registered, and
// one whose sidecar has not been seen since the control plane started,
// stay healthy.
func TestEndpointHealthFollowsSidecarStream(t *testing.T) {
	cp := startCPIn(t, t.TempDir(), Options{ReapAfter: time.Hour})
	side := sidecarNamed("catalog-v1-abc")
	applyAndWait(t, cp, catalogSE, catalogWE("catalog-v1-abc", side.ID(), 9001), catalogWE("catalog-by-hand", "", 9002))
	const healthy = corev3.HealthStatus_UNKNOWN // Envoy's "no health checking": in load balancing
	if h := healthOf(t, cp, 9001); h != healthy {
		t.Fatalf("registered, sidecar not seen since start: %v", h)
	}

	disconnect := connectSidecar(t, cp, side)
	if h := healthOf(t, cp, 9001); h != healthy {
		t.Fatalf("sidecar connected: %v", h)
	}
	disconnect()
	waitFor(t, "the endpoint unhealthy after its sidecar's stream dropped", func() bool {
		return healthOf(t, cp, 9001) == corev3.HealthStatus_UNHEALTHY
	})
	if h := healthOf(t, cp, 9002); h != healthy {
		t.Errorf("an endpoint no sidecar registered: %v", h)
	}
	connectSidecar(t, cp, side)
	if h := healthOf(t, cp, 9001); h != healthy {
		t.Errorf("sidecar reconnected: %v", h)
	}
}

// TestReaperRemovesAfterGrace: a registered workload whose sidecar is gone
// is removed no sooner than ReapAfter after its stream dropped; one whose
// sidecar came back before that is kept.
func TestReaperRemovesAfterGrace(t *testing.T) {
	const reapAfter = 500 * time.Millisecond
	cp := startCPIn(t, t.TempDir(), Options{ReapAfter: reapAfter})
	gone, back := sidecarNamed("catalog-gone"), sidecarNamed("catalog-back")
	applyAndWait(t, cp, catalogSE, catalogWE("catalog-gone", gone.ID(), 9001), catalogWE("catalog-back", back.ID(), 9002))
	exists := func(name string) bool {
		for _, o := range cp.Snapshot().Objects(config.KindWorkloadEntry) {
			if o.Meta.Name == name {
				return true
			}
		}
		return false
	}
	stopGone, stopBack := connectSidecar(t, cp, gone), connectSidecar(t, cp, back)
	dropped := time.Now()
	stopGone()
	stopBack()
	waitFor(t, "both unhealthy", func() bool {
		return healthOf(t, cp, 9001) == corev3.HealthStatus_UNHEALTHY && healthOf(t, cp, 9002) == corev3.HealthStatus_UNHEALTHY
	})
	connectSidecar(t, cp, back)
	waitFor(t, "the gone sidecar's workload reaped", func() bool { return !exists("catalog-gone") })
	if d := time.Since(dropped); d < reapAfter {
		t.Errorf("reaped %v after its stream dropped, before the %v grace", d, reapAfter)
	}
	// Dropped at the same moment, so it was due as well: it stays because
	// its sidecar came back.
	if !exists("catalog-back") {
		t.Error("the workload whose sidecar reconnected was reaped")
	}
}
