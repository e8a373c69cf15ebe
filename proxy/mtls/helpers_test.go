package mtls_test

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weft-mesh/weft/proxy/mtls/mtlstest"
)

func uriSAN(v string) *tlsv3.SubjectAltNameMatcher {
	return &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI,
		Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}}
}

func dnsSAN(v string) *tlsv3.SubjectAltNameMatcher {
	return &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_DNS,
		Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}}}
}

// webSNI is the SNI of outboundContext.
const webSNI = "outbound_.8080_._.web.default.svc.cluster.local"

// outboundContext is the contract's auto-mTLS UpstreamTlsContext for web.
func outboundContext(sans ...string) *tlsv3.UpstreamTlsContext {
	return mtlstest.UpstreamContext(webSNI, sans...)
}

// outcome is both ends of one handshake over a loopback socket.
type outcome struct {
	server    tls.ConnectionState
	serverErr error
	client    tls.ConnectionState
	clientErr error
}

// handshake runs one TLS handshake between server and client over a real
// 127.0.0.1 connection, and a one-byte exchange so that a TLS 1.3 client
// learns of a rejected certificate.
func handshake(t testing.TB, server, client *tls.Config) outcome {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var o outcome
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			o.serverErr = err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Server(c, server)
		if o.serverErr = tc.Handshake(); o.serverErr == nil {
			o.server = tc.ConnectionState()
			_, _ = tc.Write([]byte{1})
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(c, client)
	if o.clientErr = tc.Handshake(); o.clientErr == nil {
		var b [1]byte
		if _, err := tc.Read(b[:]); err != nil {
			o.clientErr = err
		}
		o.client = tc.ConnectionState()
	}
	<-done
	return o
}
