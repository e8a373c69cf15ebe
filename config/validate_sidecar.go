package config

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// exportTo checks the exportTo of a VirtualService, DestinationRule or
// ServiceEntry: "." (its own namespace), "*" (every namespace), "~"
// (none, alone) or namespace names.
func (v *validator) exportTo(p path, to []string) {
	for i, t := range to {
		switch {
		case t == "." || t == "*":
		case t == "~":
			if len(to) > 1 {
				v.errorf(p.index(i), `"~" (exported nowhere) cannot be combined with other entries`)
			}
		default:
			if !isDNS1123Label(t) {
				v.errorf(p.index(i), "invalid namespace %q: use \".\", \"*\", \"~\" or a namespace name", t)
			}
		}
	}
}

// sidecar checks a Sidecar. weft scopes what a proxy receives by its
// egress hosts and takes its outboundTrafficPolicy mode; what it could not
// enforce (custom ingress or egress listeners, an egress proxy) is
// refused rather than ignored.
func (v *validator) sidecar(sc *networking.Sidecar) {
	spec := path("spec")
	v.matchLabels(spec.field("workloadSelector").field("labels"), sc.GetWorkloadSelector().GetLabels())
	if len(sc.GetEgress()) == 0 && sc.GetOutboundTrafficPolicy() == nil {
		v.errorf(spec, "empty Sidecar: give egress hosts or an outboundTrafficPolicy")
	}
	if len(sc.GetIngress()) > 0 {
		v.errorf(spec.field("ingress"), "not supported: weft derives a sidecar's inbound listeners from its services; remove ingress")
	}
	if sc.GetInboundConnectionPool() != nil {
		v.errorf(spec.field("inboundConnectionPool"), "not supported")
	}
	for i, eg := range sc.GetEgress() {
		p := spec.field("egress").index(i)
		if eg.GetPort() != nil {
			v.errorf(p.field("port"), "not supported: weft scopes egress by host only; remove port (the hosts then apply to every port)")
		}
		if eg.GetBind() != "" {
			v.errorf(p.field("bind"), "not supported")
		}
		if eg.GetCaptureMode() != networking.CaptureMode_DEFAULT {
			v.errorf(p.field("captureMode"), "not supported")
		}
		if len(eg.GetHosts()) == 0 {
			v.errorf(p.field("hosts"), "at least one host is required")
		}
		for j, h := range eg.GetHosts() {
			v.egressHost(p.field("hosts").index(j), h)
		}
	}
	if otp := sc.GetOutboundTrafficPolicy(); otp != nil && otp.GetEgressProxy() != nil {
		v.errorf(spec.field("outboundTrafficPolicy").field("egressProxy"), "not supported")
	}
}

// egressHost checks an egress host: NAMESPACE/DNSNAME, where NAMESPACE is
// a namespace, "." (the Sidecar's), "*" (any) or "~" (none), and DNSNAME
// a host, a wildcard such as *.example.com, or "*".
func (v *validator) egressHost(p path, h string) {
	ns, host, ok := strings.Cut(h, "/")
	if !ok {
		v.errorf(p, "invalid egress host %q: use NAMESPACE/HOST, e.g. ./* or istio-system/*", h)
		return
	}
	if ns != "." && ns != "*" && ns != "~" && !isDNS1123Label(ns) {
		v.errorf(p, "invalid egress host %q: the namespace part is \".\", \"*\", \"~\" or a namespace name", h)
		return
	}
	if msg := checkHost(host); msg != "" {
		v.errorf(p, "invalid egress host %q: %s", h, msg)
	}
}
