package cluster

import (
	"github.com/weft-mesh/weft/proxy/contract"
	"github.com/weft-mesh/weft/proxy/http1"
	"github.com/weft-mesh/weft/proxy/mtls"
	"math"

	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// HTTPProtocolOptionsKey is the typed_extension_protocol_options key of the
// upstream HTTP protocol options.
const HTTPProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// Upstream protocols of HTTPSettings.Protocol.
const (
	// ProtocolHTTP1 is the default: HTTP/1.1 (the forwarder may still use
	// h2c for gRPC, which is use_downstream_protocol_config's behaviour).
	ProtocolHTTP1 = "HTTP1"
	// ProtocolHTTP2 is explicit_http_config.http2_protocol_options: cleartext
	// HTTP/2 with prior knowledge for every request.
	ProtocolHTTP2 = "HTTP2"
	// ProtocolDownstream is use_downstream_protocol_config: the upstream
	// speaks what the downstream spoke; Transport returns the HTTP/1.1 one.
	ProtocolDownstream = "DOWNSTREAM"
)

// HTTPSettings are a cluster's upstream connection settings. Clusters with
// equal settings share one transport and its connection pool, across
// configuration swaps too.
type HTTPSettings struct {
	// ConnectTimeout is the cluster's connect_timeout.
	ConnectTimeout time.Duration
	// IdleTimeout closes idle connections (0: the State's default).
	IdleTimeout time.Duration
	// MaxConnsPerHost is circuit_breakers' max_connections when set,
	// applied per endpoint (0: unlimited).
	MaxConnsPerHost int
	// MaxRequestsPerConnection closes a connection after that many requests
	// (0: unlimited).
	MaxRequestsPerConnection uint32
	// Protocol is ProtocolHTTP1, ProtocolHTTP2 or ProtocolDownstream.
	Protocol string
	// TLS identifies the transport socket's TLS settings (mtls.Upstream's
	// Key), "" for plaintext: a TLS and a plaintext connection to one
	// address never share a pool, nor do different TLS settings.
	TLS string
	// SourceAddress is upstream_bind_config.source_address: the local IP
	// upstream connections are made from, "" for the system's choice. A
	// captured sidecar reaches its own app from 127.0.0.6, which the
	// capture rules let through.
	SourceAddress string
}

func httpSettings(c *clusterv3.Cluster, out *Cluster) (HTTPSettings, error) {
	s := HTTPSettings{ConnectTimeout: out.ConnectTimeout, Protocol: ProtocolHTTP1}
	var err error
	if s.SourceAddress, err = sourceAddress(c.GetUpstreamBindConfig()); err != nil {
		return s, fmt.Errorf("upstream_bind_config.%w", err)
	}
	for _, th := range c.GetCircuitBreakers().GetThresholds() {
		// The maximum (Istio's default) is no cap: the transport then keeps
		// no per-host connection count at all.
		if th.GetPriority() == 0 && th.MaxConnections != nil && th.GetMaxConnections().GetValue() != math.MaxUint32 {
			s.MaxConnsPerHost = int(th.GetMaxConnections().GetValue())
		}
	}
	for k, a := range c.GetTypedExtensionProtocolOptions() {
		field := fmt.Sprintf("typed_extension_protocol_options[%q]", k)
		if k != HTTPProtocolOptionsKey {
			return s, fmt.Errorf("%s: unsupported extension", field)
		}
		o := &httpv3.HttpProtocolOptions{}
		if err := a.UnmarshalTo(o); err != nil {
			return s, fmt.Errorf("%s: %w", field, err)
		}
		if err := contract.CheckFields(o, "common_http_protocol_options", "explicit_http_config", "use_downstream_protocol_config"); err != nil {
			return s, fmt.Errorf("%s.%w", field, err)
		}
		if co := o.GetCommonHttpProtocolOptions(); co != nil {
			if err := contract.CheckFields(co, "idle_timeout", "max_requests_per_connection"); err != nil {
				return s, fmt.Errorf("%s.common_http_protocol_options.%w", field, err)
			}
			if d := co.GetIdleTimeout(); d != nil {
				if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
					return s, fmt.Errorf("%s.common_http_protocol_options.idle_timeout: must be a duration", field)
				}
				// Envoy's 0 disables the timeout; a day is as good.
				s.IdleTimeout = d.AsDuration()
				if s.IdleTimeout == 0 {
					s.IdleTimeout = 24 * time.Hour
				}
			}
			s.MaxRequestsPerConnection = co.GetMaxRequestsPerConnection().GetValue()
		}
		switch {
		case o.GetExplicitHttpConfig() != nil:
			e := o.GetExplicitHttpConfig()
			if err := contract.CheckFields(e, "http_protocol_options", "http2_protocol_options"); err != nil {
				return s, fmt.Errorf("%s.explicit_http_config.%w", field, err)
			}
			if e.GetHttp2ProtocolOptions() != nil {
				s.Protocol = ProtocolHTTP2
			}
		case o.GetUseDownstreamProtocolConfig() != nil:
			if err := contract.CheckFields(o.GetUseDownstreamProtocolConfig(), "http_protocol_options", "http2_protocol_options"); err != nil {
				return s, fmt.Errorf("%s.use_downstream_protocol_config.%w", field, err)
			}
			s.Protocol = ProtocolDownstream
		}
	}
	return s, nil
}

