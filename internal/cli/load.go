package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weft-mesh/weft/loadgen"
)

type loadOptions struct {
	url                string
	qps                float64
	duration, timeout  time.Duration
	concurrency        int
	headers            []string
	quiet, failOnError bool
	// dial, when set, opens the connections instead of the network (tests
	// run load against an in-memory server on a fake clock).
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

func newLoadCmd(g *globals) *cobra.Command {
	o := loadOptions{}
	cmd := &cobra.Command{
		Use:   "load URL [--qps N] [--duration D] [--concurrency C] [-H 'k: v']",
		Short: "Send paced GET requests to URL and summarize the answers",
		Long: `Load sends GET requests to URL at --qps requests per second for --duration
(at most qps x duration requests), with up to --concurrency in flight. It
prints one line per answer as it comes (the body on one line, prefixed by the
status when it is not 2xx), unless --quiet, and at the end a summary: the
count per status code and error, and latency percentiles. A request failed
when it got no answer or a status of 400 or more; --fail-on-error makes
load exit 1 if any did.`,
		Example: `  weft load http://127.0.0.1:8080/hello-service --qps 10 --duration 120s
  weft load http://127.0.0.1:8080/productpage -H 'Cookie: session=jason' --qps 2 --duration 30s --quiet`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.url = args[0]
			return runLoad(cmd.Context(), o, os.Stdout)
		},
	}
	f := cmd.Flags()
	f.Float64Var(&o.qps, "qps", 10, "requests per second")
	f.DurationVar(&o.duration, "duration", 10*time.Second, "how long to send requests")
	f.IntVar(&o.concurrency, "concurrency", 8, "most requests in flight at once")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "per-request timeout")
	f.StringArrayVarP(&o.headers, "header", "H", nil, "request header 'Name: value' (repeatable)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only the summary")
	f.BoolVar(&o.failOnError, "fail-on-error", false, "exit 1 if any request failed")
	return cmd
}

func runLoad(ctx context.Context, o loadOptions, out io.Writer) error {
	hdr, host, err := loadgen.ParseHeaders(o.headers)
	if err != nil {
		return fmt.Errorf("-H: %w", err)
	}
	lo := loadgen.Options{URL: o.url, Header: hdr, Host: host, QPS: o.qps, Duration: o.duration, Concurrency: o.concurrency, Timeout: o.timeout, Dial: o.dial}
	if !o.quiet {
		lo.OnResult = func(_ loadgen.Result, line string) { fmt.Fprintln(out, line) }
	}
	if err := lo.Check(); err != nil {
		if strings.Contains(err.Error(), "must be positive") {
			return fmt.Errorf("--qps, --duration and --concurrency must be positive")
		}
		return err
	}
	s, err := loadgen.Run(ctx, lo)
	if err != nil {
		return err
	}
	if s.Interrupted {
		fmt.Fprintln(out, "(interrupted)")
	}
	s.Print(out, lo.URL)
	if o.failOnError && s.Failed > 0 {
		fmt.Fprintf(os.Stderr, "%d of %d requests failed\n", s.Failed, s.Total)
		return exitError{code: 1}
	}
	return nil
}
