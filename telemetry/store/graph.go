package store

import (
	"math"
	"sort"
	"strings"
	"time"
)

// Node and edge IDs (console/README.md documents them for tests):
//
//	workload:NAMESPACE/WORKLOAD   a workload version, e.g. workload:bookinfo/reviews-v2
//	                              (the ingress gateway is one too, with Kind "gateway")
//	service:HOST                  a service, e.g. service:reviews.bookinfo.svc.cluster.local
//	unknown                       callers without a sidecar
//
// An edge's ID is SOURCE->TARGET. Traffic is drawn as Kiali's versioned app
// graph with service nodes: caller -> service -> workload version.

// Node kinds.
const (
	KindWorkload = "workload"
	KindGateway  = "gateway"
	KindService  = "service"
	KindUnknown  = "unknown"
)

// Health states, with Kiali's default thresholds on the error rate.
const (
	HealthHealthy  = "healthy"  // error rate <= 0.1%
	HealthDegraded = "degraded" // error rate > 0.1%
	HealthFailure  = "failure"  // error rate >= 20%
	HealthIdle     = "idle"     // no requests in the window
)

// Health classifies an error percentage over requests.
func Health(requests uint64, errorPct float64) string {
	switch {
	case requests == 0:
		return HealthIdle
	case errorPct >= 20:
		return HealthFailure
	case errorPct > 0.1:
		return HealthDegraded
	}
	return HealthHealthy
}

// Inventory is what the control plane knows about services and workloads
// apart from traffic: it adds idle nodes and marks VMs and gateways.
type Inventory struct {
	Services  []InventoryService
	Workloads []InventoryWorkload
	// Aliases maps "NAMESPACE/INSTANCE" (a WorkloadEntry name, as some
	// proxies report a peer) to the workload name, so one workload version
	// is one node whichever way it was reported.
	Aliases map[string]string
}

// InventoryService is a service from the registry.
type InventoryService struct {
	Host, Name, Namespace string
	Workloads             []string // workload node IDs
}

// InventoryWorkload is a workload version from the registry or a proxy.
type InventoryWorkload struct {
	Namespace, Name, App, Version string
	VM, Gateway                   bool
}

// WorkloadID returns a workload's node ID.
func WorkloadID(namespace, name string) string { return "workload:" + namespace + "/" + name }

// ServiceID returns a service's node ID.
func ServiceID(host string) string { return "service:" + host }

// Graph is the traffic graph over a window.
type Graph struct {
	Window    string    `json:"window"`
	Seconds   float64   `json:"seconds"` // time the rates are computed over
	Timestamp time.Time `json:"timestamp"`
	Nodes     []*Node   `json:"nodes"`
	Edges     []*Edge   `json:"edges"`
	// Overflow is set when some traffic was folded into the overflow
	// series (cardinality cap) and is missing from the graph.
	Overflow bool `json:"overflow,omitempty"`
}

// Node is a graph node. Rates count traffic into the node, or out of it
// for gateways and unknown callers.
type Node struct {
	ID        string   `json:"id"`
	Kind      string   `json:"kind"`
	Name      string   `json:"name"`
	Namespace string   `json:"namespace,omitempty"`
	App       string   `json:"app,omitempty"`
	Version   string   `json:"version,omitempty"`
	Host      string   `json:"host,omitempty"` // services
	VM        bool     `json:"vm,omitempty"`
	Services  []string `json:"services,omitempty"`  // workloads: the service node IDs they serve
	Workloads []string `json:"workloads,omitempty"` // services: their workload node IDs
	Idle      bool     `json:"idle,omitempty"`      // no traffic in the window
	RPS       float64  `json:"rps"`
	ErrorPct  float64  `json:"errorPercent"`
	Health    string   `json:"health"`
	Requests  uint64   `json:"requests"`
	Errors    uint64   `json:"errors"`
	// MTLS: some of the traffic into the node (out of it, for gateways
	// and unknown callers) used mutual TLS; MTLSPct is how much of the
	// traffic whose security a destination reported.
	MTLS    bool    `json:"mtls"`
	MTLSPct float64 `json:"mtlsPercent"`
	in, out agg
}

