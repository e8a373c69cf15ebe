package originaldst

import (
	"net"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/weft-mesh/weft/proxy/capture"
	"github.com/weft-mesh/weft/proxy/lb"
)

func TestPick(t *testing.T) {
	b := &Balancer{}
	for host, want := range map[string]string{
		"10.1.2.3:8080": "10.1.2.3:8080",
		"example.com":   "example.com:80",
		"[::1]":         "[::1]:80",
		"[::1]:9":       "[::1]:9",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = host
		if got := b.Pick(r, lb.Hash{}); got == nil || got.Address != want {
			t.Errorf("Host %q: picked %v, want %s", host, got, want)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = ""
	if b.Pick(r, lb.Hash{}) != nil || b.Pick(nil, lb.Hash{}) != nil {
		t.Error("picked without a destination")
	}
	hb := &Balancer{Header: DefaultHeader}
	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set(DefaultHeader, "10.9.9.9:7000")
	if got := hb.Pick(r, lb.Hash{}); got.Address != "10.9.9.9:7000" {
		t.Errorf("header: picked %s", got.Address)
	}
}

// A request on a redirected connection goes where the connection was
// going, whatever its Host says; the configured header still wins.
func TestPickOriginalDestination(t *testing.T) {
	dst := netip.MustParseAddrPort("10.96.0.20:9080")
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = "reviews:9080"
	r = r.WithContext(capture.WithConn(r.Context(), capture.NewConn(&net.TCPConn{}, dst)))
	if got := (&Balancer{}).Pick(r, lb.Hash{}); got == nil || got.Address != "10.96.0.20:9080" {
		t.Errorf("picked %v, want the original destination", got)
	}
	r.Header.Set(DefaultHeader, "10.9.9.9:7000")
	if got := (&Balancer{Header: DefaultHeader}).Pick(r, lb.Hash{}); got == nil || got.Address != "10.9.9.9:7000" {
		t.Errorf("with the header: picked %v", got)
	}
}
