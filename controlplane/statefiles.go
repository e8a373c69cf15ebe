package controlplane

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/weft-mesh/weft/ca"
)

// secretStateFiles are the files in the state directory that hold secrets:
// the CA's private key, the tokens, and the store of scoped join tokens.
// Anyone who can read one of them can impersonate a workload, sign
// certificates, or write configuration.
var secretStateFiles = []string{
	filepath.Join(CADir, ca.RootKeyFile),
	JoinTokenFile,
	APITokenFile,
	ConsoleTokenFile,
	JoinTokensFile,
}

// Secret files of the state directory besides the tokens in security.go.
const (
	// ConsoleTokenFile holds the console's login token (written by the
	// CLI next to the others).
	ConsoleTokenFile = "console-token"
	// JoinTokensFile holds the identity-scoped join tokens, hashed.
	JoinTokensFile = "join-tokens.json"
)

// checkStateFiles refuses a state directory others could tamper with, as
// ssh refuses a private key others can read: the directory (and its ca/)
// must not be writable by group or others, and no secret file may be
// readable or writable by them. Missing files are fine: they are created
// with private modes. The error names the path and the chmod that fixes
// it; nothing is changed behind the user's back, since loose modes may
// mean the secrets have already leaked and should be replaced.
func checkStateFiles(stateDir string) error {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	var problems []error
	for _, dir := range []string{abs, filepath.Join(abs, CADir)} {
		fi, err := os.Stat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
		if perm := fi.Mode().Perm(); perm&0o022 != 0 {
			problems = append(problems, fmt.Errorf("%s is writable by %s (mode %04o): others could replace the mesh's CA or tokens; fix with: chmod go-w %s",
				dir, who(perm, 0o020, 0o002), perm, dir))
		}
	}
	for _, name := range secretStateFiles {
		path := filepath.Join(abs, name)
		fi, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("state file: %w", err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			problems = append(problems, fmt.Errorf("%s is accessible by %s (mode %04o): it holds a secret, which must be private to its owner; fix with: chmod 600 %s",
				path, who(perm, 0o070, 0o007), perm, path))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("refusing to start with unprotected state files:\n%w", errors.Join(problems...))
	}
	return nil
}

// who names the classes of users perm grants anything of groupBits or
// otherBits to.
func who(perm, groupBits, otherBits fs.FileMode) string {
	switch g, o := perm&groupBits != 0, perm&otherBits != 0; {
	case g && o:
		return "group and others"
	case g:
		return "group"
	default:
		return "others"
	}
}
