package xdsscale

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"

	"github.com/weft-mesh/weft/xds/node"
)

// Type URLs, as a weft proxy subscribes to them.
const (
	typeSecret   = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
	typeCluster  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeEndpoint = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	typeListener = "type.googleapis.com/envoy.config.listener.v3.Listener"
	typeRoute    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
)

var typeOrder = []string{typeSecret, typeCluster, typeEndpoint, typeListener, typeRoute}

// shortTypes maps the names the orchestrator uses to type URLs.
var shortTypes = map[string]string{"SDS": typeSecret, "CDS": typeCluster, "EDS": typeEndpoint, "LDS": typeListener, "RDS": typeRoute}

// DriverOptions configure the load driver process.
type DriverOptions struct {
	Server   string // xDS address
	Token    string // join token (or ServiceAccount token), sent as a bearer token
	Tokens   map[string]string
	Mesh     Mesh
	Proxies  int
	Captured bool // proxies are transparent-capture sidecars (pods)
	Delta    bool // incremental xDS instead of state of the world
	// Parallel bounds how many streams connect at once during the initial
	// connection storm.
	Parallel int
}

// driver holds every simulated proxy.
type driver struct {
	opts    DriverOptions
	bytes   atomic.Int64 // payload bytes received, every stream
	ctx     context.Context
	mu      sync.Mutex
	streams []*stream
	extra   int // proxies started by "connect", numbered after Proxies
}

// stream is one simulated sidecar: one gRPC connection, one ADS stream.
type stream struct {
	d    *driver
	meta *node.Meta
	conn *grpc.ClientConn
	sotw discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	dlt  discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	done chan struct{}
	err  atomic.Value // error that ended the stream

	mu     sync.Mutex
	acks   map[string][]int64  // type -> ACK times (unix ns) since the last reset
	eds    map[string]bool     // EDS names subscribed to
	rds    map[string]bool     // RDS names subscribed to
	sorted map[string][]string // type -> the subscription as sent, sorted
	have   map[string]map[string]bool
	synced chan struct{} // closed once every type is ACKed with every subscription met
	once   sync.Once
}

type byteCounter struct{ n *atomic.Int64 }

func (byteCounter) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (byteCounter) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (byteCounter) HandleConn(context.Context, stats.ConnStats)                       {}
func (b byteCounter) HandleRPC(_ context.Context, s stats.RPCStats) {
	if p, ok := s.(*stats.InPayload); ok {
		b.n.Add(int64(p.WireLength))
	}
}

func (d *driver) start(k int) (*stream, error) {
	meta := d.opts.Mesh.Proxy(k, d.opts.Captured)
	conn, err := grpc.NewClient(d.opts.Server,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(512<<20)),
		grpc.WithStatsHandler(byteCounter{&d.bytes}),
	)
	if err != nil {
		return nil, err
	}
	s := &stream{d: d, meta: meta, conn: conn, done: make(chan struct{}), synced: make(chan struct{}),
		acks: map[string][]int64{}, eds: map[string]bool{}, rds: map[string]bool{}, have: map[string]map[string]bool{}, sorted: map[string][]string{}}
	tok := d.opts.Token
	if t, ok := d.opts.Tokens[meta.Namespace]; ok {
		tok = t
	}
	ctx := d.ctx
	if tok != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	client := discovery.NewAggregatedDiscoveryServiceClient(conn)
	if d.opts.Delta {
		s.dlt, err = client.DeltaAggregatedResources(ctx)
	} else {
		s.sotw, err = client.StreamAggregatedResources(ctx)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	go func() {
		defer close(s.done)
		var err error
		if d.opts.Delta {
			err = s.runDelta()
		} else {
			err = s.runSotW()
		}
		if err != nil && d.ctx.Err() == nil {
			s.err.Store(err)
			fmt.Fprintf(os.Stderr, "stream %s ended: %v\n", meta.Name, err)
		}
	}()
	return s, nil
}

func (s *stream) close() {
	s.conn.Close()
	<-s.done
}

// recordAck notes an ACK of type t and checks whether the proxy is synced.
func (s *stream) recordAck(t string, names []string, removed []string) {
	now := time.Now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acks[t] = append(s.acks[t], now)
	h := s.have[t]
	if h == nil {
		h = map[string]bool{}
		s.have[t] = h
	}
	for _, n := range names {
		h[n] = true
	}
	for _, n := range removed {
		delete(h, n)
	}
	if !closed(s.synced) && s.isSynced() {
		s.once.Do(func() { close(s.synced) })
	}
}

// isSynced: every type answered, every EDS/RDS subscription answered.
func (s *stream) isSynced() bool {
	for _, t := range typeOrder {
		if len(s.acks[t]) == 0 {
			return false
		}
	}
	for n := range s.eds {
		if !s.have[typeEndpoint][n] {
			return false
		}
	}
	for n := range s.rds {
		if !s.have[typeRoute][n] {
			return false
		}
	}
	return true
}

// firstAckAfter returns the first ACK of type t at or after since (unix
// ns), or 0.
func (s *stream) firstAckAfter(t string, since int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.acks[t] {
		if a >= since {
			return a
		}
	}
	return 0
}

func (s *stream) watches(cluster string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eds[cluster]
}

func (s *stream) resetAcks() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, a := range s.acks {
		if len(a) > 0 {
			s.acks[t] = a[len(a)-1:]
		}
	}
}