// sourceAddress validates upstream_bind_config: a source_address with an
// IP and port 0 (any).
func sourceAddress(b *corev3.BindConfig) (string, error) {
	if b == nil {
		return "", nil
	}
	if err := contract.CheckFields(b, "source_address"); err != nil {
		return "", err
	}
	sa := b.GetSourceAddress()
	if sa == nil {
		return "", fmt.Errorf("source_address: required")
	}
	if err := contract.CheckFields(sa, "address", "port_value", "protocol"); err != nil {
		return "", fmt.Errorf("source_address.%w", err)
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return "", fmt.Errorf("source_address.address: %q is not an IP address", sa.GetAddress())
	}
	if sa.GetPortValue() != 0 {
		return "", fmt.Errorf("source_address.port_value: must be 0 (each connection takes a free port)")
	}
	if sa.GetProtocol() != corev3.SocketAddress_TCP {
		return "", fmt.Errorf("source_address.protocol: unsupported %s", sa.GetProtocol())
	}
	return ip.String(), nil
}

// Transport returns the cluster's upstream transport: HTTP/1.1 (cleartext
// HTTP/2 with prior knowledge when the cluster's explicit_http_config asks
// for it) honouring connect_timeout, max_connections as a per-endpoint
// connection cap (requests beyond it wait for a connection), idle_timeout
// and max_requests_per_connection. It is shared by every cluster with the
// same settings, across configuration swaps.
func (c *Cluster) Transport() http.RoundTripper { return c.transport.rt }

// transport is one pooled upstream transport.
type transport struct {
	t  *http.Transport // net/http's, for HTTP/2 and upgrades
	h1 *http1.Transport
	rt http.RoundTripper

	settings HTTPSettings
	opts     StateOptions
	td       *tlsDialer
	// TLS transports only: the socket's settings, the configs for raw TCP
	// and HTTP/2, and the HTTP/2 transport, made on first use (gRPC).
	tls    *mtls.Upstream
	rawTLS *tls.Config
	h2TLS  *tls.Config
	h2mu   sync.Mutex // serializes making h2t
	h2t    atomic.Pointer[http.Transport]
}

