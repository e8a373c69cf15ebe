package config

import (
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	flaggerv1beta1 "github.com/weft-mesh/weft/config/apis/flagger/v1beta1"
)

// TestSeedCanary applies seed 004's Canary as the workshop gives it.
func TestSeedCanary(t *testing.T) {
	f, err := os.Open("../demo/bookinfo/reviews-canary.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	objs, err := Decode("reviews-canary.yaml", f)
	if err != nil {
		t.Fatalf("the seed's Canary is refused: %v", err)
	}
	c := objs[0].Spec.(*flaggerv1beta1.Canary)
	a := c.GetAnalysis()
	if objs[0].Kind != KindCanary || c.GetTargetRef().GetName() != "reviews" || c.GetTargetRef().GetKind() != "Deployment" ||
		c.GetProgressDeadlineSeconds() != 60 || c.GetService().GetPort() != 9080 || c.GetService().GetTargetPort().GetNumberValue() != 9080 ||
		a.GetInterval() != "1m" || a.GetThreshold() != 5 || a.GetMaxWeight() != 50 || a.GetStepWeight() != 10 || len(a.GetMetrics()) != 2 ||
		a.GetMetrics()[0].GetThresholdRange().GetMin() != 99 || a.GetMetrics()[1].GetThresholdRange().GetMax() != 500 ||
		a.GetMetrics()[1].GetInterval() != "30s" || a.GetWebhooks()[0].GetMetadata()["cmd"] != "hey -z 1m -q 10 -c 2 http://reviews-canary.default:9080/health" {
		t.Errorf("decoded wrongly: %v", c)
	}
	// What weft prints applies again, unchanged.
	y, err := Marshal(objs[0], FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Decode("again", strings.NewReader(string(y)))
	if err != nil || !Equal(again[0], objs[0]) {
		t.Errorf("round trip: %v\n%s", err, y)
	}
}

// TestCanaryRefusals names the field and why for everything weft checks
// or does not build.
func TestCanaryRefusals(t *testing.T) {
	const base = `  targetRef: {apiVersion: apps/v1, kind: Deployment, name: reviews}
  service: {port: 9080}
`
	for _, tc := range []struct {
		name, spec, field, msg string
	}{
		{"no target", "  service: {port: 80}\n  analysis: {stepWeight: 10}\n", "spec.targetRef", "required"},
		{"daemonset", "  targetRef: {apiVersion: apps/v1, kind: DaemonSet, name: x}\n  service: {port: 80}\n  analysis: {stepWeight: 10}\n", "spec.targetRef.kind", "unsupported kind"},
		{"service apiVersion", "  targetRef: {apiVersion: apps/v1, kind: Service, name: x}\n  service: {port: 80}\n  analysis: {stepWeight: 10}\n", "spec.targetRef.apiVersion", "a Service is v1"},
		{"no port", "  targetRef: {kind: Service, name: x}\n  service: {}\n  analysis: {stepWeight: 10}\n", "spec.service.port", "required"},
		{"no analysis", base, "spec.analysis", "required"},
		{"no strategy", base + "  analysis: {interval: 1m}\n", "spec.analysis", "stepWeight or stepWeights"},
		{"both steps", base + "  analysis: {stepWeight: 10, stepWeights: [5, 10]}\n", "spec.analysis.stepWeights", "not both"},
		{"steps order", base + "  analysis: {stepWeights: [5, 20, 10]}\n", "spec.analysis.stepWeights[2]", "must increase"},
		{"max weight", base + "  analysis: {stepWeight: 10, maxWeight: 120}\n", "spec.analysis.maxWeight", "between 0 and 100"},
		{"short interval", base + "  analysis: {stepWeight: 10, interval: 500ms}\n", "spec.analysis.interval", "at least 1s"},
		{"bad interval", base + "  analysis: {stepWeight: 10, interval: soon}\n", "spec.analysis.interval", "invalid duration"},
		{"match without iterations", base + "  analysis: {stepWeight: 10, match: [{headers: {x: {exact: v}}}]}\n", "spec.analysis.match", "needs iterations"},
		{"iterations and steps", base + "  analysis: {stepWeight: 10, iterations: 3}\n", "spec.analysis.iterations", "different strategies"},
		{"alerts", base + "  analysis: {stepWeight: 10, alerts: [{name: slack}]}\n", "spec.analysis.alerts", "not supported"},
		{"unknown metric", base + "  analysis: {stepWeight: 10, metrics: [{name: error-rate, thresholdRange: {max: 1}}]}\n", "spec.analysis.metrics[0].name", "not a builtin metric"},
		{"metric range", base + "  analysis: {stepWeight: 10, metrics: [{name: request-duration}]}\n", "spec.analysis.metrics[0].thresholdRange", "required"},
		{"metric min>max", base + "  analysis: {stepWeight: 10, metrics: [{name: request-duration, thresholdRange: {min: 5, max: 1}}]}\n", "spec.analysis.metrics[0].thresholdRange", "above max"},
		{"inline query", base + "  analysis: {stepWeight: 10, metrics: [{name: x, query: up, thresholdRange: {max: 1}}]}\n", "spec.analysis.metrics[0].query", "MetricTemplate"},
		{"hook type", base + "  analysis: {stepWeight: 10, webhooks: [{name: a, type: before, url: 'http://x/'}]}\n", "spec.analysis.webhooks[0].type", "unknown webhook type"},
		{"hook url", base + "  analysis: {stepWeight: 10, webhooks: [{name: a, url: 'x'}]}\n", "spec.analysis.webhooks[0].url", "not an http"},
		{"autoscaler", base + "  autoscalerRef: {apiVersion: autoscaling/v2, kind: HorizontalPodAutoscaler, name: x}\n  analysis: {stepWeight: 10}\n", "spec.autoscalerRef", "not supported"},
		{"gatewayRefs", "  targetRef: {kind: Service, name: x}\n  service: {port: 80, gatewayRefs: [{name: gw}]}\n  analysis: {stepWeight: 10}\n", "spec.service.gatewayRefs", "not supported"},
		{"service match", "  targetRef: {kind: Service, name: x}\n  service: {port: 80, match: [{uri: {regex: '('}}]}\n  analysis: {stepWeight: 10}\n", "spec.service.match[0].uri.regex", "invalid regular expression"},
		{"service retries", "  targetRef: {kind: Service, name: x}\n  service: {port: 80, retries: {attempts: -1}}\n  analysis: {stepWeight: 10}\n", "spec.service.retries.attempts", "negative"},
		{"service tp", "  targetRef: {kind: Service, name: x}\n  service: {port: 80, trafficPolicy: {loadBalancer: {simple: SOMETIMES}}}\n  analysis: {stepWeight: 10}\n", "spec.service.trafficPolicy.loadBalancer.simple", "unknown value"},
		{"target port", "  targetRef: {kind: Service, name: x}\n  service: {port: 80, targetPort: 70000}\n  analysis: {stepWeight: 10}\n", "spec.service.targetPort", "between 1 and 65535"},
		{"provider", base + "  provider: linkerd\n  analysis: {stepWeight: 10}\n", "spec.provider", "weft is the mesh"},
		{"unknown field", base + "  analysis: {stepWeigth: 10}\n", "spec.analysis.stepWeigth", "did you mean \"stepWeight\""},
		{"deadline", base + "  progressDeadlineSeconds: 0\n  analysis: {stepWeight: 10}\n", "spec.progressDeadlineSeconds", "at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := decodeKind(t, KindCanary, tc.spec)
			expectErrorAt(t, errs, KindCanary, tc.field, tc.msg)
		})
	}
}

func TestMetricTemplate(t *testing.T) {
	objs, errs := decodeKind(t, KindMetricTemplate, `  provider: {type: prometheus, address: "http://prometheus.istio-system:9090"}
  query: |
    100 - sum(rate(istio_requests_total{reporter="destination", destination_workload_namespace="{{ namespace }}",
      destination_workload="{{ target }}", response_code!~"5.*"}[{{ interval }}]))
`)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	mt := objs[0].Spec.(*flaggerv1beta1.MetricTemplate)
	q, err := ParseMetricQuery(mt.GetQuery())
	if err != nil {
		t.Fatal(err)
	}
	s, err := RenderMetricQuery(q, MetricQueryVars{Namespace: "test", Target: "podinfo", Interval: "1m"})
	if err != nil || !strings.Contains(s, `destination_workload_namespace="test"`) || !strings.Contains(s, `[1m]`) {
		t.Errorf("rendered %q, %v", s, err)
	}
	for _, tc := range []struct{ spec, field, msg string }{
		{"  provider: {type: datadog}\n  query: x\n", "spec.provider.type", "must be prometheus"},
		{"  provider: {type: prometheus, secretRef: {name: s}}\n  query: x\n", "spec.provider.secretRef", "not supported"},
		{"  provider: {type: prometheus}\n  query: '{{ nope }}'\n", "spec.query", "invalid template"},
		{"  provider: {type: prometheus}\n", "spec.query", "required"},
	} {
		_, errs := decodeKind(t, KindMetricTemplate, tc.spec)
		expectErrorAt(t, errs, KindMetricTemplate, tc.field, tc.msg)
	}
}

// TestCanaryStatusEncoding writes the status as Flagger does and reads it
// back; user input cannot set it.
func TestCanaryStatusEncoding(t *testing.T) {
	objs, errs := decodeKind(t, KindCanary, "  targetRef: {kind: Service, name: x}\n  service: {port: 80}\n  analysis: {stepWeight: 10}\n")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	o := objs[0]
	o.Status = &flaggerv1beta1.CanaryStatus{Phase: "Progressing", CanaryWeight: proto.Int32(20), FailedChecks: proto.Int32(0),
		Iterations: proto.Int32(0), LastTransitionTime: timestamppb.Now(),
		Conditions: []*flaggerv1beta1.CanaryCondition{{Type: "Promoted", Status: "Unknown", Reason: "Progressing", Message: "New revision detected"}}}
	js, err := Marshal(o, FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"phase": "Progressing"`, `"canaryWeight": 20`, `"failedChecks": 0`, `"iterations": 0`, `"type": "Promoted"`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("status lacks %s:\n%s", want, js)
		}
	}
	back, err := Decode("back", strings.NewReader(string(js)))
	if err != nil {
		t.Fatal(err)
	}
	if back[0].Status != nil {
		t.Error("Decode took the status from input")
	}
	if err := DecodeStatus(back[0], js); err != nil || !proto.Equal(back[0].Status, o.Status) {
		t.Errorf("DecodeStatus: %v, %v", err, back[0].Status)
	}
}
