package observe

import (
	"testing"
	"time"

	"github.com/weft-mesh/weft/proxy/runtime"
	"github.com/weft-mesh/weft/proxy/stats"
	"github.com/weft-mesh/weft/proxy/tcpproxy"
	"github.com/weft-mesh/weft/xds/node"
)

// Inbound requests and connections that completed mutual TLS are labelled
// as Istio labels them: connection_security_policy="mutual_tls", the
// caller's certificate as source_principal, this proxy's identity as
// destination_principal. Plaintext ones say "none" and name no one.
func TestInboundMutualTLSLabels(t *testing.T) {
	reg := stats.NewRegistry(0)
	tap := New(Options{Meta: &node.Meta{Type: node.Sidecar, Name: "details-v1-x", Namespace: "default", WorkloadName: "details-v1",
		ServiceAccount: "bookinfo-details", Labels: map[string]string{"app": "details", "version": "v1"}}, Stats: reg})
	const caller = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
	peer := stats.Peer{Workload: "productpage-v1", Namespace: "default", App: "productpage", Version: "v1", Dst: "details.default.svc.cluster.local"}.Encode()
	for _, res := range []*runtime.Result{
		{Inbound: true, Code: 200, Peer: peer, MutualTLS: true, PeerPrincipal: caller, Duration: time.Millisecond},
		{Inbound: true, Code: 200, Peer: peer, MutualTLS: true, PeerPrincipal: caller, Duration: time.Millisecond},
		{Inbound: true, Code: 200, Peer: peer, Duration: time.Millisecond},
		// A principal without mTLS is not believed.
		{Inbound: true, Code: 200, Peer: peer, PeerPrincipal: caller, Duration: time.Millisecond},
		// mTLS from a caller without a sidecar's peer header.
		{Inbound: true, Code: 403, Authority: "details:9080", MutualTLS: true, PeerPrincipal: "spiffe://cluster.local/ns/default/sa/sleep"},
	} {
		tap.End(res)
	}
	got := map[string]uint64{}
	for _, s := range reg.Delta().Requests {
		l := s.Labels
		if l["reporter"] != "destination" || l["destination_workload"] != "details-v1" {
			t.Errorf("labels %v", l)
		}
		got[l["connection_security_policy"]+" "+l["source_workload"]+" "+l["source_principal"]+" "+l["destination_principal"]] += s.Count
	}
	want := map[string]uint64{
		"mutual_tls productpage-v1 " + caller + " spiffe://cluster.local/ns/default/sa/bookinfo-details": 2,
		"none productpage-v1 unknown unknown": 2,
		"mutual_tls unknown spiffe://cluster.local/ns/default/sa/sleep spiffe://cluster.local/ns/default/sa/bookinfo-details": 1,
	}
	if len(got) != len(want) {
		t.Errorf("series %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%q: %d requests, want %d (all: %v)", k, got[k], n, got)
		}
	}

	tap.TCPOpened(&tcpproxy.Result{MutualTLS: true, PeerPrincipal: caller}, true)
	tap.TCPClosed(&tcpproxy.Result{MutualTLS: true, PeerPrincipal: caller, BytesSent: 3, BytesReceived: 4}, true)
	tcp := reg.Delta().TCP
	if len(tcp) != 1 || tcp[0].Labels["connection_security_policy"] != "mutual_tls" || tcp[0].Labels["source_principal"] != caller ||
		tcp[0].Labels["destination_principal"] != "spiffe://cluster.local/ns/default/sa/bookinfo-details" || tcp[0].Closed != 1 {
		t.Errorf("tcp %+v", tcp)
	}
}

func TestSpiffeID(t *testing.T) {
	tap := New(Options{Meta: &node.Meta{Namespace: "ns1", ServiceAccount: "a"}, Stats: stats.NewRegistry(0), TrustDomain: "td.example"})
	if tap.self.principal != "spiffe://td.example/ns/ns1/sa/a" {
		t.Errorf("own principal %q", tap.self.principal)
	}
}

// Looking up an inbound request's labels allocates nothing once cached,
// mTLS or not.
func TestInboundLookupAllocs(t *testing.T) {
	tap := New(Options{Meta: &node.Meta{Type: node.Sidecar, Namespace: "default", WorkloadName: "w"}, Stats: stats.NewRegistry(0)})
	res := &runtime.Result{Inbound: true, Peer: stats.Peer{Workload: "a"}.Encode(), MutualTLS: true, PeerPrincipal: "spiffe://cluster.local/ns/default/sa/a"}
	tap.static(res)
	if n := testing.AllocsPerRun(100, func() { tap.static(res) }); n != 0 {
		t.Errorf("%v allocations per cached lookup", n)
	}
}
