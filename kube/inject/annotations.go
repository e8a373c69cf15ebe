package inject

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// podSettings is what the pod's annotations ask of its sidecar, checked.
type podSettings struct {
	captureArgs   []string // `weft iptables` flags
	image         string   // "" : Settings.Image
	logLevel      string   // "" : the proxy's default
	resources     corev1.ResourceRequirements
	concurrency   int32
	metadata      map[string]string // proxyMetadata: extra proxy environment
	traceSampling float64           // 0: the proxy's default
	rewriteProbes bool
	readiness     corev1.Probe // timing fields of the proxy's readiness probe
}

// readAnnotations checks every annotation the injector honours and
// returns all problems at once, each naming its annotation.
func readAnnotations(a map[string]string) (*podSettings, error) {
	ps := &podSettings{rewriteProbes: true, image: a[AnnotationProxyImage]}
	var errs []error
	fail := func(name, format string, args ...any) {
		errs = append(errs, &Error{Field: "annotation " + name, Msg: fmt.Sprintf(format, args...)})
	}

	if m, ok := a[AnnotationInterception]; ok && m != InterceptionRedirect {
		fail(AnnotationInterception, "%q is not supported; weft captures with %s", m, InterceptionRedirect)
	}
	ps.captureArgs = captureArgs(a, fail)

	if v, ok := a[AnnotationRewriteProbes]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			fail(AnnotationRewriteProbes, "%q is neither \"true\" nor \"false\"", v)
		}
		ps.rewriteProbes = err != nil || b
	}
	if v, ok := a[AnnotationLogLevel]; ok {
		lvl, known := logLevels[strings.ToLower(v)]
		if !known {
			fail(AnnotationLogLevel, "%q is not a log level (trace, debug, info, warning, error, critical, off)", v)
		}
		ps.logLevel = lvl
	}

	ps.resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse(ProxyDefaultCPU), corev1.ResourceMemory: resource.MustParse(ProxyDefaultMemory),
	}}
	for _, q := range []struct {
		name string
		res  corev1.ResourceName
		list *corev1.ResourceList
	}{
		{AnnotationProxyCPU, corev1.ResourceCPU, &ps.resources.Requests},
		{AnnotationProxyMemory, corev1.ResourceMemory, &ps.resources.Requests},
		{AnnotationProxyCPULimit, corev1.ResourceCPU, &ps.resources.Limits},
		{AnnotationProxyMemLimit, corev1.ResourceMemory, &ps.resources.Limits},
	} {
		v, ok := a[q.name]
		if !ok {
			continue
		}
		qty, err := resource.ParseQuantity(v)
		if err != nil {
			fail(q.name, "%q is not a quantity (e.g. 100m, 128Mi)", v)
			continue
		}
		if *q.list == nil {
			*q.list = corev1.ResourceList{}
		}
		(*q.list)[q.res] = qty
	}

	// Istio's defaults for the proxy's readiness probe.
	ps.readiness = corev1.Probe{InitialDelaySeconds: 0, PeriodSeconds: 15, FailureThreshold: 4, TimeoutSeconds: 3}
	for _, r := range []struct {
		name string
		dst  *int32
		min  int32
	}{
		{AnnotationReadinessDelay, &ps.readiness.InitialDelaySeconds, 0},
		{AnnotationReadinessPer, &ps.readiness.PeriodSeconds, 1},
		{AnnotationReadinessFail, &ps.readiness.FailureThreshold, 1},
	} {
		if v, ok := a[r.name]; ok {
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil || int32(n) < r.min {
				fail(r.name, "%q is not a whole number >= %d", v, r.min)
				continue
			}
			*r.dst = int32(n)
		}
	}

	if v, ok := a[AnnotationProxyConfig]; ok {
		pc, err := parseProxyConfig(v)
		if err != nil {
			fail(AnnotationProxyConfig, "%v", err)
		} else {
			if c := pc.GetConcurrency(); c != nil {
				if c.GetValue() < 0 {
					fail(AnnotationProxyConfig, "concurrency %d is negative", c.GetValue())
				}
				ps.concurrency = c.GetValue()
			}
			ps.metadata = pc.GetProxyMetadata()
			if s := pc.GetTracing().GetSampling(); s < 0 || s > 100 {
				fail(AnnotationProxyConfig, "tracing.sampling %v: want 0 to 100", s)
			} else {
				ps.traceSampling = s
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ps, nil
}

// logLevels maps Istio's proxy log levels to weft's.
var logLevels = map[string]string{
	"trace": "debug", "debug": "debug", "info": "info", "warning": "warn", "warn": "warn",
	"error": "error", "critical": "error", "off": "error",
}

// parseProxyConfig reads proxy.istio.io/config (YAML or JSON of Istio's
// ProxyConfig). Fields weft has no use for are accepted and ignored;
// unknown fields are errors, as they are typos.
func parseProxyConfig(v string) (*meshv1alpha1.ProxyConfig, error) {
	js, err := yaml.YAMLToJSON([]byte(v))
	if err != nil {
		return nil, fmt.Errorf("not YAML: %v", err)
	}
	pc := &meshv1alpha1.ProxyConfig{}
	if string(js) == "null" {
		return pc, nil
	}
	if err := protojson.Unmarshal(js, pc); err != nil {
		return nil, fmt.Errorf("not a ProxyConfig: %v", err)
	}
	return pc, nil
}

// captureArgs turns the traffic.sidecar.istio.io/* annotations into
// `weft iptables` flags, with Istio's defaults: every outbound address and
// every inbound port captured, the proxy's own ports never.
func captureArgs(a map[string]string, fail func(name, format string, args ...any)) []string {
	args := []string{
		CmdIPTables,
		fmt.Sprintf("%s=%d", FlagProxyPort, OutboundCapturePort),
		fmt.Sprintf("%s=%d", FlagInboundCapturePort, InboundCapturePort),
		fmt.Sprintf("%s=%d", FlagProxyUID, ProxyUID),
	}
	cidrs := func(name, def string) (string, bool) {
		v, ok := a[name]
		if !ok {
			return def, def != ""
		}
		v = strings.TrimSpace(v)
		if v == "*" {
			return v, true
		}
		list := splitList(v)
		for _, c := range list {
			if _, _, err := net.ParseCIDR(c); err != nil {
				if net.ParseIP(c) == nil {
					fail(name, "%q is not a CIDR (e.g. 10.0.0.0/8)", c)
				}
			}
		}
		return strings.Join(list, ","), true
	}
	ports := func(name, def string, always ...int) (string, bool) {
		v, ok := a[name]
		if !ok && def != "" {
			return def, true
		}
		v = strings.TrimSpace(v)
		if v == "*" {
			return v, true
		}
		set := map[int]bool{}
		for _, p := range always {
			set[p] = true
		}
		for _, s := range splitList(v) {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 65535 {
				fail(name, "%q is not a port (1-65535)", s)
				continue
			}
			set[n] = true
		}
		if len(set) == 0 {
			return "", ok
		}
		list := make([]int, 0, len(set))
		for p := range set {
			list = append(list, p)
		}
		sort.Ints(list)
		out := make([]string, len(list))
		for i, p := range list {
			out[i] = strconv.Itoa(p)
		}
		return strings.Join(out, ","), true
	}
	for _, f := range []flagValue{
		pair(FlagIncludeOutboundCIDRs)(cidrs(AnnotationIncludeOutIPs, "*")),
		pair(FlagExcludeOutboundCIDRs)(cidrs(AnnotationExcludeOutIPs, "")),
		pair(FlagIncludeInboundPorts)(ports(AnnotationIncludeInPorts, "*")),
		pair(FlagExcludeInboundPorts)(ports(AnnotationExcludeInPorts, "", StatusPort, HealthPort, StatsPort)),
		pair(FlagIncludeOutboundPorts)(ports(AnnotationIncludeOutPort, "")),
		pair(FlagExcludeOutboundPorts)(ports(AnnotationExcludeOutPort, "")),
	} {
		if f.ok {
			args = append(args, f.flag+"="+f.v)
		}
	}
	if _, ok := a[AnnotationKubevirtIfaces]; ok {
		// Istio's -k: inbound from a VM's bridge interfaces captured as
		// from outside. weft iptables has no such option yet; a VM behind
		// KubeVirt's masquerade binding needs none (see docs/kubernetes.md).
		fail(AnnotationKubevirtIfaces, "not supported by weft iptables; use KubeVirt's masquerade interface binding, whose traffic the pod's rules capture")
	}
	return args
}

// splitList reads Istio's comma-separated annotation values.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// flagValue is one `weft iptables` flag and whether to pass it.
type flagValue = struct {
	flag string
	v    string
	ok   bool
}

// pair attaches a flag name to a (value, present) result.
func pair(flag string) func(string, bool) flagValue {
	return func(v string, ok bool) flagValue { return flagValue{flag, v, ok} }
}
