package rbac

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/weft-mesh/weft/proxy/filter"
)

// FuzzParse feeds arbitrary bytes as a packed HTTP RBAC: Parse and
// ParseNetwork must not panic, and an engine they accept must evaluate any
// request or connection.
func FuzzParse(f *testing.F) {
	for _, m := range []*httprbacv3.RBAC{
		{Rules: rules(rbacv3.RBAC_ALLOW, map[string]*rbacv3.Policy{"p": {
			Permissions: []*rbacv3.Permission{andPerms(headerPerm(":method", exact("GET")), notPerm(pathPerm(prefix("/admin"))))},
			Principals:  []*rbacv3.Principal{principal(regex(".*/ns/default/.*")), metaID([]string{"request.auth.claims", "g"}, listValue(exact("a")))},
		}})},
		{Rules: rules(rbacv3.RBAC_DENY, map[string]*rbacv3.Policy{"q": {
			Permissions: []*rbacv3.Permission{portPerm(80)},
			Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: cidr("10.0.0.0", 8)}}},
		}})},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(&anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC", Value: b}, filter.HCMOptions{})
		if err == nil && h != nil {
			r := request("GET", "/admin/../x?y=1", sleepID, "10.1.1.1:1000", "127.0.0.1:80")
			r.Header.Set("X-Forwarded-For", "1.2.3.4")
			x := filter.NewExchange(httptest.NewRecorder(), r)
			x.SetMetadata("istio_authn", "request.auth.claims", map[string]any{"g": []any{"a", 1.0, nil, map[string]any{}}})
			h.Request(x)
			h.Engine().Allowed(&filter.ConnInfo{Local: netip.MustParseAddrPort("127.0.0.1:80")})
		}
		var m httprbacv3.RBAC
		if proto.Unmarshal(b, &m) != nil || m.GetRules() == nil {
			return
		}
		if e, err := Compile(m.GetRules(), true); err == nil {
			e.Allowed(&filter.ConnInfo{})
		}
	})
}
