package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Item 14: every command that needs the control plane, finding none, says
// where it looked (the state dir's endpoints file, or --server) and asks
// whether `weft up` runs.
func TestUnreachableControlPlaneMessages(t *testing.T) {
	dir := t.TempDir()
	nobody := refusingAddr(t)
	// A state dir whose endpoints file names an address nothing answers on,
	// as one left by a `weft up` that was killed.
	writeFile(t, dir, "vs.yaml", offlineVS)
	if err := os.MkdirAll(filepath.Join(dir, ".weft"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, ".weft/endpoints.json", `{"api": "`+nobody+`", "xds": "`+nobody+`"}`)
	fromState := "no control plane answers at http://" + nobody + " (from .weft/endpoints.json): is `weft up` running?"
	for _, args := range [][]string{
		{"get", "vs"},
		{"get", "all", "-A"},
		{"describe", "vs", "shop"},
		{"delete", "vs", "shop"},
		{"apply", "-f", "vs.yaml"},
		{"analyze"},
		{"proxy-config", "routes", "istio-ingressgateway"},
		{"shift", "shop", "--from", "v1", "--to", "v2"},
	} {
		out, errOut, code := weftIn(t, dir, "", args...)
		if code != 1 || !strings.Contains(errOut, fromState) {
			t.Errorf("weft %s: want exit 1 and\n  %s\ngot %d:\n%s%s", strings.Join(args, " "), fromState, code, out, errOut)
		}
	}
	out, errOut, code := weftIn(t, dir, "", "get", "vs", "--server", "http://"+nobody)
	if want := "no control plane answers at http://" + nobody + " (from --server): is `weft up` running?"; code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("get vs --server: want %q, got %d\n%s%s", want, code, out, errOut)
	}
	// Without a join token weft run mints one through the API first: that
	// is where it finds no control plane.
	out, errOut, code = weftIn(t, dir, "", "run", "--service", "idle", "--port", "8080", "--ready-timeout", "2s", "--", "sleep", "60")
	if want := "no control plane answers at http://" + nobody + " (from .weft/endpoints.json): is `weft up` running?"; code != 1 ||
		!strings.Contains(errOut, want) || !strings.Contains(errOut, "mint a join token") {
		t.Errorf("run with no control plane: want %q, got %d\n%s%s", want, code, out, errOut)
	}
	// With one, it waits for the sidecar's configuration, and says where.
	tokenFile := filepath.Join(dir, "idle.token")
	if err := os.WriteFile(tokenFile, []byte("0123.not-checked-without-a-control-plane\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = weftIn(t, dir, "", "run", "--service", "idle", "--port", "8080", "--ready-timeout", "2s", "--join-token-file", tokenFile, "--", "sleep", "60")
	if want := "gave up after 2s waiting for the sidecar's configuration from the control plane at " + nobody + " (from .weft/endpoints.json): is `weft up` running?"; code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("run with a token and no control plane: want %q, got %d\n%s%s", want, code, out, errOut)
	}
	if out, _, code := weftIn(t, dir, "", "version"); code != 0 || !strings.Contains(out, "control plane: none answering (no control plane answers at") {
		t.Errorf("version with no control plane: %d\n%s", code, out)
	}
}

// `weft run` without a command shows the `-- CMD` usage; an app that never
// listens on $PORT is reported, and given up on after --ready-timeout.
func TestRunMessages(t *testing.T) {
	m := upMesh(t, "")
	_, errOut, code := weftIn(t, m.dir, "", "run", "--service", "idle", "--port", "8080")
	if code != 1 || !strings.Contains(errOut, "weft run needs the command to run, after --") || !strings.Contains(errOut, "-- CMD [ARGS...]") {
		t.Errorf("run without a command: %d\n%s", code, errOut)
	}
	out, errOut, code := weftIn(t, m.dir, "", "run", "--service", "idle", "--port", "8080", "--ready-timeout", "3s", "--", "sleep", "60")
	want := regexp.MustCompile(`gave up after 3s waiting for sleep to listen on 127\.0\.0\.1:(\d+): the app must listen on 127\.0\.0\.1:\$PORT \(PORT=(\d+)\)`)
	if mm := want.FindStringSubmatch(errOut); code != 1 || mm == nil || mm[1] != mm[2] {
		t.Errorf("run of an app that never listens: want exit 1 and %q, got %d\n%s%s", want, code, out, errOut)
	}
	if got, _ := m.weft("", "get", "we"); strings.Contains(got, "idle") {
		t.Errorf("an instance that never listened was registered:\n%s", got)
	}
}

// `weft up` prints a short summary; its start-up log is for --log-level
// or --log-file.
func TestUpSummaryAndLog(t *testing.T) {
	dir := t.TempDir()
	up, _ := upIn(t, dir, "--demo", "coolapp", "--log-file", "up.log")
	eventually(t, 40*time.Second, "up says the demo is up", func() error {
		if !strings.Contains(up.output(), "demo coolapp:") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	// The log file gets the start-up lines of up and of its demo workloads.
	eventually(t, 20*time.Second, "the log file has up's and the workloads' lines", func() error {
		log, err := os.ReadFile(filepath.Join(dir, "up.log"))
		if err != nil {
			return err
		}
		for _, want := range []string{`msg="control plane up"`, `msg="workload registered"`} {
			if !strings.Contains(string(log), want) {
				return fmt.Errorf("--log-file lacks %s:\n%s", want, log)
			}
		}
		return nil
	})
	out := stopped(up)
	for _, want := range []string{"weft is up\n", "  gateway   http://", "  api       http://", "  console   http://", "  state     .weft: new",
		"  log       warnings only here (--log-level info or debug shows more); level info in up.log"} {
		if !strings.Contains(out, want) {
			t.Errorf("up's summary lacks %q:\n%s", want, out)
		}
	}
	// The line says how many workloads are up. (A workload that fails to
	// start is not this test's business: the line then says "K of N".)
	if !regexp.MustCompile(`demo coolapp: (\d+ workloads up|\d+ of \d+ workloads up after 30s \(see the log: --log-level info\)) in namespace coolapp; try  curl http://127\.0\.0\.1:\d+/`).MatchString(out) {
		t.Errorf("up's summary does not say the demo is up:\n%s", out)
	}
	if strings.Contains(out, "level=INFO") {
		t.Errorf("INFO lines on the terminal without --log-level:\n%s", out)
	}

	up, _ = upIn(t, t.TempDir(), "--log-level", "info")
	if out := stopped(up); !strings.Contains(out, `level=INFO msg="control plane up"`) {
		t.Errorf("--log-level info: no INFO lines on the terminal:\n%s", out)
	}
}
