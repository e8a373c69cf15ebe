// Package originaldst implements the CLUSTER_PROVIDED load balancer of an
// ORIGINAL_DST cluster (Istio's PASSTHROUGH): the upstream is the request's
// own destination, its authority host:port.
package originaldst

import (
	"net"
	"net/http"

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

// Pick implements lb.Balancer. It returns nil for a nil request (a TCP
// connection: weft has no original-destination socket option support) and
// for a request without a usable authority. An authority without a port
// gets port 80.
func (b *Balancer) Pick(r *http.Request, _ lb.Hash) *lb.Endpoint {
	if r == nil {
		return nil
	}
	dst := ""
	if b.Header != "" {
		dst = r.Header.Get(b.Header)
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

func trimBrackets(h string) string {
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		return h[1 : len(h)-1]
	}
	return h
}
