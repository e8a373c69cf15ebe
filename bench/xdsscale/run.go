package xdsscale

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/config"
)

// Options configure one harness run.
type Options struct {
	Weft     string // the weft binary to run as the control plane
	Out      string // directory for the report, logs and the control plane's state
	Mesh     Mesh
	Proxies  int
	Changes  int  // weight changes and endpoint changes, each
	Connects int  // new proxies connected one at a time
	Delta    bool // the driver speaks incremental xDS
	Timeout  time.Duration
	MaxRSS   int64 // the control plane is stopped (and the run reported as aborted) above this
	// MaxDriverRSS stops the run when the driver process grows above it.
	MaxDriverRSS int64
	Label        string
	Log          *log.Logger
	// Profile, when set, serves the control plane's pprof and saves its
	// heap with every proxy connected and CPU profiles of the first weight
	// and endpoint changes into Out.
	Profile bool
}

// Stats summarises latencies in seconds.
type Stats struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func summarize(ns []int64) Stats {
	if len(ns) == 0 {
		return Stats{}
	}
	sorted := append([]int64(nil), ns...)
	sortInt64(sorted)
	at := func(q float64) float64 {
		i := int(q*float64(len(sorted))+0.5) - 1
		i = min(max(i, 0), len(sorted)-1)
		return time.Duration(sorted[i]).Seconds()
	}
	return Stats{N: len(sorted), P50: at(0.50), P99: at(0.99), Max: time.Duration(sorted[len(sorted)-1]).Seconds()}
}

// Change is one measured change.
type Change struct {
	What     string  `json:"what"`
	Streams  int     `json:"streams"`  // streams expected to take it
	Missing  int     `json:"missing"`  // of those, not ACKed within the timeout
	Last     float64 `json:"last"`     // seconds from the change to the last ACK
	Median   float64 `json:"median"`   // seconds to the median stream's ACK
	CPU      float64 `json:"cpu"`      // control plane CPU seconds from the change until settled
	Bytes    int64   `json:"bytes"`    // bytes received by all streams meanwhile
	APICall  float64 `json:"api_call"` // seconds the API call itself took
	TimedOut bool    `json:"timed_out,omitempty"`
}

// Report is everything one run measured.
type Report struct {
	Label       string    `json:"label"`
	Date        time.Time `json:"date"`
	Mesh        Mesh      `json:"mesh"`
	Proxies     int       `json:"proxies"`
	Delta       bool      `json:"delta"`
	Objects     int       `json:"objects"`
	LoadStart   string    `json:"load_start"`
	LoadEnd     string    `json:"load_end"`
	ApplySecs   float64   `json:"apply_seconds"`
	ConnectAll  float64   `json:"connect_all_seconds"` // N streams from dial to synced
	Connected   int       `json:"connected"`
	ConnectCPU  float64   `json:"connect_cpu_seconds"`
	ConnectMB   float64   `json:"connect_mb"`
	RSSIdle     int64     `json:"rss_before_proxies"`
	RSS         int64     `json:"rss_connected"`
	RSSSettled  int64     `json:"rss_connected_settled"` // rssSettle later
	RSSPeak     int64     `json:"rss_peak"`
	Weight      []Change  `json:"weight_changes"`
	Endpoint    []Change  `json:"endpoint_changes"`
	NewProxy    Stats     `json:"new_proxy"`
	NewMissing  int       `json:"new_proxy_missing"`
	Aborted     string    `json:"aborted,omitempty"`
	Failed      int       `json:"failed_streams"`
	DriverError string    `json:"driver_error,omitempty"`
}