// Edge is traffic from one node to another over the window.
type Edge struct {
	ID         string  `json:"id"` // SOURCE->TARGET
	Source     string  `json:"source"`
	Target     string  `json:"target"`
	Protocol   string  `json:"protocol"`
	Requests   uint64  `json:"requests"` // TCP: connections opened
	Errors     uint64  `json:"errors"`
	RPS        float64 `json:"rps"`
	RequestPct float64 `json:"requestPercent"` // share of the traffic leaving Source
	ErrorPct   float64 `json:"errorPercent"`
	// Response time percentiles in ms; null without requests.
	P50        *float64 `json:"p50"`
	P95        *float64 `json:"p95"`
	P99        *float64 `json:"p99"`
	Throughput float64  `json:"throughput"` // bytes per second, both directions
	// MTLS: some traffic on the edge in the window used mutual TLS, as
	// the destination proxies reported it; MTLSPct: the share of the
	// traffic they reported that did.
	MTLS    bool    `json:"mtls"`
	MTLSPct float64 `json:"mtlsPercent"`
	Health  string  `json:"health"`
	a       agg
}

func isUnknown(s string) bool { return s == "" || s == "unknown" }

// BuildGraph computes the graph over window ending at now.
func (s *Store) BuildGraph(window time.Duration, inv *Inventory, now time.Time) *Graph {
	stats, secs := s.Edges(window, now)
	g := &Graph{Window: window.String(), Seconds: secs, Timestamp: now.UTC()}

	gateways, vms := map[string]bool{}, map[string]bool{}
	if inv != nil {
		for _, w := range inv.Workloads {
			id := WorkloadID(w.Namespace, w.Name)
			gateways[id], vms[id] = w.Gateway, w.VM
		}
	}
	nodes := map[string]*Node{}
	node := func(id, kind string) *Node {
		n := nodes[id]
		if n == nil {
			n = &Node{ID: id, Kind: kind, Idle: true}
			nodes[id] = n
		}
		return n
	}
	workload := func(ns, name, app, version string) *Node {
		id := WorkloadID(ns, name)
		kind := KindWorkload
		if gateways[id] || strings.Contains(name, "ingressgateway") || strings.Contains(name, "egressgateway") {
			kind = KindGateway
		}
		n := node(id, kind)
		n.Name, n.Namespace, n.VM = name, ns, n.VM || vms[id]
		if app != "" && !isUnknown(app) {
			n.App = app
		}
		if version != "" && !isUnknown(version) {
			n.Version = version
		}
		return n
	}
	service := func(host string) *Node {
		if host == "" {
			host = "unknown"
		}
		n := node(ServiceID(host), KindService)
		n.Host, n.Name = host, host
		if in, ok := strings.CutSuffix(host, ".svc.cluster.local"); ok {
			n.Name, n.Namespace, _ = strings.Cut(in, ".")
		}
		return n
	}
	edges := map[string]*Edge{}
	edge := func(src, dst *Node, proto string, a *agg) {
		id := src.ID + "->" + dst.ID
		e := edges[id]
		if e == nil {
			e = &Edge{ID: id, Source: src.ID, Target: dst.ID, Protocol: proto}
			edges[id] = e
		} else if e.Protocol != proto {
			e.Protocol = "mixed"
		}
		e.a.add(a)
		src.out.add(a)
		dst.in.add(a)
		src.Idle, dst.Idle = false, false
	}

	if inv != nil && len(inv.Aliases) > 0 {
		for i := range stats {
			k := &stats[i].Key
			if a, ok := inv.Aliases[k.SourceNamespace+"/"+k.SourceWorkload]; ok {
				k.SourceWorkload = a
			}
			if a, ok := inv.Aliases[k.DestinationNamespace+"/"+k.DestinationWorkload]; ok {
				k.DestinationWorkload = a
			}
		}
		stats = mergeSame(stats)
	}

	// Prefer what the caller's proxy saw: it includes failures that never
	// reached the destination (no route, circuit breaker, connect failure).
	// The destination's view is used only for edges no source reported.
	bySource := map[EdgeKey]bool{}
	// Connection security is only known where the connection ends: the
	// destination's series says how much of an edge's traffic was mutual
	// TLS even when the source's series supplies the counts.
	type security struct{ secured, mtls uint64 }
	byDest := map[EdgeKey]security{}
	for i := range stats {
		k := stats[i].Key
		switch k.Reporter {
		case "source":
			k.Reporter = ""
			bySource[k] = true
		case "destination":
			k.Reporter = ""
			sec := byDest[k]
			sec.secured += stats[i].Requests
			sec.mtls += stats[i].MTLS
			byDest[k] = sec
		}
	}
	for i := range stats {
		st := &stats[i]
		k := st.Key
		if k == overflowKey {
			g.Overflow = true
			continue
		}
		base := k
		base.Reporter = ""
		if k.Reporter != "source" && bySource[base] {
			continue
		}
		a := agg{requests: st.Requests, errors: st.Errors, bytes: st.Bytes, dur: st.Duration}
		if k.Reporter == "source" {
			sec := byDest[base]
			a.secured, a.mtls = sec.secured, sec.mtls
		} else {
			a.secured, a.mtls = st.Requests, st.MTLS
		}
		var src *Node
		if isUnknown(k.SourceWorkload) {
			src = node(KindUnknown, KindUnknown)
			src.Name = "unknown"
		} else {
			src = workload(k.SourceNamespace, k.SourceWorkload, k.SourceApp, k.SourceVersion)
		}
		svc := service(k.DestinationService)
		edge(src, svc, k.Protocol, &a)
		if !isUnknown(k.DestinationWorkload) {
			dst := workload(k.DestinationNamespace, k.DestinationWorkload, k.DestinationApp, k.DestinationVersion)
			edge(svc, dst, k.Protocol, &a)
			addUnique(&dst.Services, svc.ID)
			addUnique(&svc.Workloads, dst.ID)
		}
	}
	if inv != nil {
		for _, w := range inv.Workloads {
			workload(w.Namespace, w.Name, w.App, w.Version)
		}
		for _, sv := range inv.Services {
			n := service(sv.Host)
			n.Name, n.Namespace = sv.Name, sv.Namespace
			for _, w := range sv.Workloads {
				addUnique(&n.Workloads, w)
				if wn := nodes[w]; wn != nil {
					addUnique(&wn.Services, n.ID)
				}
			}
		}
	}

	for _, e := range edges {
		src := nodes[e.Source]
		e.Requests, e.Errors = e.a.requests, e.a.errors
		e.RPS = rate(e.a.requests, secs)
		e.RequestPct = pct(e.a.requests, src.out.requests)
		e.ErrorPct = pct(e.a.errors, e.a.requests)
		e.Throughput = rate(e.a.bytes, secs)
		e.MTLSPct = pct(e.a.mtls, e.a.secured)
		e.MTLS = e.a.mtls > 0
		e.P50, e.P95, e.P99 = quantilePtr(0.5, e.a.dur[:]), quantilePtr(0.95, e.a.dur[:]), quantilePtr(0.99, e.a.dur[:])
		e.Health = Health(e.a.requests, e.ErrorPct)
		g.Edges = append(g.Edges, e)
	}
	for _, n := range nodes {
		a := n.in
		if n.Kind == KindGateway || n.Kind == KindUnknown || a.requests == 0 {
			a = n.out // callers are judged by what they send
		}
		n.Requests, n.Errors = a.requests, a.errors
		n.RPS = rate(a.requests, secs)
		n.ErrorPct = pct(a.errors, a.requests)
		n.Health = Health(a.requests, n.ErrorPct)
		n.MTLSPct = pct(a.mtls, a.secured)
		n.MTLS = a.mtls > 0
		sort.Strings(n.Services)
		sort.Strings(n.Workloads)
		g.Nodes = append(g.Nodes, n)
	}
	sort.Slice(g.Nodes, func(i, j int) bool { return g.Nodes[i].ID < g.Nodes[j].ID })
	sort.Slice(g.Edges, func(i, j int) bool { return g.Edges[i].ID < g.Edges[j].ID })
	if g.Nodes == nil {
		g.Nodes = []*Node{}
	}
	if g.Edges == nil {
		g.Edges = []*Edge{}
	}
	return g
}

func addUnique(list *[]string, v string) {
	for _, x := range *list {
		if x == v {
			return
		}
	}
	*list = append(*list, v)
}

func rate(n uint64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return round(float64(n)/secs, 3)
}

func pct(part, whole uint64) float64 {
	if whole == 0 {
		return 0
	}
	return round(100*float64(part)/float64(whole), 2)
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func quantilePtr(q float64, counts []uint64) *float64 {
	v := Quantile(q, counts)
	if math.IsNaN(v) {
		return nil
	}
	v = round(v, 2)
	return &v
}

// mergeSame sums stats whose keys became equal (after aliasing).
func mergeSame(stats []EdgeStat) []EdgeStat {
	idx := make(map[EdgeKey]int, len(stats))
	out := stats[:0]
	for _, st := range stats {
		if i, ok := idx[st.Key]; ok {
			o := &out[i]
			o.Requests += st.Requests
			o.Errors += st.Errors
			o.MTLS += st.MTLS
			o.Bytes += st.Bytes
			for j := range o.Duration {
				o.Duration[j] += st.Duration[j]
			}
			continue
		}
		idx[st.Key] = len(out)
		out = append(out, st)
	}
	return out
}
