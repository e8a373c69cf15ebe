// Package originaldst implements the CLUSTER_PROVIDED load balancer of an
// ORIGINAL_DST cluster (Istio's PASSTHROUGH, and a captured sidecar's
// PassthroughCluster): the upstream is the request's own destination, the
// original destination of its redirected connection, else its authority
// host:port.
package originaldst

import (
	"net"
	"net/http"
	"net/netip"

	"github.com/weft-mesh/weft/proxy/capture"
	"github.com/weft-mesh/weft/proxy/lb"
)

// DefaultHeader is the header Envoy reads the destination from when
// original_dst_lb_config.use_http_header is set without a header name.
const DefaultHeader = "x-envoy-original-dst-host"

// Balancer picks the request's destination. It is immutable and keeps no
// per-destination state: every pick returns a fresh Endpoint.
type Balancer struct {
	// Header, when set, names a request header holding "host:port" that
	// overrides the authority.
	Header string
}

// Pick implements lb.Balancer. The destination is, in order: the header
// when configured and present; the original destination of the request's
// connection when it was redirected by the capture rules (as Envoy, which
// connects to the downstream connection's restored local address); else
// the request's authority, where weft's local mode (no capture, the app
// addressing its sidecar as HTTP proxy) has it. It returns nil for a nil
// request (TCP connections pick with cluster.PickConn) and for a request
// without a usable destination. An authority without a port gets port 80.
func (b *Balancer) Pick(r *http.Request, _ lb.Hash) *lb.Endpoint {
	if r == nil {
		return nil
	}
	dst := ""
	if b.Header != "" {
		dst = r.Header.Get(b.Header)
	}
	if dst == "" {
		if ap, ok := capture.DestinationFrom(r.Context()); ok {
			return Endpoint(ap)
		}
	}
	if dst == "" {
		dst = r.Host
		if r.URL != nil && r.URL.Host != "" {
			dst = r.URL.Host
		}
	}
	if dst == "" {
		return nil
	}
	if host, port, err := net.SplitHostPort(dst); err == nil {
		if host == "" || port == "" {
			return nil
		}
	} else {
		dst = net.JoinHostPort(trimBrackets(dst), "80")
	}
	return &lb.Endpoint{Address: dst, Weight: 1}
}

// Endpoint is the endpoint of an original destination.
func Endpoint(dst netip.AddrPort) *lb.Endpoint {
	return &lb.Endpoint{Address: dst.String(), Weight: 1}
}

func trimBrackets(h string) string {
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		return h[1 : len(h)-1]
	}
	return h
}