func setOf(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Command is one request from the orchestrator on the driver's stdin.
type Command struct {
	Cmd string `json:"cmd"` // "wait", "connect", "bytes", "reset", "quit"
	// wait: every stream watching Cluster (all streams when empty) has
	// ACKed a response of Type (SDS..RDS) at or after Since (unix ns).
	Type    string        `json:"type,omitempty"`
	Cluster string        `json:"cluster,omitempty"`
	Since   int64         `json:"since,omitempty"`
	Timeout time.Duration `json:"timeout,omitempty"`
	// connect: start Count new proxies one after another.
	Count int `json:"count,omitempty"`
}

// Reply is the driver's answer to a Command.
type Reply struct {
	Ready     int     `json:"ready,omitempty"`     // streams synced (startup)
	Expected  int     `json:"expected,omitempty"`  // streams a wait covered
	Missing   int     `json:"missing,omitempty"`   // of those, not ACKed in time
	Latencies []int64 `json:"latencies,omitempty"` // ns, sorted
	Bytes     int64   `json:"bytes"`               // payload bytes received so far, all streams
	Failed    int     `json:"failed,omitempty"`    // streams that ended
	Error     string  `json:"error,omitempty"`
}

// Drive is the driver process: it connects opts.Proxies streams, reports
// when all are synced, then answers the orchestrator's commands (JSON
// lines on in, replies on out) until "quit" or EOF.
func Drive(ctx context.Context, opts DriverOptions, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := &driver{opts: opts, ctx: ctx}
	enc := json.NewEncoder(out)
	if opts.Parallel <= 0 {
		opts.Parallel = 100
	}
	start := time.Now()
	sem := make(chan struct{}, opts.Parallel)
	var wg sync.WaitGroup
	var startErr atomic.Value
	d.streams = make([]*stream, opts.Proxies)
	for k := 0; k < opts.Proxies; k++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := d.start(k)
			if err != nil {
				startErr.Store(err)
				return
			}
			d.streams[k] = s
			select {
			case <-s.synced:
			case <-s.done:
			case <-ctx.Done():
			}
		}(k)
	}
	wg.Wait()
	ready, failed := 0, 0
	for _, s := range d.streams {
		switch {
		case s == nil:
			failed++
		case closed(s.synced):
			ready++
		default:
			failed++
		}
	}
	r := Reply{Ready: ready, Failed: failed, Bytes: d.bytes.Load(), Latencies: []int64{int64(time.Since(start))}}
	if e, ok := startErr.Load().(error); ok {
		r.Error = e.Error()
	}
	for _, s := range d.streams {
		if s != nil && r.Error == "" {
			if e, ok := s.err.Load().(error); ok {
				r.Error = e.Error()
			}
		}
	}
	if err := enc.Encode(r); err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var c Command
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return fmt.Errorf("driver: bad command %q: %w", sc.Text(), err)
		}
		var r Reply
		switch c.Cmd {
		case "quit":
			for _, s := range d.streams {
				if s != nil {
					s.conn.Close()
				}
			}
			return nil
		case "reset":
			for _, s := range d.streams {
				if s != nil {
					s.resetAcks()
				}
			}
		case "wait":
			r = d.wait(c)
		case "connect":
			r = d.connect(c)
		case "bytes":
		default:
			r.Error = "unknown command " + c.Cmd
		}
		r.Bytes = d.bytes.Load()
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return sc.Err()
}

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// wait polls until every expected stream ACKed the type after Since.
func (d *driver) wait(c Command) Reply {
	t, ok := shortTypes[c.Type]
	if !ok {
		return Reply{Error: "unknown type " + c.Type}
	}
	var expect []*stream
	failed := 0
	for _, s := range d.streams {
		switch {
		case s == nil || closed(s.done):
			failed++
		case c.Cluster == "" || s.watches(c.Cluster):
			expect = append(expect, s)
		}
	}
	deadline := time.Now().Add(c.Timeout)
	lat := make([]int64, len(expect))
	left := len(expect)
	for {
		for i, s := range expect {
			if lat[i] != 0 {
				continue
			}
			if a := s.firstAckAfter(t, c.Since); a != 0 {
				lat[i] = max(a-c.Since, 1)
				left--
			}
		}
		if left == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	out := slices.DeleteFunc(lat, func(v int64) bool { return v == 0 })
	slices.Sort(out)
	return Reply{Expected: len(expect), Missing: left, Latencies: out, Failed: failed}
}

// connect starts c.Count new proxies, one at a time, each timed from dial
// to fully synced; they are closed again afterwards.
func (d *driver) connect(c Command) Reply {
	var r Reply
	var started []*stream
	defer func() {
		for _, s := range started {
			s.close()
		}
	}()
	for n := 0; n < c.Count; n++ {
		d.mu.Lock()
		k := d.opts.Proxies + d.extra
		d.extra++
		d.mu.Unlock()
		t0 := time.Now()
		s, err := d.start(k)
		if err != nil {
			r.Error = err.Error()
			return r
		}
		started = append(started, s)
		select {
		case <-s.synced:
			r.Latencies = append(r.Latencies, int64(time.Since(t0)))
		case <-s.done:
			r.Missing++
			if e, ok := s.err.Load().(error); ok {
				r.Error = e.Error()
			}
		case <-time.After(c.Timeout):
			r.Missing++
		}
	}
	slices.Sort(r.Latencies)
	return r
}

// DriverMain runs Drive on stdin/stdout, for the driver subprocess.
func DriverMain(ctx context.Context, opts DriverOptions) error {
	// The responses of a change are garbage once counted: collect early
	// rather than let the heap double (2000 proxies receive 3 GB per
	// weight change without Sidecar scoping).
	debug.SetMemoryLimit(driverMemoryLimit)
	return Drive(ctx, opts, os.Stdin, os.Stdout)
}

// driverMemoryLimit is the driver's soft memory limit
// (runtime/debug.SetMemoryLimit); the run's RSS guard is the hard one.
const driverMemoryLimit = 3 << 30
