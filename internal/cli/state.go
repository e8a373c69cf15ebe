package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/store/bolt"
)

// storeFile is the configuration store's file in the state directory.
const storeFile = "store.db"

func newResetCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "reset [--all]",
		Short: "Start clean: remove the stored configuration (--all: the whole state dir)",
		Long: `Reset removes the configuration weft keeps in STATE_DIR/store.db across runs
and demos, so the next ` + "`weft up`" + ` starts with none (as ` + "`weft up --fresh`" + ` does).
The mesh's identity stays: its CA (STATE_DIR/ca), the join and API tokens,
and the CLI context, so proxies and scripts holding them keep working.
--all removes the whole state dir instead: a new CA and new tokens next time.

Reset refuses while a control plane runs on the state dir (stop ` + "`weft up`" + `
first): it never stops one itself, and never removes a store in use.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			msg, err := resetState(g.stateDir, all)
			if err != nil {
				return err
			}
			fmt.Println(msg)
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "remove the whole state dir: configuration, CA, tokens, context")
	return cmd
}

// resetState removes the configuration store in stateDir (with all, the
// whole dir) and says what it did; it refuses while a process (a
// control plane) has the store open.
func resetState(stateDir string, all bool) (string, error) {
	if _, err := os.Stat(stateDir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Sprintf("nothing to reset: no state dir %s", stateDir), nil
	}
	var also func() error
	if all {
		also = func() error { return os.RemoveAll(stateDir) }
	}
	removed, err := bolt.Remove(filepath.Join(stateDir, storeFile), also)
	if errors.Is(err, bolt.ErrInUse) {
		return "", fmt.Errorf("state dir %s is in use: a control plane runs on it (stop `weft up` first; reset stops nothing itself)", stateDir)
	}
	if err != nil {
		return "", err
	}
	switch {
	case all:
		return fmt.Sprintf("removed state dir %s: the next `weft up` starts with no configuration, a new CA and new tokens", stateDir), nil
	case removed:
		return fmt.Sprintf("removed the configuration in %s (kept: CA, tokens, context): the next `weft up` starts with none", filepath.Join(stateDir, storeFile)), nil
	}
	return fmt.Sprintf("nothing to reset: no configuration in %s", stateDir), nil
}

// describeState says what a control plane started on: a new state, or
// the one it resumed and what that holds (objects per kind, namespaces).
func describeState(stateDir string, existed, fresh bool, snap *model.Snapshot) string {
	var kinds []string
	namespaces := map[string]bool{}
	total := 0
	for _, k := range config.Kinds {
		objs := snap.Objects(k.Kind)
		if len(objs) == 0 {
			continue
		}
		total += len(objs)
		name := k.Plural
		if len(objs) == 1 {
			name = k.Singular()
		}
		kinds = append(kinds, fmt.Sprintf("%d %s", len(objs), name))
		for _, o := range objs {
			namespaces[o.Meta.Namespace] = true
		}
	}
	switch {
	case fresh:
		return fmt.Sprintf("%s: fresh start, previous configuration removed", stateDir)
	case !existed:
		return fmt.Sprintf("%s: new, no configuration yet", stateDir)
	case total == 0:
		return fmt.Sprintf("%s: resumed, no configuration", stateDir)
	}
	ns := make([]string, 0, len(namespaces))
	for n := range namespaces {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	where := "namespace " + ns[0]
	if len(ns) > 1 {
		where = "namespaces " + strings.Join(ns, ", ")
	}
	return fmt.Sprintf("%s: resumed %s (%s) in %s; `weft up --fresh` or `weft reset` starts clean",
		stateDir, countOf(total, "object", "objects"), strings.Join(kinds, ", "), where)
}
