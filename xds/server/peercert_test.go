package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"testing"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

func TestPeerCertAuth(t *testing.T) {
	nextCalled := false
	auth := PeerCertAuth("cluster.local", func(context.Context) (Principal, error) {
		nextCalled = true
		return Principal{Mesh: true, Subject: "join token"}, nil
	})
	withCert := func(id string, verified bool) context.Context {
		u, _ := url.Parse(id)
		leaf := &x509.Certificate{URIs: []*url.URL{u}}
		st := tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
		if verified {
			st.VerifiedChains = [][]*x509.Certificate{{leaf}}
		}
		return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: st}})
	}
	p, err := auth(withCert("spiffe://cluster.local/ns/shop/sa/caller", true))
	if err != nil || p.Mesh || p.Namespace != "shop" || p.ServiceAccount != "caller" || nextCalled {
		t.Errorf("verified certificate: %+v %v (next called: %v)", p, err, nextCalled)
	}
	for name, ctx := range map[string]context.Context{
		"unverified certificate": withCert("spiffe://cluster.local/ns/shop/sa/caller", false),
		"other trust domain":     withCert("spiffe://example.org/ns/shop/sa/caller", true),
		"no TLS":                 context.Background(),
	} {
		nextCalled = false
		if p, err := auth(ctx); err != nil || !nextCalled || !p.Mesh {
			t.Errorf("%s: %+v %v, want the next authenticator's answer", name, p, err)
		}
	}
}
