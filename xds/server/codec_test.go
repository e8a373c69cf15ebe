package server

import (
	"fmt"
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/weft-mesh/weft/xds/resource"
	"github.com/weft-mesh/weft/xds/translate"
)

func clusterResources(t *testing.T, n int, prefix string) []*resource.Resource {
	t.Helper()
	var out []*resource.Resource
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s%03d", prefix, i)
		r, err := resource.New(name, &cluster.Cluster{Name: name, AltStatName: string(make([]byte, i*40))})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestCodecEncodesResponses: what the codec writes from shared buffers
// decodes, with protobuf, to the response it stands for.
func TestCodecEncodesResponses(t *testing.T) {
	c := codec{encoding.GetCodecV2("proto")}
	base := resource.NewSet(clusterResources(t, 40, "b"))
	set := resource.Layer(base, clusterResources(t, 3, "own"))

	b, err := c.Marshal(&sotwResponse{version: "v1", typeURL: translate.ClusterType, nonce: "7", resources: setResources(set, translate.ClusterType, false)})
	if err != nil {
		t.Fatal(err)
	}
	var got discovery.DiscoveryResponse
	if err := proto.Unmarshal(b.Materialize(), &got); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if got.GetVersionInfo() != "v1" || got.GetNonce() != "7" || got.GetTypeUrl() != translate.ClusterType || len(got.GetResources()) != 43 {
		t.Fatalf("decoded %v %v %v, %d resources", got.GetVersionInfo(), got.GetNonce(), got.GetTypeUrl(), len(got.GetResources()))
	}
	seen := map[string]bool{}
	for _, a := range got.GetResources() {
		var cl cluster.Cluster
		if a.GetTypeUrl() != translate.ClusterType || a.UnmarshalTo(&cl) != nil {
			t.Fatalf("resource %v", a)
		}
		if want := set.Get(cl.GetName()); want == nil || string(want.Bytes) != string(a.GetValue()) {
			t.Errorf("resource %s not the set's encoding", cl.GetName())
		}
		seen[cl.GetName()] = true
	}
	if len(seen) != set.Len() {
		t.Errorf("%d distinct resources, want %d", len(seen), set.Len())
	}

	d := resource.Compare(base, set)
	b, err = c.Marshal(&deltaResponse{version: "v2", typeURL: translate.ClusterType, nonce: "8",
		resources: encodeResources(d, translate.ClusterType, true, func() []*resource.Resource { return d.Changed }), removed: []string{"gone", "also-gone"}})
	if err != nil {
		t.Fatal(err)
	}
	var delta discovery.DeltaDiscoveryResponse
	if err := proto.Unmarshal(b.Materialize(), &delta); err != nil {
		t.Fatalf("decode delta: %v", err)
	}
	if delta.GetSystemVersionInfo() != "v2" || delta.GetNonce() != "8" || len(delta.GetResources()) != 3 || len(delta.GetRemovedResources()) != 2 {
		t.Fatalf("decoded delta %v", &delta)
	}
	for _, r := range delta.GetResources() {
		want := set.Get(r.GetName())
		if want == nil || r.GetVersion() != want.Version || string(r.GetResource().GetValue()) != string(want.Bytes) || r.GetResource().GetTypeUrl() != translate.ClusterType {
			t.Errorf("delta resource %s: %v", r.GetName(), r)
		}
	}
	// Other messages are plain protobuf.
	req := &discovery.DiscoveryRequest{TypeUrl: translate.ClusterType, ResourceNames: []string{"a"}}
	if b, err = c.Marshal(req); err != nil {
		t.Fatal(err)
	}
	var back discovery.DiscoveryRequest
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b.Materialize())}, &back); err != nil || !proto.Equal(req, &back) {
		t.Errorf("request round trip: %v %v", err, &back)
	}
}
