package fault

import (
	"net/http/httptest"
	"testing"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/proxy/filter"
)

// FuzzParse feeds arbitrary bytes as a packed HTTPFault: Parse must not
// panic, and a config it accepts must be usable.
func FuzzParse(f *testing.F) {
	f.Add([]byte{0x12, 0x05, 0x10, 0xf7, 0x03, 0x1a, 0x00})
	f.Add([]byte{0x0a, 0x04, 0x1a, 0x02, 0x08, 0x01})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(&anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault", Value: b})
		if err != nil {
			return
		}
		if c.Delay < 0 || (c.Abort && c.HTTPStatus == 0 && c.GRPCStatus < 0) || (c.Delay == 0 && !c.Abort) {
			t.Fatalf("accepted inconsistent config %+v", c)
		}
		c.Delay = 0 // do not sleep in the fuzzer
		ft := New(c, nil)
		w := httptest.NewRecorder()
		x := filter.NewExchange(w, httptest.NewRequest("GET", "/", nil))
		filter.Chain{ft}.Request(x)
	})
}
