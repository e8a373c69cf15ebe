package xdsclient

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
	"github.com/weft-mesh/weft/proxy/runtime"
	"github.com/weft-mesh/weft/xds/node"
	"github.com/weft-mesh/weft/xds/server"
	"github.com/weft-mesh/weft/xds/translate"
)

// realGen serves the control plane's translator over a snapshot the test
// replaces.
type realGen struct {
	tr   *translate.Translator
	snap atomic.Pointer[model.Snapshot]
}

func (g *realGen) Generate(p *node.Meta, prev *translate.Output) (*translate.Output, error) {
	return g.tr.Generate(g.snap.Load(), p, prev), nil
}

func services(names ...string) []*config.Object {
	var out []*config.Object
	for _, n := range names {
		out = append(out, &config.Object{Kind: config.KindServiceEntry, Meta: config.Meta{Name: n, Namespace: "default"},
			Spec: &networking.ServiceEntry{Hosts: []string{n + ".default.svc.cluster.local"}, Ports: []*networking.ServicePort{{Number: 80, Name: "http", Protocol: "HTTP"}},
				Endpoints: []*networking.WorkloadEntry{{Address: "127.0.0.9"}}}})
	}
	return out
}

// TestDeltaAgainstServer runs the client's delta stream against weft's
// ADS server: the proxy converges, takes an added and a removed service
// as changes, and after a reconnect is sent nothing it already holds.
func TestDeltaAgainstServer(t *testing.T) {
	gen := &realGen{tr: translate.NewTranslator(translate.Options{})}
	gen.snap.Store(model.Build(1, services("a", "b")))
	srv := server.New(gen, server.Options{})
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	pump := newPump(raw) // one port for both servers below, bound once
	g := grpc.NewServer(server.ServerOptions()...)
	srv.Register(g)
	go g.Serve(pump.view())
	defer g.Stop()

	var mu sync.Mutex
	var applied []*runtime.Resources
	apply := func(r *runtime.Resources) error {
		mu.Lock()
		defer mu.Unlock()
		applied = append(applied, r)
		return nil
	}
	last := func() *runtime.Resources {
		mu.Lock()
		defer mu.Unlock()
		if len(applied) == 0 {
			return nil
		}
		return applied[len(applied)-1]
	}
	meta := &node.Meta{Type: node.Sidecar, IP: "127.0.0.1", Name: "web", Namespace: "default", Outbound: "127.0.0.1:15001"}
	c := New(Options{Server: raw.Addr().String(), Node: meta.Node(), Apply: apply, BackoffMin: 20 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	has := func(r *runtime.Resources, svcs ...string) bool {
		if r == nil || len(r.Clusters) != len(svcs) || len(r.Endpoints) != len(svcs) || r.Routes[translate.OutboundRoute] == nil {
			return false
		}
		for _, s := range svcs {
			name := translate.ClusterName(80, "", s+".default.svc.cluster.local")
			if r.Clusters[name] == nil || r.Endpoints[name] == nil {
				return false
			}
		}
		return true
	}
	waitUntil(t, "a and b applied", func() bool { return has(last(), "a", "b") })
	if c.noDelta.Load() {
		t.Fatal("the client fell back to state of the world")
	}

	gen.snap.Store(model.Build(2, services("a", "c")))
	srv.Push("b out, c in")
	waitUntil(t, "a and c applied", func() bool { return has(last(), "a", "c") })

	// Reconnect: the server is told what the proxy holds and sends
	// nothing new, so nothing is applied again.
	waitUntil(t, "synced", func() bool { cs := srv.Connections(); return len(cs) == 1 && cs[0].Sync.State == server.Synced })
	first := srv.Connections()[0].ConnID
	mu.Lock()
	n := len(applied)
	mu.Unlock()
	g.Stop()
	g2 := grpc.NewServer(server.ServerOptions()...)
	srv.Register(g2)
	go g2.Serve(pump.view())
	defer g2.Stop()
	waitUntil(t, "reconnected and synced", func() bool {
		for _, ci := range srv.Connections() {
			if ci.ConnID != first && ci.Sync.State == server.Synced {
				return true
			}
		}
		return false
	})
	mu.Lock()
	again := len(applied) - n
	mu.Unlock()
	if again != 0 {
		t.Errorf("%d configurations applied after a reconnect that changed nothing", again)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pump hands the connections of one listener to whichever view is
// serving, so a test can stop a server and serve the same port again
// without binding it twice.
type pump struct {
	net.Listener
	conns chan net.Conn
}

func newPump(l net.Listener) *pump {
	p := &pump{Listener: l, conns: make(chan net.Conn)}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(p.conns)
				return
			}
			p.conns <- c
		}
	}()
	return p
}

func (p *pump) view() net.Listener { return &pumpView{p: p, done: make(chan struct{})} }

type pumpView struct {
	p    *pump
	once sync.Once
	done chan struct{}
}

func (v *pumpView) Accept() (net.Conn, error) {
	select {
	case c, ok := <-v.p.conns:
		if !ok {
			return nil, net.ErrClosed
		}
		return c, nil
	case <-v.done:
		return nil, net.ErrClosed
	}
}

func (v *pumpView) Close() error   { v.once.Do(func() { close(v.done) }); return nil }
func (v *pumpView) Addr() net.Addr { return v.p.Addr() }
