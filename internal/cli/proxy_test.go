package cli

import "testing"

func TestParsePortMap(t *testing.T) {
	m, err := parsePortMap("80=127.0.0.1:8080,443=127.0.0.1:8443")
	if err != nil || m[80] != "127.0.0.1:8080" || m[443] != "127.0.0.1:8443" {
		t.Fatalf("parsePortMap = %v, %v", m, err)
	}
	for _, bad := range []string{"80", "x=127.0.0.1:1", "80=nohostport", "0=127.0.0.1:1"} {
		if _, err := parsePortMap(bad); err == nil {
			t.Errorf("parsePortMap(%q) succeeded, want error", bad)
		}
	}
}
