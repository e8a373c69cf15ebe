package config

import (
	"net/url"
	"strings"
	"text/template"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	networking "istio.io/api/networking/v1alpha3"

	flaggerv1beta1 "github.com/weft-mesh/weft/config/apis/flagger/v1beta1"
)

// Flagger's webhook types (CanaryWebhook.type); "" means WebhookRollout.
const (
	WebhookConfirmRollout         = "confirm-rollout"
	WebhookPreRollout             = "pre-rollout"
	WebhookRollout                = "rollout"
	WebhookConfirmTrafficIncrease = "confirm-traffic-increase"
	WebhookConfirmPromotion       = "confirm-promotion"
	WebhookPostRollout            = "post-rollout"
	WebhookRollback               = "rollback"
	WebhookEvent                  = "event"
)

var webhookTypes = []string{WebhookConfirmRollout, WebhookPreRollout, WebhookRollout, WebhookConfirmTrafficIncrease,
	WebhookConfirmPromotion, WebhookPostRollout, WebhookRollback, WebhookEvent}

// The metrics weft computes itself from its telemetry, as Flagger's
// builtin Istio metrics do from Prometheus.
const (
	MetricRequestSuccessRate = "request-success-rate" // % of requests not answered 5xx
	MetricRequestDuration    = "request-duration"     // p99 in milliseconds
)

// MinAnalysisInterval is the shortest analysis or metric interval weft
// takes. Flagger raises anything under 10s to 10s; weft allows seconds so
// a release (and its tests) can run fast, and says so when it is shorter.
const MinAnalysisInterval = time.Second

// MetricQueryVars are what a MetricTemplate's query may use, as Flagger
// names them: {{ name }}, {{ namespace }}, {{ target }}, {{ service }},
// {{ ingress }}, {{ interval }} and {{ variables.KEY }}.
type MetricQueryVars struct {
	Name, Namespace, Target, Service, Ingress, Interval string
	Variables                                           map[string]string
}

// ParseMetricQuery parses a MetricTemplate query. Render it with
// RenderMetricQuery.
func ParseMetricQuery(q string) (*template.Template, error) {
	return template.New("query").Option("missingkey=error").Funcs(queryFuncs(MetricQueryVars{})).Parse(q)
}

// RenderMetricQuery renders a parsed query with vars.
func RenderMetricQuery(t *template.Template, vars MetricQueryVars) (string, error) {
	var b strings.Builder
	c, err := t.Clone()
	if err != nil {
		return "", err
	}
	if err := c.Funcs(queryFuncs(vars)).Execute(&b, nil); err != nil {
		return "", err
	}
	return b.String(), nil
}

func queryFuncs(v MetricQueryVars) template.FuncMap {
	constant := func(s string) func() string { return func() string { return s } }
	return template.FuncMap{
		"name": constant(v.Name), "namespace": constant(v.Namespace), "target": constant(v.Target),
		"service": constant(v.Service), "ingress": constant(v.Ingress), "interval": constant(v.Interval),
		"variables": func() map[string]string { return v.Variables },
	}
}

// refused reports a Flagger field weft does not build, if it is set.
func (v *validator) refused(p path, set bool, why string) {
	if set {
		v.errorf(p, "not supported: %s", why)
	}
}

func (v *validator) canary(c *flaggerv1beta1.Canary) {
	switch c.GetProvider() {
	case "", "istio", "weft":
	default:
		v.errorf("spec.provider", "weft is the mesh: leave provider empty (or istio), got %q", c.GetProvider())
	}
	if s := c.GetMetricsServer(); s != "" {
		v.httpURL("spec.metricsServer", s)
	}
	v.targetRef(c.GetTargetRef())
	v.refused("spec.autoscalerRef", c.GetAutoscalerRef() != nil, "weft starts no autoscalers; instances are what runs with the target's app label")
	v.refused("spec.ingressRef", c.GetIngressRef() != nil, "an NGINX ingress; weft routes through its own VirtualService (spec.service.gateways binds it to gateways)")
	v.refused("spec.routeRef", c.GetRouteRef() != nil, "an APISIX route; weft routes through its own VirtualService")
	v.refused("spec.upstreamRef", c.GetUpstreamRef() != nil, "a Gloo upstream; weft routes through its own VirtualService")
	v.refused("spec.canaryAnalysis", c.GetCanaryAnalysis() != nil, "Flagger's deprecated name; write analysis instead")
	v.refused("spec.revertOnDeletion", c.GetRevertOnDeletion(), "deleting a Canary leaves the routing it wrote (all traffic to the primary) in place")
	if c.ProgressDeadlineSeconds != nil && c.GetProgressDeadlineSeconds() < 1 {
		v.errorf("spec.progressDeadlineSeconds", "must be at least 1, got %d", c.GetProgressDeadlineSeconds())
	}
	if c.GetService() == nil {
		v.errorf("spec.service", "required, with at least port")
	} else {
		v.canaryService("spec.service", c.GetService())
	}
	if c.GetAnalysis() == nil {
		v.errorf("spec.analysis", "required: interval, threshold, how to step (stepWeight, stepWeights or iterations) and the checks")
		return
	}
	v.analysis("spec.analysis", c.GetAnalysis(), c.GetSkipAnalysis())
}

