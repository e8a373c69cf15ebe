package controlplane

import (
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"time"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/console"
	"github.com/weft-mesh/weft/telemetry/otlp"
	tstore "github.com/weft-mesh/weft/telemetry/store"
	"github.com/weft-mesh/weft/xds/node"
)

// LabelVM marks a WorkloadEntry as a VM in the console even when it was
// registered by `weft run`.
const LabelVM = "weft.io/vm"

// sweepEvery is how often idle telemetry series are expired.
const sweepEvery = 10 * time.Second

// setupTelemetry creates the telemetry store, the console and, with an
// OTLP endpoint, the span exporter, and mounts them with the API on one
// mux:
//
//	/api/..., /healthz, anything else   the API (JSON errors for unknown paths)
//	POST /api/v1/telemetry, GET /metrics, GET /api/v1/{graph,services,workloads,traces}   telemetry
//	GET /, /console/..., /assets/..., /login   the console
func (c *ControlPlane) setupTelemetry(apiHandler http.Handler) (*http.ServeMux, error) {
	c.telemetry = tstore.New(tstore.Options{})
	token := c.opts.ConsoleToken
	if console.NeedsToken(c.opts.APIAddr) {
		// Reachable from other hosts, every read needs the API token; the
		// console's login cookie carries it, so the console's token is it.
		if token != "" && token != c.apiToken {
			c.log.Warn("--console-token is ignored: the API is not on a loopback address, so the console logs in with the API token (STATE_DIR/api-token)")
		}
		token = c.apiToken
	}
	c.consoleToken = token
	cons := console.New(console.Options{Token: token})

	extra := c.canaries.controller.WriteMetrics
	if c.opts.OTLPEndpoint != "" {
		exp, err := otlp.New(otlp.Options{Endpoint: c.opts.OTLPEndpoint, Log: c.log.With("component", "otlp")})
		if err != nil {
			return nil, err
		}
		c.exporter = exp
		c.telemetry.Traces.OnSpans(exp.Enqueue)
		extra = func(w io.Writer) {
			exp.WriteMetrics(w)
			c.canaries.controller.WriteMetrics(w)
		}
		c.log.Info("exporting spans over OTLP/HTTP", "url", exp.URL())
	}

	mux := http.NewServeMux()
	mux.Handle("/", apiHandler)
	hopts := tstore.HTTPOptions{Inventory: c.inventory, Protect: cons.Protect, ExtraMetrics: extra,
		ProtectIntake: c.requireJoinToken}
	if c.reviewer != nil {
		// Proxies in a cluster hold ServiceAccount tokens, no join token;
		// in pods, reports go to the leader alone.
		hopts.ProtectIntake = func(h http.Handler) http.Handler { return c.leaderOnlyIntake(c.reviewer.protect(h)) }
	}
	if console.NeedsToken(c.opts.APIAddr) {
		hopts.ProtectMetrics = cons.Protect // scrape with Authorization: Bearer API_TOKEN
	}
	c.telemetry.Register(mux, hopts)
	cons.Register(mux)
	return mux, nil
}

// runTelemetry expires idle series and runs the exporter until ctx ends.
func (c *ControlPlane) runTelemetry(ctx context.Context) {
	if c.exporter != nil {
		go c.exporter.Run(ctx)
	}
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			c.telemetry.Sweep(now)
		}
	}
}

// Telemetry returns the telemetry store (for canary analysis and tests).
func (c *ControlPlane) Telemetry() *tstore.Store { return c.telemetry }

// ConsoleToken is the token the console asks for, or "" when it is open
// (a loopback API address and no --console-token).
func (c *ControlPlane) ConsoleToken() string { return c.consoleToken }

// ConsoleURL is the console's address, with the login token as a query
// parameter when one is needed; the console trades it for a cookie.
func (c *ControlPlane) ConsoleURL() string { return ConsoleURL(c.APIAddr(), c.consoleToken) }

