package config

import (
	"bytes"
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
