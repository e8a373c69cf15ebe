package config

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// FuzzDecode checks that no input makes Decode panic, and that whatever it
// accepts survives an encode/decode round trip.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		seedYAML,
		richYAML,
		"",
		"---\n---\n",
		"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\nspec: {servers: [{port: {number: 80, protocol: HTTP}, hosts: ['*']}]}\n",
		"kind: VirtualService\nspec: {http: [{route: [{destination: {host: a}, weight: 1e40}]}]}\n",
		"a: &a [*a, *a]\n",
		"--- {kind: WorkloadEntry, apiVersion: networking.istio.io/v1, metadata: {name: w}, spec: {address: 1.2.3.4, ports: {a: 1}}}\n",
		"spec: {hosts: [null], http: [null, {}]}\nkind: VirtualService\n",
		"apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\nspec: {selector: {matchLabels: {app: a}}, mtls: {mode: STRICT}, portLevelMtls: {8080: {mode: DISABLE}}}\n",
		"apiVersion: security.istio.io/v1beta1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec: {action: DENY, rules: [{from: [{source: {principals: [cluster.local/ns/a/sa/b], notIpBlocks: [10.0.0.0/8]}}], to: [{operation: {paths: [/x*], ports: ['80']}}], when: [{key: 'request.auth.claims[a][b]', values: [c]}]}]}\n",
		"apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: r}\nspec: {jwtRules: [{issuer: i, jwks: '{\"keys\":[]}', fromHeaders: [{name: x-t, prefix: 'B '}], outputClaimToHeaders: [{header: x-c, claim: c}]}]}\n",
		"apiVersion: maistra.io/v1\nkind: ServiceMeshMemberRoll\nmetadata: {name: default, namespace: istio-system}\nspec: {members: [a, '*']}\n",
		"apiVersion: weft.io/v1alpha1\nkind: RateLimit\nmetadata: {name: r}\nspec: {selector: {matchLabels: {a: b}}, limit: {requests: 10, per: 1.5s, burst: 20}, routes: [x]}\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		objs, err := Decode("fuzz", bytes.NewReader(in))
		if err != nil {
			_ = err.Error()
		}
		for _, o := range objs {
			out, err := Marshal(o, FormatYAML)
			if err != nil {
				t.Fatalf("Marshal of a decoded object: %v", err)
			}
			back, err := Decode("again", bytes.NewReader(out))
			if err != nil || len(back) != 1 || !Equal(back[0], o) {
				t.Fatalf("round trip of %s failed (err %v):\n%s", o.Key(), err, out)
			}
		}
	})
}

// FuzzPolicyValues checks the AuthorizationPolicy value and key checks never
// panic and hold their promises: an accepted value has a "*" only alone or
// at one end, and an accepted condition key is one weft enforces.
func FuzzPolicyValues(f *testing.F) {
	for _, seed := range []string{"", "*", "a*", "*a", "a*b", "*a*", "/x/{*}", "/x/{**}/y", "/{**}/{*}", "ns/sa", "a/b/c", "request.headers[x]", "request.auth.claims[a][b]",
		"request.auth.claims[", "request.headers[a][b]", "source.ip", "experimental.a", "10.0.0.0/8", "80", "spiffe://x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkWildcard(s) == "" {
			n := strings.Count(s, "*")
			if s == "" || n > 1 || n == 1 && s[0] != '*' && s[len(s)-1] != '*' {
				t.Fatalf("checkWildcard accepted %q", s)
			}
		}
		if checkPath(s) == "" && strings.ContainsAny(s, "{}") {
			// An accepted template: operators only as whole segments,
			// {**} the last of them, no other '*', '{' or '}'.
			afterText := false
			for _, seg := range strings.Split(s, "/") {
				op := seg == "{*}" || seg == "{**}"
				if op && afterText || !op && strings.ContainsAny(seg, "*{}") || s[0] != '/' {
					t.Fatalf("checkPath accepted template %q", s)
				}
				afterText = afterText || seg == "{**}"
			}
		}
		if checkServiceAccount(s) == "" {
			if ns, sa, ok := strings.Cut(s, "/"); strings.Contains(s, "*") || ok && (ns == "" || sa == "" || strings.Contains(sa, "/")) || s == "" {
				t.Fatalf("checkServiceAccount accepted %q", s)
			}
		}
		if checkPortString(s) == "" {
			if n, err := strconv.Atoi(s); err != nil || n < 1 || n > 65535 {
				t.Fatalf("checkPortString accepted %q", s)
			}
		}
		if check, msg := conditionCheck(s); (check == nil) == (msg == "") {
			t.Fatalf("conditionCheck(%q) = %v, %q: want exactly one", s, check != nil, msg)
		} else if check != nil && strings.HasPrefix(s, "experimental.") {
			t.Fatalf("conditionCheck accepted %q", s)
		}
		if parts, ok := bracketed(s); ok {
			var b strings.Builder
			for _, p := range parts {
				if p == "" {
					t.Fatalf("bracketed(%q) gave an empty part", s)
				}
				b.WriteString("[" + p + "]")
			}
			if b.String() != s {
				t.Fatalf("bracketed(%q) = %q, which does not rebuild it", s, parts)
			}
		}
		_ = CheckJWKS([]byte(s))
	})
}