// Run performs one harness run against a local control plane: it applies
// the mesh through the API, connects the driver's streams, makes the
// changes and writes report.json and report.md into o.Out.
func Run(ctx context.Context, o Options) (*Report, error) {
	r := &Report{Label: o.Label, Date: time.Now().UTC(), Mesh: o.Mesh, Proxies: o.Proxies, Delta: o.Delta, LoadStart: loadAverage()}
	state := filepath.Join(o.Out, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		return nil, err
	}
	cp, err := startControlPlane(ctx, o.Weft, state, filepath.Join(o.Out, "controlplane.log"), o.Profile)
	if err != nil {
		return nil, err
	}
	defer cp.stop()
	var aborted atomic.Value
	abort := func(msg string) { o.Log.Print(msg); aborted.Store(msg) }
	go cp.guard(ctx, "control plane", o.MaxRSS, abort)

	ep, err := waitEndpoints(ctx, state)
	if err != nil {
		return nil, err
	}
	token, err := client.ReadToken(state)
	if err != nil {
		return nil, err
	}
	api := client.New("http://"+ep.API, client.WithToken(token))
	api.HTTP.Timeout = 5 * time.Minute
	docs := o.Mesh.Documents()
	r.Objects = len(docs)
	t0 := time.Now()
	if err := applyBatches(ctx, api, docs, 400); err != nil {
		return nil, err
	}
	r.ApplySecs = time.Since(t0).Seconds()
	o.Log.Printf("applied %d objects in %.1fs", len(docs), r.ApplySecs)
	time.Sleep(time.Second) // let the last rebuild land before the baseline
	r.RSSIdle, _, _ = memory(cp.pid())

	join, err := os.ReadFile(filepath.Join(state, "join-token"))
	if err != nil {
		return nil, fmt.Errorf("join token: %w", err)
	}
	args := driverArgs(ep.XDS, o.Mesh, o.Proxies, o.Delta, false)
	drv, err := startDriver(ctx, args, strings.TrimSpace(string(join)), filepath.Join(o.Out, "driver.log"))
	if err != nil {
		return nil, err
	}
	defer drv.quit()
	go (&process{cmd: drv.cmd, done: drv.done}).guard(ctx, "driver", o.MaxDriverRSS, abort)

	cpu0, _ := cpuTime(cp.pid())
	first, err := drv.read(ctx)
	if err != nil {
		return r, fmt.Errorf("driver: %w", err)
	}
	r.Connected, r.Failed, r.DriverError = first.Ready, first.Failed, first.Error
	r.LoadEnd = loadAverage()
	if len(first.Latencies) > 0 {
		r.ConnectAll = time.Duration(first.Latencies[0]).Seconds()
	}
	r.ConnectMB = float64(first.Bytes) / 1e6
	if cpu1, err := cpuTime(cp.pid()); err == nil {
		r.ConnectCPU = (cpu1 - cpu0).Seconds()
	}
	r.RSS, _, _ = memory(cp.pid())
	o.Log.Printf("%d/%d proxies synced in %.1fs; control plane RSS %.0f MB", r.Connected, o.Proxies, r.ConnectAll, float64(r.RSS)/1e6)
	// What the connection storm allocated is garbage now; RSS a while
	// later is what the connected proxies cost.
	time.Sleep(rssSettle)
	r.RSSSettled, _, _ = memory(cp.pid())
	o.Log.Printf("control plane RSS %.0f MB after %v", float64(r.RSSSettled)/1e6, rssSettle)
	var prof *profiler
	if o.Profile {
		if prof, err = newProfiler(cp, o.Out); err != nil {
			return r, err
		}
		prof.save(ctx, "heap", "heap-connected.pb.gz")
	}
	if msg, ok := aborted.Load().(string); ok {
		r.Aborted = msg
		return r, nil
	}
	if r.Connected == 0 {
		return r, fmt.Errorf("no proxy synced: %s", first.Error)
	}

	m := &measurer{ctx: ctx, drv: drv, cp: cp, timeout: o.Timeout, log: o.Log, prof: prof}
	drv.stall = func() { // a command that never returns: leave stacks to look at
		if prof != nil {
			prof.save(context.Background(), "goroutine?debug=2", "controlplane-goroutines.txt")
		}
		drv.cmd.Process.Signal(syscall.SIGQUIT) // its stacks go to driver.log
	}
	for c := 0; c < o.Changes && ctx.Err() == nil; c++ {
		i := (c * 37) % o.Mesh.Services
		ch, err := m.change(fmt.Sprintf("weight %s 90/10 -> 80/20", o.Mesh.Name(i)), func() error {
			_, err := api.Apply(ctx, []client.Source{{Name: "vs.yaml", Content: o.Mesh.VirtualService(i, 80)}}, client.ApplyOptions{})
			return err
		}, Command{Cmd: "wait", Type: "RDS", Cluster: clusterName(80, "v1", o.Mesh.Host(i))})
		if err != nil {
			return r, err
		}
		r.Weight = append(r.Weight, ch)
	}
	for c := 0; c < o.Changes && ctx.Err() == nil; c++ {
		i := (c/2*53 + 11) % o.Mesh.Services
		we := o.Mesh.WorkloadEntry(i, 200)
		what, do := "add endpoint to "+o.Mesh.Name(i), func() error {
			_, err := api.Apply(ctx, []client.Source{{Name: "we.yaml", Content: we}}, client.ApplyOptions{})
			return err
		}
		if c%2 == 1 {
			what, do = "remove endpoint from "+o.Mesh.Name(i), func() error {
				_, err := api.Delete(ctx, string(config.KindWorkloadEntry), o.Mesh.Namespace(i), fmt.Sprintf("%s-200", o.Mesh.Name(i)))
				return err
			}
		}
		ch, err := m.change(what, do, Command{Cmd: "wait", Type: "EDS", Cluster: clusterName(80, "", o.Mesh.Host(i))})
		if err != nil {
			return r, err
		}
		r.Endpoint = append(r.Endpoint, ch)
	}
	if o.Connects > 0 && ctx.Err() == nil {
		rep, err := drv.do(ctx, Command{Cmd: "connect", Count: o.Connects, Timeout: o.Timeout})
		if err != nil {
			return r, err
		}
		r.NewProxy, r.NewMissing = summarize(rep.Latencies), rep.Missing
	}
	_, r.RSSPeak, _ = memory(cp.pid())
	r.LoadEnd = loadAverage()
	if msg, ok := aborted.Load().(string); ok {
		r.Aborted = msg
	}
	return r, ctx.Err()
}

