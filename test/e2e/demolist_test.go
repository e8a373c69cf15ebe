package e2e

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	demoFlagHelp = regexp.MustCompile(`--demo string\s+start a demo: ([a-z0-9, -]+)`)
	demoTryLine  = regexp.MustCompile(`demo ([a-z0-9-]+): [^\n]*try  curl http://([^/\s]+)(/\S*)`)
)

// TestEveryListedDemoServes starts each demo `weft up --help` lists and
// fetches the path `weft up` tells the user to try, through the gateway:
// a demo that is listed must come up and serve.
func TestEveryListedDemoServes(t *testing.T) {
	help, err := exec.Command(weftBin, "up", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("weft up --help: %v\n%s", err, help)
	}
	mm := demoFlagHelp.FindStringSubmatch(string(help))
	if mm == nil {
		t.Fatalf("weft up --help lists no demos:\n%s", help)
	}
	names := strings.Split(mm[1], ", ")
	if len(names) < 4 {
		t.Errorf("weft up --help lists %v; bookinfo, coolapp, echo and hello expected", names)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			m := upMesh(t, name)
			var addr, path string
			eventually(t, 20*time.Second, "weft up suggests a path to try", func() error {
				out := m.up.output()
				if strings.Contains(out, "error:") {
					t.Fatalf("weft up --demo %s failed:\n%s", name, out)
				}
				tm := demoTryLine.FindStringSubmatch(out)
				if tm == nil || tm[1] != name {
					return fmt.Errorf("no try line yet")
				}
				addr, path = tm[2], tm[3]
				return nil
			})
			if addr != m.gateway {
				t.Errorf("weft up suggests %s, but the gateway is %s", addr, m.gateway)
			}
			eventually(t, 60*time.Second, "demo "+name+" answers "+path+" through the gateway", func() error {
				code, body, err := get(m.gateway, "", path, nil)
				if err != nil {
					return err
				}
				if code != 200 || body == "" {
					return fmt.Errorf("%d %.200q", code, body)
				}
				return nil
			})
		})
	}
}
