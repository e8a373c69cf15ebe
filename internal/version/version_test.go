package version

import (
	"runtime"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	i := Get()
	if i.Version == "" || i.Go != runtime.Version() {
		t.Errorf("Get() = %+v", i)
	}
	if s := i.String(); !strings.HasPrefix(s, i.Version+" (") || !strings.HasSuffix(s, runtime.Version()+")") {
		t.Errorf("String() = %q", s)
	}
	old := Version
	defer func() { Version = old }()
	Version = "v9.8.7"
	if got := Get().Version; got != "v9.8.7" {
		t.Errorf("with -X Version: %q", got)
	}
	if got := UserAgent(); got != "weft/v9.8.7" {
		t.Errorf("UserAgent() = %q", got)
	}
}
