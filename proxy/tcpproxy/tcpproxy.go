// Package tcpproxy implements Envoy's envoy.filters.network.tcp_proxy for the
// weft proxy: each accepted connection goes to an endpoint of a cluster
// (drawn by weight among the filter's weighted_clusters), and bytes are
// copied both ways until both sides have finished, half-close included.
package tcpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"

	"github.com/weft-mesh/weft/proxy/cluster"
	"github.com/weft-mesh/weft/proxy/lb"
	"github.com/weft-mesh/weft/proxy/mtls"
)

// Response flags a connection's Result can carry, as Envoy names them.
const (
	FlagNoCluster      = "NC" // the chosen cluster does not exist
	FlagNoHealthy      = "UH" // the cluster has no endpoint
	FlagConnectFailure = "UF" // connecting to the endpoint failed
	FlagOverflow       = "UO" // the cluster's max_connections is reached
)

// Result describes one proxied connection, for access logs and telemetry.
type Result struct {
	Listener string
	Cluster  string
	Upstream string // endpoint address, "" when none was picked
	// Endpoint is the picked endpoint, nil when none was.
	Endpoint *lb.Endpoint
	// Start is when the connection was accepted.
	Start time.Time
	// BytesReceived were read from the downstream (and sent upstream);
	// BytesSent were written to the downstream (read from upstream), as
	// Envoy's %BYTES_RECEIVED% and %BYTES_SENT%.
	BytesReceived int64
	BytesSent     int64
	Duration      time.Duration
	Flags         string
	// MutualTLS is true when the downstream connection was TLS with a
	// verified client certificate; PeerPrincipal is that certificate's URI
	// SAN, "" otherwise.
	MutualTLS     bool
	PeerPrincipal string
}

// Lookup returns the named cluster of the configuration a connection was
// accepted under, or nil.
type Lookup func(name string) *cluster.Cluster

// Serve proxies the downstream connection down per s and closes it when done.
// The cluster is looked up with clusters; its circuit breaker (max_connections)
// and outlier detection apply: the connect outcome is reported to Observe
// (a failure as a gateway error). The endpoint is picked with an empty hash.
// Serve returns when both directions have finished.
func Serve(down net.Conn, listener string, s *Spec, clusters Lookup) *Result {
	return ServeObserved(down, listener, s, clusters, nil)
}

// ServeObserved is Serve, calling opened (when not nil) with the Result so
// far once the upstream connection is established and before bytes flow,
// so telemetry can count open connections. opened must not retain it.
//
// A downstream *tls.Conn must have completed its handshake (the runtime
// does it before its network filters run): the Result then carries
// MutualTLS and the peer's SPIFFE ID.
func ServeObserved(down net.Conn, listener string, s *Spec, clusters Lookup, opened func(*Result)) *Result {
	start := time.Now()
	res := &Result{Listener: listener, Start: start}
	defer func() { res.Duration = time.Since(start) }()
	defer down.Close()
	if tc, ok := down.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		res.PeerPrincipal, res.MutualTLS = mtls.Peer(&cs)
	}

	res.Cluster = s.PickCluster()
	c := clusters(res.Cluster)
	if c == nil {
		res.Flags = FlagNoCluster
		return res
	}
	if !c.AdmitConnection() {
		res.Flags = FlagOverflow
		return res
	}
	defer c.ReleaseConnection()
	ep := c.PickConn(down)
	if ep == nil {
		res.Flags = FlagNoHealthy
		return res
	}
	res.Upstream, res.Endpoint = ep.Address, ep
	ep.Begin()
	defer ep.End()
	// The cluster dials with ep's transport socket: TLS to a mesh peer.
	up, err := c.Dial(context.Background(), ep)
	if err != nil {
		c.Observe(ep, 0, true)
		res.Flags = FlagConnectFailure
		return res
	}
	c.Observe(ep, 0, false)
	defer up.Close()
	if opened != nil {
		opened(res)
	}
	res.BytesReceived, res.BytesSent = Pipe(down, up)
	return res
}

// Pipe copies a to b and b to a until both directions end, propagating a
// half-close (FIN) from either side to the other. If a direction fails
// (reset, not EOF), both connections are closed so the other ends too. It
// returns the bytes copied from a to b and from b to a.
func Pipe(a, b net.Conn) (aToB, bToA int64) {
	done := make(chan int64, 1)
	go func() { done <- copyHalf(b, a) }()
	bToA = copyHalf(a, b)
	aToB = <-done
	return aToB, bToA
}

// copyHalf copies src to dst; on EOF it half-closes dst, on error it closes
// both. With *net.TCPConn on both sides io.Copy splices on Linux.
func copyHalf(dst, src net.Conn) int64 {
	n, err := io.Copy(dst, src)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		dst.Close()
		src.Close()
		return n
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
		if cw.CloseWrite() == nil {
			return n
		}
	}
	dst.Close()
	return n
}
