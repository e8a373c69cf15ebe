package cli

import (
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/weft-mesh/weft/controlplane"
)

func TestXDSDialAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:15010":   "127.0.0.1:15010",
		"[::]:15010":      "127.0.0.1:15010",
		":15010":          "127.0.0.1:15010",
		"127.0.0.1:15010": "127.0.0.1:15010",
		"10.0.0.5:15010":  "10.0.0.5:15010",
	} {
		if got := xdsDialAddr(in); got != want {
			t.Errorf("xdsDialAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSecurityFlags(t *testing.T) {
	for _, cmd := range []*cobra.Command{newControlPlaneCmd(&globals{}), newUpCmd(&globals{})} {
		if err := cmd.ParseFlags([]string{"--trust-domain", "example.org", "--cacerts", "/etc/cacerts", "--cert-ttl", "4s"}); err != nil {
			t.Errorf("%s: %v", cmd.Name(), err)
		}
	}
	var o controlplane.Options
	f := securityFlags{trustDomain: "example.org", caCerts: "/etc/cacerts", certTTL: 4 * time.Second}
	if err := f.apply(&o); err != nil || o.TrustDomain != "example.org" || o.CACertsDir != "/etc/cacerts" || o.CertTTL != 4*time.Second {
		t.Fatalf("apply: %+v, %v", o, err)
	}
	f.certTTL = 10 * time.Millisecond
	if err := f.apply(&o); err == nil {
		t.Error("--cert-ttl 10ms accepted")
	}
}
