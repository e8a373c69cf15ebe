package ratelimit

import (
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/proxy/filter"
)

// FuzzParse feeds arbitrary bytes as a packed LocalRateLimit, at the HCM
// and per route: no panic, and an accepted limiter never lets through more
// requests than its bucket holds while the clock stands still.
func FuzzParse(f *testing.F) {
	b, err := proto.Marshal(config(10, 20, time.Second))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, true)
	f.Add([]byte{0x0a, 0x01, 0x78}, false)
	f.Fuzz(func(t *testing.T, b []byte, perRoute bool) {
		clk := &fakeClock{}
		l, err := Parse(&anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit", Value: b}, perRoute, clk.now)
		if err != nil || l == nil {
			return
		}
		max := int(min(l.Bucket().Max(), 50))
		passed := 0
		for range max + 1 {
			w := httptest.NewRecorder()
			x := filter.NewExchange(w, httptest.NewRequest("GET", "/", nil))
			if x.Run(filter.Chain{l}) {
				passed++
				x.Response(200, w.Header())
			}
		}
		always := func(f filter.Fraction) bool { return f.Numerator >= f.Denominator }
		if always(l.enforced) && always(l.enabled) && passed > max {
			t.Fatalf("%d requests passed a bucket of %d", passed, max)
		}
	})
}
