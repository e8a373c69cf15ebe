package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// weftIn runs weft in dir with stdin, as a user in that folder would (no
// --server added), and returns its stdout, stderr and exit code.
func weftIn(t *testing.T, dir, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, weftBin, args...)
	cmd.Dir = dir
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("weft %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// refusingAddr returns a loopback address that refuses connections: a
// socket bound there and never listening, held until the test ends, so
// no other process can take the port meanwhile.
func refusingAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

// upIn runs `weft up` in dir (its state in dir/.weft) with every address
// bound by weft itself on a port the kernel picks, and returns the process
// and its API address, read from the endpoints file it writes once up.
func upIn(t *testing.T, dir string, args ...string) (*proc, string) {
	t.Helper()
	p := start(t, dir, "weft up "+strings.Join(args, " "), append([]string{"up", "--api-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0",
		"--gateway-addr", "127.0.0.1:0", "--gateway-admin-addr", "127.0.0.1:0"}, args...)...)
	var api string
	eventually(t, 20*time.Second, "weft up records its addresses", func() error {
		select {
		case <-p.done:
			return fmt.Errorf("weft up exited:\n%s", p.output())
		default:
		}
		var e struct{ API string }
		if err := readJSONFile(filepath.Join(dir, ".weft", "endpoints.json"), &e); err != nil {
			return err
		}
		resp, err := http.Get("http://" + e.API + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		api = e.API
		return nil
	})
	return p, api
}

// stopped stops p and returns everything it printed.
func stopped(p *proc) string {
	p.stop(15 * time.Second)
	return p.output()
}

func readJSONFile(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
