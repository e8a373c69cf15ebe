package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weft-mesh/weft/proxy/contract"
	"github.com/weft-mesh/weft/proxy/lb"
	"github.com/weft-mesh/weft/proxy/mtls"
	"github.com/weft-mesh/weft/proxy/sds"
)

// TransportSocketMatchKey is the endpoint filter_metadata key that
// transport_socket_matches compare with.
const TransportSocketMatchKey = "envoy.transport_socket_match"

// socket is one transport socket of a cluster.
type socket struct {
	name  string
	match map[string]*structpb.Value // nil for the cluster's transport_socket
	tls   *mtls.Upstream             // nil: plaintext
	field string                     // the socket's field, for errors
}

// parseSockets reads transport_socket_matches and transport_socket into
// out.sockets: the matches in order, then the default.
func parseSockets(c *clusterv3.Cluster, out *Cluster) error {
	for i, m := range c.GetTransportSocketMatches() {
		field := fmt.Sprintf("transport_socket_matches[%d]", i)
		if err := contract.CheckFields(m, "name", "match", "transport_socket"); err != nil {
			return fmt.Errorf("%s.%w", field, err)
		}
		if m.GetName() == "" {
			return fmt.Errorf("%s.name: empty", field)
		}
		up, err := mtls.ParseUpstream(m.GetTransportSocket())
		if err != nil {
			return fmt.Errorf("%s.transport_socket.%w", field, err)
		}
		out.sockets = append(out.sockets, socket{name: m.GetName(), match: m.GetMatch().GetFields(), tls: up, field: field + ".transport_socket"})
	}
	up, err := mtls.ParseUpstream(c.GetTransportSocket())
	if err != nil {
		return fmt.Errorf("transport_socket.%w", err)
	}
	out.TLS = up
	out.sockets = append(out.sockets, socket{name: "default", tls: up, field: "transport_socket"})
	return nil
}

// socketFor returns the index of the socket an endpoint with transport
// socket match metadata md uses: the first match whose every key has the
// same value in md, else the default.
func (c *Cluster) socketFor(md map[string]*structpb.Value) int {
	last := len(c.sockets) - 1
	for i := range last {
		ok := true
		for k, want := range c.sockets[i].match {
			if got, has := md[k]; !has || !proto.Equal(got, want) {
				ok = false
				break
			}
		}
		if ok {
			return i
		}
	}
	return last
}

// socketOf records the socket of endpoint ep with metadata md when it is
// not the one endpoints without metadata use.
func (c *Cluster) socketOf(ep *lb.Endpoint, md *corev3.Metadata) {
	i := c.socketFor(md.GetFilterMetadata()[TransportSocketMatchKey].GetFields())
	if i == c.socketFor(nil) {
		return
	}
	if c.epSocket == nil {
		c.epSocket = map[*lb.Endpoint]int{}
	}
	c.epSocket[ep] = i
}

// uniformSocket returns the socket every endpoint uses, if there are
// endpoints and they all use the same one. Clusters without endpoints of
// their own (ORIGINAL_DST) use the default socket.
func (c *Cluster) uniformSocket() (int, bool) {
	if len(c.Endpoints) == 0 {
		return 0, false
	}
	first := -1
	for _, e := range c.Endpoints {
		i, ok := c.epSocket[e]
		if !ok {
			i = c.socketFor(nil)
		}
		if first >= 0 && i != first {
			return 0, false
		}
		first = i
	}
	return first, true
}

// settings returns the HTTP settings of socket i.
func (c *Cluster) settings(i int) HTTPSettings {
	s := c.HTTP
	s.TLS = ""
	if up := c.sockets[i].tls; up != nil {
		s.TLS = up.Key
	}
	return s
}

// Secrets lists the SDS secrets the cluster's TLS sockets need, with the
// referring field relative to the cluster.
func (c *Cluster) Secrets() []mtls.SecretRef {
	var out []mtls.SecretRef
	for _, s := range c.sockets {
		if s.tls == nil {
			continue
		}
		for _, r := range s.tls.Secrets() {
			r.Field = s.field + "." + r.Field
			out = append(out, r)
		}
	}
	return out
}

// TLSFor returns the TLS settings used to reach ep, nil for plaintext.
func (c *Cluster) TLSFor(ep *lb.Endpoint) *mtls.Upstream {
	if i, ok := c.epSocket[ep]; ok {
		return c.sockets[i].tls
	}
	return c.sockets[c.socketFor(nil)].tls
}

// transportOf returns the transport reaching ep.
func (c *Cluster) transportOf(ep *lb.Endpoint) *transport {
	if c.epTrans != nil {
		if t := c.epTrans[ep]; t != nil {
			return t
		}
	}
	return c.transport
}

// TransportFor returns the transport to send a request to ep with: the
// cluster's transport for ep's socket (TLS or plaintext), HTTP/2 when h2 is
// set (gRPC). It returns nil for h2 to a plaintext endpoint: the caller's
// shared h2c transport serves those, unless the cluster connects from a
// source address of its own.
func (c *Cluster) TransportFor(ep *lb.Endpoint, h2 bool) http.RoundTripper {
	t := c.transportOf(ep)
	if !h2 {
		return t.rt
	}
	if t.tls == nil && t.settings.SourceAddress == "" {
		return nil
	}
	return t.h2()
}

// UpgradeTransport returns the transport for an HTTP/1.1 request that
// asks to switch protocols (WebSocket): net/http's, whose 101 response
// body is the upgraded connection, over ep's socket (TLS or plaintext).
func (c *Cluster) UpgradeTransport(ep *lb.Endpoint) http.RoundTripper {
	return c.transportOf(ep).t
}

// Dial opens a connection to ep for the TCP proxy with ep's transport
// socket: TCP, then the TLS handshake when the socket is TLS, both within
// the cluster's connect_timeout. A failure is a *net.OpError with Op
// "dial"; TLS failures are logged.
func (c *Cluster) Dial(ctx context.Context, ep *lb.Endpoint) (net.Conn, error) {
	t := c.transportOf(ep)
	return t.dial(ctx, "tcp", ep.Address, t.rawTLS)
}

// tlsDialer dials TCP and then TLS with a config, as one connect attempt.
type tlsDialer struct {
	d       *net.Dialer
	timeout time.Duration
	log     *slog.Logger
}

func (td *tlsDialer) dial(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
	if cfg == nil {
		return td.d.DialContext(ctx, network, addr)
	}
	ctx, cancel := context.WithTimeout(ctx, td.timeout)
	defer cancel()
	raw, err := td.d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		td.log.Warn("upstream TLS handshake failed", "endpoint", addr, "sni", cfg.ServerName, "err", err)
		// A dial error, so the request fails as a connect failure (UF).
		return nil, &net.OpError{Op: "dial", Net: network, Addr: raw.RemoteAddr(), Err: fmt.Errorf("TLS handshake: %w", err)}
	}
	return tc, nil
}

// tlsConfigs are a TLS transport's client configs: for HTTP/1.1 (the
// configured ALPN minus h2, which that transport does not speak), for
// HTTP/2 (ALPN h2), and for raw TCP (the configured ALPN).
func tlsConfigs(up *mtls.Upstream, store *sds.Store) (h1, h2, raw *tls.Config) {
	var alpn1 []string
	for _, p := range up.ALPN() {
		if p != "h2" {
			alpn1 = append(alpn1, p)
		}
	}
	return up.ClientConfig(store, alpn1), up.ClientConfig(store, []string{"h2"}), up.ClientConfig(store, up.ALPN())
}
