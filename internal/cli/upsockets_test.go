package cli

import (
	"strings"
	"testing"

	"github.com/weft-mesh/weft/internal/testnet"
)

// TestBindUp: every address weft up serves is bound at once, ports 0
// resolved; a taken address is an error naming its flag.
func TestBindUp(t *testing.T) {
	f := &upFlags{apiAddr: "127.0.0.1:0", xdsAddr: "127.0.0.1:0", gatewayAddr: "127.0.0.1:0", adminAddr: "127.0.0.1:0",
		gatewayPortMap: "31400=127.0.0.1:0"}
	s, err := bindUp(f)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	for _, p := range []uint32{80, 31400} {
		a := s.addrs[p]
		if strings.HasSuffix(a, ":0") || a != s.gateway[p].Addr().String() {
			t.Errorf("gateway port %d: %q bound at %v", p, a, s.gateway[p].Addr())
		}
	}
	admin := s.adminAddr(f.adminAddr)
	if socks := s.proxySockets(admin); len(socks) != 3 || socks[admin] != s.admin || socks[s.addrs[31400]] != s.gateway[31400] {
		t.Errorf("sockets for the gateway: %v", socks)
	}

	taken := testnet.Listen(t).Addr().String()
	for flag, f := range map[string]*upFlags{
		"--gateway-addr":              {apiAddr: "127.0.0.1:0", xdsAddr: "127.0.0.1:0", gatewayAddr: taken, adminAddr: "127.0.0.1:0"},
		"--gateway-port-map 443":      {apiAddr: "127.0.0.1:0", xdsAddr: "127.0.0.1:0", gatewayAddr: "127.0.0.1:0", adminAddr: "127.0.0.1:0", gatewayPortMap: "443=" + taken},
		"--xds-addr":                  {apiAddr: "127.0.0.1:0", xdsAddr: taken, gatewayAddr: "127.0.0.1:0", adminAddr: "127.0.0.1:0"},
		"--gateway-port-map: port 80": {apiAddr: "127.0.0.1:0", xdsAddr: "127.0.0.1:0", gatewayAddr: "127.0.0.1:0", adminAddr: "127.0.0.1:0", gatewayPortMap: "80=127.0.0.1:0"},
	} {
		s, err := bindUp(f)
		if err == nil {
			s.close()
			t.Errorf("%s: bound", flag)
			continue
		}
		if !strings.Contains(err.Error(), flag) {
			t.Errorf("error %q does not name %s", err, flag)
		}
	}
}