func (v *validator) targetRef(r *flaggerv1beta1.LocalObjectReference) {
	p := path("spec.targetRef")
	if r == nil {
		v.errorf(p, "required: {apiVersion: apps/v1, kind: Deployment, name: NAME} or {apiVersion: v1, kind: Service, name: NAME}")
		return
	}
	if r.GetName() == "" {
		v.errorf(p.field("name"), "required")
	} else if !isDNS1123Label(r.GetName()) {
		v.errorf(p.field("name"), "%q is not a valid name: use lower-case letters, digits and '-'", r.GetName())
	}
	want := map[string]string{"Deployment": "apps/v1", "Service": "v1"}
	api, ok := want[r.GetKind()]
	switch {
	case r.GetKind() == "":
		v.errorf(p.field("kind"), "required: Deployment or Service")
	case !ok:
		v.errorf(p.field("kind"), "unsupported kind %q: weft releases the instances whose app label is the name, given as kind Deployment or Service", r.GetKind())
	case r.GetApiVersion() != "" && r.GetApiVersion() != api:
		v.errorf(p.field("apiVersion"), "a %s is %s, got %q", r.GetKind(), api, r.GetApiVersion())
	}
}

func (v *validator) canaryService(p path, s *flaggerv1beta1.CanaryService) {
	if s.GetName() != "" && !isDNS1123Label(s.GetName()) {
		v.errorf(p.field("name"), "%q is not a valid service name: use lower-case letters, digits and '-'", s.GetName())
	}
	if s.GetPort() < 1 || s.GetPort() > 65535 {
		v.errorf(p.field("port"), "required, a port number between 1 and 65535, got %d", s.GetPort())
	}
	if s.GetPortName() != "" && !isDNS1123Label(s.GetPortName()) {
		v.errorf(p.field("portName"), "%q is not a valid port name", s.GetPortName())
	}
	if tp := s.GetTargetPort(); tp != nil {
		switch k := tp.GetKind().(type) {
		case *structpb.Value_NumberValue:
			if n := k.NumberValue; n != float64(int(n)) || n < 1 || n > 65535 {
				v.errorf(p.field("targetPort"), "a port number must be a whole number between 1 and 65535, got %v", n)
			}
		case *structpb.Value_StringValue:
			if !isDNS1123Label(k.StringValue) {
				v.errorf(p.field("targetPort"), "%q is not a valid port name", k.StringValue)
			}
		default:
			v.errorf(p.field("targetPort"), "must be a port number or name")
		}
	}
	switch strings.ToLower(s.GetAppProtocol()) {
	case "", "http", "http2", "h2c", "grpc":
	default:
		v.errorf(p.field("appProtocol"), "weft analyses HTTP traffic: use http, http2, h2c or grpc, got %q", s.GetAppProtocol())
	}
	v.refused(p.field("portDiscovery"), s.GetPortDiscovery(), "the generated services have the one port spec.service.port")
	if t := s.GetTimeout(); t != "" {
		v.durationString(p.field("timeout"), t, time.Millisecond)
	}
	for i, g := range s.GetGateways() {
		v.gatewayRef(p.field("gateways").index(i), g)
	}
	for i, h := range s.GetHosts() {
		v.host(p.field("hosts").index(i), h)
	}
	v.refused(p.field("gatewayRefs"), s.GetGatewayRefs() != nil, "Gateway API routes; bind the VirtualService to Istio gateways with gateways")
	v.refused(p.field("delegation"), s.GetDelegation(), "VirtualService delegation")
	v.refused(p.field("meshName"), s.GetMeshName() != "", "App Mesh")
	v.refused(p.field("backends"), len(s.GetBackends()) > 0, "App Mesh")
	v.refused(p.field("sessionAffinity"), s.GetSessionAffinity() != nil, "session affinity during a release")
	if tp := s.GetTrafficPolicy(); tp != nil {
		v.trafficPolicy(p.field("trafficPolicy"), tp)
	}
	// The route fields are the generated route's: check them as one.
	v.httpRoute(p, &networking.HTTPRoute{
		Match: s.GetMatch(), Rewrite: s.GetRewrite(), Retries: s.GetRetries(), Headers: s.GetHeaders(), CorsPolicy: s.GetCorsPolicy(),
		Route: []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "x"}}},
	})
}