// ConsoleURL builds the console URL for an API address and token. An
// unspecified host (0.0.0.0, ::) becomes 127.0.0.1, which reaches it locally.
func ConsoleURL(apiAddr, token string) string {
	u := "http://" + localHost(apiAddr) + "/"
	if token != "" {
		u += "?token=" + token
	}
	return u
}

// inventory lists the registry's services and workloads for the graph:
// workloads are named as their proxies name themselves in metrics
// (config.LabelWorkload, see `weft run`), and marked VM or gateway.
func (c *ControlPlane) inventory() *tstore.Inventory {
	snap := c.snap.Load()
	inv := &tstore.Inventory{Aliases: map[string]string{}}
	seen := map[string]bool{}
	addWorkload := func(w tstore.InventoryWorkload) string {
		id := tstore.WorkloadID(w.Namespace, w.Name)
		if !seen[id] {
			seen[id] = true
			inv.Workloads = append(inv.Workloads, w)
		}
		return id
	}
	// Every WorkloadEntry is a workload, selected by a service or not.
	for _, o := range snap.Objects(config.KindWorkloadEntry) {
		w := workloadOf(o)
		addWorkload(w)
		if o.Meta.Name != w.Name {
			inv.Aliases[o.Meta.Namespace+"/"+o.Meta.Name] = w.Name
		}
	}
	for _, svc := range snap.Services() {
		is := tstore.InventoryService{Host: svc.Hostname, Name: svc.Name, Namespace: svc.Namespace}
		for _, ep := range svc.Endpoints {
			if ep.Workload == "" {
				// An inline endpoint is a workload when it says which
				// (weft.io/workload): a pod in Kubernetes mode.
				if name := ep.Labels[config.LabelWorkload]; name != "" {
					id := addWorkload(tstore.InventoryWorkload{Namespace: ep.Namespace, Name: name, App: ep.Labels["app"], Version: ep.Labels["version"]})
					if !slices.Contains(is.Workloads, id) {
						is.Workloads = append(is.Workloads, id)
					}
				}
				continue
			}
			o := snap.Object(config.KindWorkloadEntry, ep.Namespace, ep.Workload)
			if o == nil {
				continue
			}
			w := workloadOf(o)
			is.Workloads = append(is.Workloads, tstore.WorkloadID(w.Namespace, w.Name))
		}
		inv.Services = append(inv.Services, is)
	}
	if c.xds != nil {
		for _, ci := range c.xds.Connections() {
			if ci.Meta == nil || ci.Meta.WorkloadName == "" {
				continue
			}
			addWorkload(tstore.InventoryWorkload{
				Namespace: ci.Meta.Namespace, Name: ci.Meta.WorkloadName, App: ci.Meta.Labels["app"],
				Version: ci.Meta.Labels["version"], Gateway: ci.Meta.Type == node.Router,
			})
		}
	}
	return inv
}

// workloadOf describes a WorkloadEntry as a workload version. It is a VM
// when labelled weft.io/vm=true or version=vm, or when no sidecar of
// `weft run` registered it (no weft.io/proxy annotation).
func workloadOf(o *config.Object) tstore.InventoryWorkload {
	labels := map[string]string{}
	for k, v := range o.Meta.Labels {
		labels[k] = v
	}
	if we, ok := o.Spec.(*networking.WorkloadEntry); ok {
		for k, v := range we.GetLabels() {
			labels[k] = v
		}
	}
	app := labels[config.LabelService]
	if app == "" {
		app = labels["app"]
	}
	// The name proxies report as source/destination_workload.
	name := labels[config.LabelWorkload]
	if name == "" {
		name = o.Meta.Name
	}
	_, registered := o.Meta.Annotations[config.AnnotationProxy]
	return tstore.InventoryWorkload{
		Namespace: o.Meta.Namespace, Name: name, App: app, Version: labels["version"],
		VM: labels[LabelVM] == "true" || labels["version"] == "vm" || !registered,
	}
}

func localHost(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