// clusterName is Istio's outbound cluster name (as xds/translate makes it).
func clusterName(port int, subset, host string) string {
	return fmt.Sprintf("outbound|%d|%s|%s", port, subset, host)
}

func sortInt64(v []int64) {
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && v[j] < v[j-1]; j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
}

// measurer makes one change at a time and waits for the streams to take it.
type measurer struct {
	ctx     context.Context
	drv     *driverProc
	cp      *process
	timeout time.Duration
	log     *log.Logger
	prof    *profiler
	changes int
}

// rssSettle is how long after every proxy synced the control plane's RSS
// is read again.
const rssSettle = 15 * time.Second

// settle is how long after the last ACK the control plane's CPU is still
// counted for a change: ACK processing and bookkeeping after the push.
const settle = 300 * time.Millisecond

func (m *measurer) change(what string, do func() error, wait Command) (Change, error) {
	if _, err := m.drv.do(m.ctx, Command{Cmd: "reset"}); err != nil {
		return Change{}, err
	}
	before, err := m.drv.do(m.ctx, Command{Cmd: "bytes"})
	if err != nil {
		return Change{}, err
	}
	var profiled chan struct{}
	if m.prof != nil && (m.changes == 0 || wait.Type == "EDS" && m.prof.eds == 0) {
		profiled = make(chan struct{})
		name := fmt.Sprintf("cpu-%s-change.pb.gz", strings.ToLower(wait.Type))
		if wait.Type == "EDS" {
			m.prof.eds++
		}
		go func() { defer close(profiled); m.prof.save(m.ctx, "profile?seconds=8", name) }()
		time.Sleep(100 * time.Millisecond) // the profile starts before the change
	}
	m.changes++
	cpu0, _ := cpuTime(m.cp.pid())
	t0 := time.Now()
	if err := do(); err != nil {
		return Change{}, fmt.Errorf("%s: %w", what, err)
	}
	api := time.Since(t0)
	wait.Since, wait.Timeout = t0.UnixNano(), m.timeout
	rep, err := m.drv.do(m.ctx, wait)
	if err != nil {
		return Change{}, err
	}
	time.Sleep(settle)
	cpu1, err := cpuTime(m.cp.pid())
	if err != nil { // the control plane is gone: no CPU figure to give
		return Change{}, fmt.Errorf("%s: control plane: %w", what, err)
	}
	after, err := m.drv.do(m.ctx, Command{Cmd: "bytes"})
	if err != nil {
		return Change{}, err
	}
	s := summarize(rep.Latencies)
	c := Change{What: what, Streams: rep.Expected, Missing: rep.Missing, Last: s.Max, Median: s.P50,
		CPU: (cpu1 - cpu0).Seconds(), Bytes: after.Bytes - before.Bytes, APICall: api.Seconds(), TimedOut: rep.Missing > 0}
	m.log.Printf("%s: %d streams, last ACK %.3fs (median %.3fs), CPU %.2fs, %.1f MB, API %.3fs, missing %d",
		what, c.Streams, c.Last, c.Median, c.CPU, float64(c.Bytes)/1e6, c.APICall, c.Missing)
	if profiled != nil {
		<-profiled
	}
	time.Sleep(700 * time.Millisecond) // quiet between changes: no debounce window carries over
	return c, nil
}

// profiler fetches the control plane's pprof profiles into a directory.
type profiler struct {
	base, dir string
	eds       int
}

func newProfiler(cp *process, dir string) (*profiler, error) {
	b, err := os.ReadFile(cp.logPath)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if u, ok := strings.CutPrefix(line, "pprof: "); ok {
			return &profiler{base: strings.TrimSpace(u), dir: dir}, nil
		}
	}
	return nil, errors.New("control plane did not report its pprof address")
}

func (p *profiler) save(ctx context.Context, what, file string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+what, nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(filepath.Join(p.dir, file))
	if err != nil {
		return
	}
	defer f.Close()
	io.Copy(f, resp.Body)
}

func applyBatches(ctx context.Context, api *client.Client, docs []string, per int) error {
	for i := 0; i < len(docs); i += per {
		j := min(i+per, len(docs))
		src := client.Source{Name: fmt.Sprintf("mesh-%d.yaml", i/per), Content: strings.Join(docs[i:j], "---\n")}
		if _, err := api.Apply(ctx, []client.Source{src}, client.ApplyOptions{}); err != nil {
			return fmt.Errorf("apply objects %d-%d: %w", i, j, err)
		}
	}
	return nil
}