func (v *validator) analysis(p path, a *flaggerv1beta1.CanaryAnalysis, skip bool) {
	if a.GetInterval() != "" {
		v.durationString(p.field("interval"), a.GetInterval(), MinAnalysisInterval)
	}
	nonNeg := func(name string, n int32) {
		if n < 0 {
			v.errorf(p.field(name), "must not be negative, got %d", n)
		}
	}
	pct := func(name string, n int32) {
		if n < 0 || n > 100 {
			v.errorf(p.field(name), "must be between 0 and 100, got %d", n)
		}
	}
	nonNeg("iterations", a.GetIterations())
	nonNeg("threshold", a.GetThreshold())
	pct("maxWeight", a.GetMaxWeight())
	pct("stepWeight", a.GetStepWeight())
	pct("stepWeightPromotion", a.GetStepWeightPromotion())
	pct("mirrorWeight", a.GetMirrorWeight())
	if a.PrimaryReadyThreshold != nil {
		pct("primaryReadyThreshold", a.GetPrimaryReadyThreshold())
	}
	if a.CanaryReadyThreshold != nil {
		pct("canaryReadyThreshold", a.GetCanaryReadyThreshold())
	}
	prev := int32(0)
	for i, w := range a.GetStepWeights() {
		if w < 1 || w > 100 {
			v.errorf(p.field("stepWeights").index(i), "must be between 1 and 100, got %d", w)
		} else if w <= prev {
			v.errorf(p.field("stepWeights").index(i), "weights must increase, got %d after %d", w, prev)
		}
		prev = w
	}
	steps := a.GetStepWeight() > 0 || len(a.GetStepWeights()) > 0
	switch {
	case a.GetStepWeight() > 0 && len(a.GetStepWeights()) > 0:
		v.errorf(p.field("stepWeights"), "give stepWeight or stepWeights, not both")
	case len(a.GetStepWeights()) > 0 && a.GetMaxWeight() != 0 && a.GetMaxWeight() != prev:
		v.errorf(p.field("maxWeight"), "with stepWeights the last step (%d) is the maximum; leave maxWeight out", prev)
	case a.GetIterations() > 0 && steps:
		v.errorf(p.field("iterations"), "iterations (A/B test or blue/green) and stepWeight(s) (progressive canary) are different strategies; give one")
	case a.GetIterations() == 0 && !steps && !skip:
		v.errorf(p, "say how to advance: stepWeight or stepWeights (progressive canary), or iterations (A/B test with match, blue/green without)")
	case len(a.GetMatch()) > 0 && a.GetIterations() == 0:
		v.errorf(p.field("match"), "an A/B test also needs iterations: the number of runs before promotion")
	case a.GetMirror() && len(a.GetMatch()) > 0:
		v.errorf(p.field("mirror"), "mirroring is for blue/green and progressive releases, not A/B tests")
	}
	for i, m := range a.GetMatch() {
		v.httpMatch(p.field("match").index(i), m)
	}
	v.refused(p.field("alerts"), a.GetAlerts() != nil, "weft has no alert providers; events are in the control plane's log, `weft describe canary` and event webhooks")
	v.refused(p.field("sessionAffinity"), a.GetSessionAffinity() != nil, "session affinity during a release")
	seen := map[string]int{}
	for i, m := range a.GetMetrics() {
		mp := p.field("metrics").index(i)
		v.canaryMetric(mp, m)
		if j, dup := seen[m.GetName()]; dup && m.GetName() != "" {
			v.errorf(mp.field("name"), "metric %q already given (metrics[%d])", m.GetName(), j)
		}
		seen[m.GetName()] = i
	}
	for i, w := range a.GetWebhooks() {
		v.canaryWebhook(p.field("webhooks").index(i), w)
	}
}

