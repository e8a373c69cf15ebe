package server

import (
	"context"
	"crypto/x509"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/weft-mesh/weft/ca"
)

// PeerCertAuth returns an Options.Authenticate for streams over mutual
// TLS: a peer that presented a certificate the handshake verified against
// the mesh root is the workload of the certificate's SPIFFE ID (in
// trustDomain), and may claim only that identity. This is how a proxyless
// gRPC application, which cannot send a join token, authenticates. A peer
// without a verified certificate is left to next.
func PeerCertAuth(trustDomain string, next func(ctx context.Context) (Principal, error)) func(ctx context.Context) (Principal, error) {
	return func(ctx context.Context) (Principal, error) {
		if leaf := verifiedLeaf(ctx); leaf != nil {
			for _, u := range leaf.URIs {
				td, ns, sa, err := ca.SplitSPIFFEID(u.String())
				if err != nil || td != trustDomain {
					continue
				}
				return Principal{Namespace: ns, ServiceAccount: sa, Subject: "certificate " + u.String()}, nil
			}
		}
		if next == nil {
			return Principal{Mesh: true, Subject: "anyone"}, nil
		}
		return next(ctx)
	}
}

// verifiedLeaf is the peer's certificate when its TLS handshake verified a
// chain for it.
func verifiedLeaf(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return info.State.VerifiedChains[0][0]
}