// process is a child process with its log file.
type process struct {
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// guard stops the process when its RSS exceeds max, so a control plane
// that cannot cope does not take the shared machine down with it.
func (p *process) guard(ctx context.Context, what string, max int64, abort func(string)) {
	if max <= 0 {
		return
	}
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.done:
			return
		case <-t.C:
			if rss, _, err := memory(p.pid()); err == nil && rss > max {
				abort(fmt.Sprintf("%s RSS %.1f GB exceeded the %.1f GB guard", what, float64(rss)/1e9, float64(max)/1e9))
				p.cmd.Process.Kill()
				return
			}
		}
	}
}

func startControlPlane(ctx context.Context, weft, state, logPath string, profile bool) (*process, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	args := []string{"controlplane", "--state-dir", state, "--api-addr", "127.0.0.1:0", "--xds-addr", "127.0.0.1:0", "--log-level", "warn"}
	if profile {
		args = append(args, "--pprof-addr", "127.0.0.1:0")
	}
	// The simulated sidecars of every identity join with the mesh-wide
	// token (a binary from before identity-scoped tokens always writes it).
	if help, _ := exec.CommandContext(ctx, weft, "controlplane", "--help").CombinedOutput(); strings.Contains(string(help), "--join-token-scope") {
		args = append(args, "--join-token-scope", "mesh")
	}
	cmd := exec.Command(weft, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", weft, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), logPath: logPath}
	go func() { cmd.Wait(); lf.Close(); close(p.done) }()
	return p, nil
}

func waitEndpoints(ctx context.Context, state string) (client.Endpoints, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ep, err := client.ReadEndpoints(state)
		if err == nil && ep.API != "" && ep.XDS != "" {
			return ep, nil
		}
		if time.Now().After(deadline) {
			return ep, fmt.Errorf("control plane did not write %s within 30s: %v", client.EndpointsFile, err)
		}
		select {
		case <-ctx.Done():
			return ep, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func driverArgs(xds string, m Mesh, proxies int, delta, captured bool) []string {
	return []string{"drive", "-xds", xds, "-services", strconv.Itoa(m.Services), "-endpoints", strconv.Itoa(m.Endpoints),
		"-per-namespace", strconv.Itoa(m.PerNamespace), "-sidecar", m.Sidecar, "-proxies", strconv.Itoa(proxies),
		"-delta=" + strconv.FormatBool(delta), "-captured=" + strconv.FormatBool(captured)}
}

// driverProc is the driver subprocess and its command pipe.
type driverProc struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	done chan struct{}
	// stall, when set, is called when a command takes a minute longer
	// than its own timeout.
	stall func()
}

// startDriver runs this program's "drive" mode as a separate process, so
// the streams come over the network stack from another process, as real
// proxies' do. The token travels in the environment, not the arguments.
func startDriver(ctx context.Context, args []string, token, logPath string) (*driverProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), "XDS_SCALE_TOKEN="+token)
	cmd.Stderr = lf
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start driver: %w", err)
	}
	d := &driverProc{cmd: cmd, in: in, out: bufio.NewScanner(out), done: make(chan struct{})}
	d.out.Buffer(make([]byte, 1<<20), 64<<20)
	go func() { cmd.Wait(); lf.Close(); close(d.done) }()
	return d, nil
}

func (d *driverProc) read(ctx context.Context) (Reply, error) {
	got := make(chan error, 1)
	var r Reply
	go func() {
		if !d.out.Scan() {
			err := d.out.Err()
			if err == nil {
				err = errors.New("driver exited")
			}
			got <- err
			return
		}
		got <- json.Unmarshal(d.out.Bytes(), &r)
	}()
	select {
	case err := <-got:
		return r, err
	case <-ctx.Done():
		d.cmd.Process.Kill()
		return r, ctx.Err()
	}
}

func (d *driverProc) do(ctx context.Context, c Command) (Reply, error) {
	b, _ := json.Marshal(c)
	if _, err := d.in.Write(append(b, '\n')); err != nil {
		return Reply{}, fmt.Errorf("driver: %w", err)
	}
	if d.stall != nil {
		t := time.AfterFunc(c.Timeout+time.Minute, d.stall)
		defer t.Stop()
	}
	r, err := d.read(ctx)
	if err == nil && r.Error != "" {
		err = fmt.Errorf("driver: %s", r.Error)
	}
	return r, err
}

func (d *driverProc) quit() {
	b, _ := json.Marshal(Command{Cmd: "quit"})
	d.in.Write(append(b, '\n'))
	d.in.Close()
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}
