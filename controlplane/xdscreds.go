package controlplane

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weft-mesh/weft/ca"
)

// The xDS listener speaks TLS to whoever starts TLS, asking for (not
// requiring) a client certificate from the mesh CA: a proxyless gRPC
// application authenticates with one (xds/server.PeerCertAuth), since it
// cannot send a join token. On a loopback address the listener also takes
// plaintext, told apart from TLS by the connection's first byte, for the
// local sidecars that present a join token; elsewhere TLS is required.

// sniffHandshakeTimeout bounds how long a connection may stay silent
// before its first byte says which it speaks.
const sniffHandshakeTimeout = 10 * time.Second

// xdsTLSConfig is the xDS serving certificate's configuration, verifying
// client certificates when given.
func (c *ControlPlane) xdsTLSConfig(sc *ca.ServerCert) *tls.Config {
	conf := sc.TLSConfig()
	conf.ClientAuth = tls.VerifyClientCertIfGiven
	conf.ClientCAs = c.ca.Roots()
	return conf
}

// xdsCreds returns the xDS listener's transport: TLS, or (loopback) TLS
// or plaintext.
func xdsCreds(conf *tls.Config, plaintextToo bool) grpc.ServerOption {
	tc := credentials.NewTLS(conf)
	if !plaintextToo {
		return grpc.Creds(tc)
	}
	return grpc.Creds(&sniffCreds{TransportCredentials: tc})
}

// sniffCreds serves TLS to connections that start with a TLS record and
// plaintext to the others.
type sniffCreds struct {
	credentials.TransportCredentials
}

const tlsHandshakeRecord = 0x16

func (s *sniffCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	br := bufio.NewReader(raw)
	raw.SetReadDeadline(time.Now().Add(sniffHandshakeTimeout))
	first, err := br.Peek(1)
	raw.SetReadDeadline(time.Time{})
	if err != nil {
		return nil, nil, fmt.Errorf("xds: read the first byte: %w", err)
	}
	conn := &peekedConn{Conn: raw, r: br}
	if first[0] == tlsHandshakeRecord {
		return s.TransportCredentials.ServerHandshake(conn)
	}
	return conn, insecureInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
}

func (s *sniffCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("xds: server-side credentials only")
}

func (s *sniffCreds) Clone() credentials.TransportCredentials {
	return &sniffCreds{TransportCredentials: s.TransportCredentials.Clone()}
}

// peekedConn reads through the buffer that holds the sniffed byte.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// insecureInfo is the AuthInfo of a plaintext connection.
type insecureInfo struct{ credentials.CommonAuthInfo }

func (insecureInfo) AuthType() string { return "insecure" }
