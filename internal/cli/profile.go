//go:build weftprofile

package cli

import (
	"fmt"
	"os"
	"runtime/pprof"
)

func init() {
	startCPUProfile = func(path string) (func(), error) {
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", cpuProfileEnv, err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("$%s: %w", cpuProfileEnv, err)
		}
		return func() {
			pprof.StopCPUProfile()
			f.Close()
		}, nil
	}
}