func (v *validator) canaryMetric(p path, m *flaggerv1beta1.CanaryMetric) {
	if m.GetName() == "" {
		v.errorf(p.field("name"), "required")
	}
	if m.GetInterval() != "" {
		v.durationString(p.field("interval"), m.GetInterval(), MinAnalysisInterval)
	}
	v.refused(p.field("query"), m.GetQuery() != "", "Flagger's deprecated inline query; put it in a MetricTemplate and name that in templateRef")
	if r := m.GetThresholdRange(); r != nil {
		if r.Min == nil && r.Max == nil {
			v.errorf(p.field("thresholdRange"), "give min, max or both")
		} else if r.Min != nil && r.Max != nil && r.GetMin() > r.GetMax() {
			v.errorf(p.field("thresholdRange"), "min %v is above max %v", r.GetMin(), r.GetMax())
		}
	} else if m.Threshold == nil {
		v.errorf(p.field("thresholdRange"), "required: the range (min, max) the metric's value must stay in")
	}
	if ref := m.GetTemplateRef(); ref != nil {
		if ref.GetName() == "" {
			v.errorf(p.field("templateRef").field("name"), "required")
		}
		if ns := ref.GetNamespace(); ns != "" && !isDNS1123Label(ns) {
			v.errorf(p.field("templateRef").field("namespace"), "%q is not a valid namespace", ns)
		}
		return
	}
	if n := m.GetName(); n != "" && n != MetricRequestSuccessRate && n != MetricRequestDuration {
		v.errorf(p.field("name"), "%q is not a builtin metric: weft computes %s and %s from its telemetry; any other metric needs templateRef (a MetricTemplate)",
			n, MetricRequestSuccessRate, MetricRequestDuration)
	}
}

func (v *validator) canaryWebhook(p path, w *flaggerv1beta1.CanaryWebhook) {
	if t := w.GetType(); t != "" {
		known := false
		for _, k := range webhookTypes {
			known = known || t == k
		}
		if !known {
			v.errorf(p.field("type"), "unknown webhook type %q; use one of %s", t, strings.Join(webhookTypes, ", "))
		}
	}
	if w.GetName() == "" {
		v.errorf(p.field("name"), "required")
	}
	if w.GetUrl() == "" {
		v.errorf(p.field("url"), "required")
	} else {
		v.httpURL(p.field("url"), w.GetUrl())
	}
	if t := w.GetTimeout(); t != "" {
		v.durationString(p.field("timeout"), t, time.Millisecond)
	}
	if w.GetRetries() < 0 {
		v.errorf(p.field("retries"), "must not be negative, got %d", w.GetRetries())
	}
}

func (v *validator) metricTemplate(mt *flaggerv1beta1.MetricTemplate) {
	p := path("spec.provider")
	pr := mt.GetProvider()
	if pr == nil {
		v.errorf(p, "required: {type: prometheus, address: http://PROMETHEUS:9090}")
	} else {
		if pr.GetType() != "prometheus" {
			v.errorf(p.field("type"), "weft queries Prometheus: type must be prometheus, got %q", pr.GetType())
		}
		if a := pr.GetAddress(); a != "" {
			v.httpURL(p.field("address"), a)
		}
		v.refused(p.field("secretRef"), pr.GetSecretRef() != nil, "provider credentials from a Secret; give an address Prometheus answers without them")
		v.refused(p.field("region"), pr.GetRegion() != "", "CloudWatch")
	}
	if mt.GetQuery() == "" {
		v.errorf("spec.query", "required")
	} else if _, err := ParseMetricQuery(mt.GetQuery()); err != nil {
		v.errorf("spec.query", "invalid template: %v", err)
	}
}

// durationString checks a duration Flagger writes as a string ("1m").
func (v *validator) durationString(p path, s string, least time.Duration) {
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		v.errorf(p, "invalid duration %q (use a form such as \"30s\" or \"1m\")", s)
	case d < least:
		v.errorf(p, "must be at least %s, got %s", least, s)
	}
}

func (v *validator) httpURL(p path, s string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.errorf(p, "%q is not an http:// or https:// URL", s)
	}
}