func newTransport(s HTTPSettings, up *mtls.Upstream, o StateOptions) *transport {
	d := &net.Dialer{Timeout: s.ConnectTimeout, KeepAlive: 30 * time.Second}
	if s.SourceAddress != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(s.SourceAddress)}
	}
	td := &tlsDialer{d: d, timeout: s.ConnectTimeout, log: o.Log}
	dial := d.DialContext
	var h1TLS, h2TLS, rawTLS *tls.Config
	if up != nil {
		h1TLS, h2TLS, rawTLS = tlsConfigs(up, o.Secrets)
		if s.Protocol == ProtocolHTTP2 {
			h1TLS = h2TLS // this transport speaks HTTP/2 to every request
		}
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return td.dial(ctx, network, addr, h1TLS)
		}
	}
	idle := s.IdleTimeout
	if idle == 0 {
		idle = o.IdleConnTimeout
	}
	protos := new(http.Protocols)
	if s.Protocol == ProtocolHTTP2 {
		protos.SetUnencryptedHTTP2(true)
	} else {
		protos.SetHTTP1(true)
	}
	t := &http.Transport{
		Proxy:               nil, // the sidecar is itself the app's proxy
		DialContext:         dial,
		Protocols:           protos,
		MaxIdleConnsPerHost: o.MaxIdleConnsPerHost,
		MaxConnsPerHost:     s.MaxConnsPerHost,
		IdleConnTimeout:     idle,
		DisableCompression:  true,
		WriteBufferSize:     32 << 10,
		ReadBufferSize:      32 << 10,
	}
	out := &transport{t: t, rt: t, tls: up, td: td, rawTLS: rawTLS, h2TLS: h2TLS, settings: s, opts: o}
	if s.Protocol == ProtocolHTTP2 {
		return out
	}
	// HTTP/1.1 goes through the proxy's own client: the exchange runs on
	// the request's goroutine, with no hand-off to connection goroutines.
	out.h1 = http1.NewTransport(http1.TransportOptions{
		Dial:               dial,
		MaxIdlePerHost:     o.MaxIdleConnsPerHost,
		MaxConnsPerHost:    s.MaxConnsPerHost,
		IdleTimeout:        idle,
		MaxRequestsPerConn: s.MaxRequestsPerConnection,
	})
	out.rt = out.h1
	if s.MaxRequestsPerConnection == 1 {
		t.DisableKeepAlives = true
	}
	return out
}

// dial connects to addr with cfg (nil: plaintext).
func (t *transport) dial(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
	return t.td.dial(ctx, network, addr, cfg)
}

// h2 returns the HTTP/2-over-TLS transport of a TLS transport, for gRPC.
func (t *transport) h2() http.RoundTripper {
	if h := t.h2t.Load(); h != nil {
		return h
	}
	if t.settings.Protocol == ProtocolHTTP2 {
		return t.t // already HTTP/2 over TLS with ALPN h2
	}
	t.h2mu.Lock()
	defer t.h2mu.Unlock()
	if h := t.h2t.Load(); h != nil {
		return h
	}
	idle := t.settings.IdleTimeout
	if idle == 0 {
		idle = t.opts.IdleConnTimeout
	}
	protos := new(http.Protocols)
	protos.SetUnencryptedHTTP2(true) // HTTP/2 framing over the TLS conn the dialer made
	cfg := t.h2TLS
	h := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return t.td.dial(ctx, network, addr, cfg)
		},
		Protocols:           protos,
		MaxIdleConnsPerHost: t.opts.MaxIdleConnsPerHost,
		IdleConnTimeout:     idle,
		DisableCompression:  true,
	}
	t.h2t.Store(h)
	return h
}

func (t *transport) closeIdle() {
	t.t.CloseIdleConnections()
	if t.h1 != nil {
		t.h1.CloseIdleConnections()
	}
	if h := t.h2t.Load(); h != nil {
		h.CloseIdleConnections()
	}
}

// retire closes idle connections now and again after delay.
func (t *transport) retire(delay time.Duration) {
	t.closeIdle()
	time.AfterFunc(delay, t.closeIdle)
}
