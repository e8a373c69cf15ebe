package observe

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/weft-mesh/weft/proxy/runtime"
	"github.com/weft-mesh/weft/proxy/stats"
	"github.com/weft-mesh/weft/proxy/trace"
	"github.com/weft-mesh/weft/xds/node"
)

// BenchmarkProxyHopTelemetry is client -> weft sidecar outbound listener ->
// upstream over loopback, without a Tap (off) and with the proxy's
// telemetry as `weft run` configures it (on: metrics, peer header, 1%
// trace sampling, no access log). allocs/op include client and upstream.
//
//	go test ./proxy/observe -run '^$' -bench ProxyHopTelemetry -benchmem -count 5
func BenchmarkProxyHopTelemetry(b *testing.B) {
	body := []byte(`{"id":7,"name":"widget","price":12.5}`)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	b.Cleanup(up.Close)
	md := map[string]any{"workload": "catalog-v1", "namespace": "default", "labels": map[string]any{"app": "catalog", "version": "v1"}}
	meta := &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "web-1", Namespace: "default", WorkloadName: "web",
		Labels: map[string]string{"app": "web", "version": "v1"}}
	for _, c := range []struct {
		name string
		tap  func() runtime.Tap
	}{
		{"off", func() runtime.Tap { return nil }},
		{"on", func() runtime.Tap {
			return New(Options{Meta: meta, Stats: stats.NewRegistry(0), Sampling: trace.DefaultSampling, Spans: trace.NewBuffer(0)})
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := oneHop(b, corev3.TrafficDirection_OUTBOUND, "outbound|80||catalog.default.svc.cluster.local", hostOf(up.URL), md)
			var tap runtime.Tap
			if t := c.tap(); t != nil {
				tap = t
			}
			base := serve(b, r, tap)
			client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}}
			b.Cleanup(client.CloseIdleConnections)
			buf := make([]byte, 512)
			b.ReportAllocs()
			for b.Loop() {
				resp, err := client.Get(base + "/items/7?full=1")
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
		})
	}
}
