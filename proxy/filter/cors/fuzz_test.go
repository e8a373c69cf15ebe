package cors

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/proxy/filter"
)

// FuzzParse feeds arbitrary bytes as a packed CorsPolicy and an arbitrary
// origin: Parse must not panic, and an accepted policy must handle preflight
// and simple requests without panicking or writing invalid headers.
func FuzzParse(f *testing.F) {
	f.Add([]byte{0x0a, 0x03, 0x0a, 0x01, 0x2a, 0x12, 0x03, 0x47, 0x45, 0x54}, "https://a")
	f.Add([]byte{0x0a, 0x04, 0x2a, 0x02, 0x0a, 0x01}, "")
	f.Fuzz(func(t *testing.T, b []byte, origin string) {
		p, err := Parse(&anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy", Value: b})
		if err != nil {
			return
		}
		for _, method := range []string{"OPTIONS", "GET"} {
			r := httptest.NewRequest(method, "/", nil)
			r.Header["Origin"] = []string{origin}
			r.Header.Set("Access-Control-Request-Method", "GET")
			w := httptest.NewRecorder()
			x := filter.NewExchange(w, r)
			if (filter.Chain{p}).Request(x) {
				h := http.Header{}
				x.Response(200, h)
				if v := h.Get("Access-Control-Allow-Origin"); v != "" && v != origin {
					t.Fatalf("allow-origin %q for origin %q", v, origin)
				}
			}
		}
	})
}
