package originaldst

import (
	"net/http/httptest"
	"testing"

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
