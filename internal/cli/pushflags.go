package cli

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/weft-mesh/weft/controlplane"
	"github.com/weft-mesh/weft/xds/server"
)

// pushFlags tune how the control plane pushes configuration, shared by
// `weft up` and `weft controlplane`. Istio's PILOT_DEBOUNCE_AFTER and
// PILOT_DEBOUNCE_MAX environment variables are read as the defaults.
type pushFlags struct {
	debounceAfter, debounceMax time.Duration
	concurrency                int
	pprofAddr                  string
}

func (f *pushFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.DurationVar(&f.debounceAfter, "debounce-after", envDuration("PILOT_DEBOUNCE_AFTER", server.DefaultDebounceAfter),
		"push once changes have been quiet this long (Istio's PILOT_DEBOUNCE_AFTER)")
	fl.DurationVar(&f.debounceMax, "debounce-max", envDuration("PILOT_DEBOUNCE_MAX", server.DefaultDebounceMax),
		"but no later than this after the first change (Istio's PILOT_DEBOUNCE_MAX)")
	fl.IntVar(&f.concurrency, "push-concurrency", server.DefaultPushConcurrency, "proxies regenerated and sent to at once (Istio's PILOT_PUSH_THROTTLE)")
	fl.StringVar(&f.pprofAddr, "pprof-addr", "", "serve Go's /debug/pprof on this loopback address (profiling)")
	fl.MarkHidden("pprof-addr")
}

// envDuration reads a duration from the environment, else def.
func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

// apply sets o's push options and starts the profiling server if asked.
func (f *pushFlags) apply(o *controlplane.Options) error {
	if f.debounceAfter <= 0 || f.debounceMax < f.debounceAfter {
		return fmt.Errorf("--debounce-after %v, --debounce-max %v: want 0 < after <= max", f.debounceAfter, f.debounceMax)
	}
	o.DebounceAfter, o.DebounceMax, o.PushConcurrency = f.debounceAfter, f.debounceMax, f.concurrency
	if f.pprofAddr == "" {
		return nil
	}
	host, _, err := net.SplitHostPort(f.pprofAddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return errors.New("--pprof-addr: want a loopback address such as 127.0.0.1:6060")
	}
	ln, err := net.Listen("tcp", f.pprofAddr)
	if err != nil {
		return fmt.Errorf("--pprof-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	fmt.Printf("pprof: http://%s/debug/pprof/\n", ln.Addr())
	go http.Serve(ln, mux)
	return nil
}
