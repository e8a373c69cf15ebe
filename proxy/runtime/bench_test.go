package runtime

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/proxy/cluster"
	"github.com/weft-mesh/weft/proxy/mtls/mtlstest"
)

// benchUpstream answers every request with a small body.
func benchUpstream(b *testing.B) *httptest.Server {
	body := []byte(`{"id":7,"name":"widget","price":12.5}`)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	b.Cleanup(s.Close)
	return s
}

func benchGet(b *testing.B, c *http.Client, url string) {
	b.Helper()
	buf := make([]byte, 512)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := resp.Body.Read(buf); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

func benchClient(b *testing.B) *http.Client {
	c := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}}
	b.Cleanup(c.CloseIdleConnections)
	return c
}

// BenchmarkDirect is the baseline: client -> upstream over loopback.
func BenchmarkDirect(b *testing.B) {
	up := benchUpstream(b)
	benchGet(b, benchClient(b), up.URL+"/items/7?full=1")
}

// BenchmarkProxyHop is client -> weft listener -> upstream over loopback, the
// same request as BenchmarkDirect; allocs/op include client and upstream.
func BenchmarkProxyHop(b *testing.B) {
	up := benchUpstream(b)
	_, base := start(b, simple(b, "127.0.0.1:0", 0, hostOf(b, up.URL)), Options{})
	benchGet(b, benchClient(b), base+"/items/7?full=1")
}

// meshHop starts a client sidecar and a server sidecar (inbound mode
// STRICT or DISABLE) in front of up, and returns the client sidecar's URL.
func meshHop(b *testing.B, mode string, up string) string {
	return meshHopWith(b, mode, up, nil)
}

// meshHopWith is meshHop with edit applied to the client sidecar's
// resources.
func meshHopWith(b *testing.B, mode string, up string, edit func(*Resources)) string {
	ca := mtlstest.NewCA(b, "mesh")
	_, in := serveOn(b, inboundResources(b, "127.0.0.1:0", mode, up, ca.Secrets(b, serverID)), Options{}, "in")
	sidecars, plain := []string{in}, []string(nil)
	if mode == "DISABLE" {
		sidecars, plain = nil, sidecars
	}
	out := outboundResources(b, sidecars, plain, ca.Secrets(b, clientID), serverID)
	if edit != nil {
		edit(out)
	}
	_, l := serveOn(b, out, Options{}, "l")
	return "http://" + l
}

// BenchmarkMeshHopPlaintext is client -> client sidecar -> server sidecar
// -> upstream, plaintext between the sidecars (PeerAuthentication DISABLE).
func BenchmarkMeshHopPlaintext(b *testing.B) {
	up := benchUpstream(b)
	benchGet(b, benchClient(b), meshHop(b, "DISABLE", hostOf(b, up.URL))+"/items/7?full=1")
}

// BenchmarkMeshHopMTLS is the same path with STRICT mTLS between the
// sidecars (pooled connections: the handshake is amortized, as in steady
// mesh traffic).
func BenchmarkMeshHopMTLS(b *testing.B) {
	up := benchUpstream(b)
	benchGet(b, benchClient(b), meshHop(b, "STRICT", hostOf(b, up.URL))+"/items/7?full=1")
}

// BenchmarkMeshHopMTLSH2 is BenchmarkMeshHopMTLS with the sidecar-to-sidecar
// leg multiplexed over HTTP/2 (the cluster's explicit_http_config
// http2_protocol_options, as Linkerd multiplexes between its proxies)
// instead of HTTP/1.1 over a kept-alive pool.
func BenchmarkMeshHopMTLSH2(b *testing.B) {
	up := benchUpstream(b)
	url := meshHopWith(b, "STRICT", hostOf(b, up.URL), func(r *Resources) {
		r.Clusters["c"].TypedExtensionProtocolOptions = map[string]*anypb.Any{cluster.HTTPProtocolOptionsKey: mustAny(b,
			&httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
				ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
						Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}}}})}
	})
	benchGet(b, benchClient(b), url+"/items/7?full=1")
}
