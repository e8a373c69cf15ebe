package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/weft-mesh/weft/internal/netnstest"
	"github.com/weft-mesh/weft/proxy/capture"
)

func runIPTables(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newIPTablesCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// The flags say what Istio's annotations say, and --dry-run shows it.
func TestIPTablesDryRun(t *testing.T) {
	out, err := runIPTables(t, "--dry-run", "-p", "15001", "-z", "15006", "-u", "1337",
		"-b", "9080,8080", "-d", "22", "-i", "10.96.0.0/12", "-x", "10.96.0.1", "-o", "5432", "-q", "443")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"table ip weft", "tcp dport 9080 jump in_redirect", "tcp dport 8080 jump in_redirect",
		"ip daddr 10.96.0.1 return", "tcp dport 5432 return", "tcp dport 443 jump redirect",
		"ip daddr 10.96.0.0/12 jump redirect", "meta skgid 1337 return", "redirect to :15001", "redirect to :15006",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "table ip6") {
		t.Errorf("ip6 table without --ipv6:\n%s", out)
	}
	out, err = runIPTables(t, "--dry-run", "--cleanup")
	if err != nil || !strings.Contains(out, "delete table ip weft") {
		t.Errorf("cleanup dry run: %v\n%s", err, out)
	}
}

func TestIPTablesFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-b", "http"}, "--inbound-ports"},
		{[]string{"-d", "99999"}, "--local-exclude-ports"},
		{[]string{"-i", "10.0.0.0/40"}, "--outbound-ip-ranges-include"},
		{[]string{"-x", "*"}, "--outbound-ip-ranges-exclude"},
		{[]string{"-o", "x"}, "--local-outbound-ports-exclude"},
		{[]string{"-q", "0"}, "--outbound-ports"},
		{[]string{"-u", "istio"}, "--proxy-uid"},
		{[]string{"-g", "0"}, "--proxy-gid"},
		{[]string{"-p", "15006"}, "inbound and outbound capture ports"},
	} {
		_, err := runIPTables(t, append([]string{"--dry-run"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one naming %s", c.args, err, c.want)
		}
	}
}

// The command writes into the namespace --netns names, again and again
// without piling up, and --cleanup removes it.
func TestIPTablesApply(t *testing.T) {
	ns := netnstest.New(t, netnstest.Prefix()+"-ipt")
	path := "/var/run/netns/" + ns.Name
	for range 2 {
		if out, err := runIPTables(t, "--netns", path, "-b", "9080"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	got, err := capture.Installed(capture.IPv4, ns.Fd())
	if err != nil {
		t.Fatal(err)
	}
	if got[capture.ChainInbound] != 1 || got[capture.ChainRedirect] != 1 || len(got) != 6 {
		t.Errorf("installed %v, want six chains, one inbound rule", got)
	}
	if out, err := runIPTables(t, "--netns", path, "--cleanup"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got, err := capture.Installed(capture.IPv4, ns.Fd()); err != nil || got != nil {
		t.Errorf("after --cleanup: %v %v", got, err)
	}
}
