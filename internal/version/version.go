// Package version says which weft this is: the module version and VCS
// revision Go stamps into the binary, or what the build set with
// -ldflags "-X github.com/weft-mesh/weft/internal/version.Version=v1.2.3".
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set at link time for releases; empty means "from the build
// info" (the module version, "(devel)" for a source build).
var Version string

// Info describes the running binary.
type Info struct {
	Version  string `json:"version"`            // v1.2.3, or (devel)
	Revision string `json:"revision,omitempty"` // VCS commit, with "-dirty" for local changes
	Time     string `json:"time,omitempty"`     // commit time, RFC 3339
	Go       string `json:"go"`                 // Go version it was built with
}

// Get returns the running binary's Info.
func Get() Info {
	i := Info{Version: Version, Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if i.Version == "" {
			i.Version = "(unknown)"
		}
		return i
	}
	if i.Version == "" {
		i.Version = bi.Main.Version
	}
	if i.Version == "" {
		i.Version = "(devel)"
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.time":
			i.Time = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if len(i.Revision) > 12 {
		i.Revision = i.Revision[:12]
	}
	if dirty && i.Revision != "" {
		i.Revision += "-dirty"
	}
	return i
}

// String renders i on one line: "v1.2.3 (commit 0123abcd4567, 2026-01-02T03:04:05Z, go1.26.8)".
func (i Info) String() string {
	s := i.Version + " ("
	if i.Revision != "" {
		s += "commit " + i.Revision + ", "
	}
	if i.Time != "" {
		s += i.Time + ", "
	}
	return s + i.Go + ")"
}

// UserAgent is the User-Agent weft's HTTP clients send.
func UserAgent() string { return fmt.Sprintf("weft/%s", Get().Version) }
