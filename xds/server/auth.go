package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/weft-mesh/weft/ca"
	"github.com/weft-mesh/weft/xds/node"
)

// Principal is who an authenticated stream proved it is. A proxy may only
// claim (in its node metadata) an identity its principal covers: the
// certificate it gets is issued for that identity, so an unchecked claim
// would let any credential holder impersonate any workload.
type Principal struct {
	// Mesh is true for a mesh-wide credential (the join token), which
	// covers every identity.
	Mesh bool
	// Namespace and ServiceAccount bound the identities covered when Mesh
	// is false: a proxy must claim exactly these.
	Namespace, ServiceAccount string
	// Subject names the credential for logs and refusals, e.g. "join
	// token" or "system:serviceaccount:default:bookinfo-reviews". Never
	// the secret itself.
	Subject string
	// Credential identifies a revocable credential (a scoped join token's
	// ID), which Options.Revalidate is asked about; "" for none.
	Credential string
}

// Covers reports whether p may run as a proxy claiming m's namespace and
// service account, and if not, says why naming both.
func (p Principal) Covers(m *node.Meta) error {
	if p.Mesh {
		return nil
	}
	// A proxy naming no service account gets the default one's
	// certificate (Identity), so that is what it claims.
	sa := m.ServiceAccount
	if sa == "" {
		sa = ca.DefaultServiceAccount
	}
	if m.Namespace == p.Namespace && sa == p.ServiceAccount {
		return nil
	}
	return fmt.Errorf("credential %s admits identity %s/%s only; the proxy claims %s/%s",
		p.Subject, p.Namespace, p.ServiceAccount, m.Namespace, sa)
}

// BearerToken returns the token of the "authorization: Bearer TOKEN" gRPC
// metadata of ctx, or an Unauthenticated status saying what is missing.
func BearerToken(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return "", status.Error(codes.Unauthenticated, "missing credential: send gRPC metadata \"authorization: Bearer TOKEN\"")
	}
	scheme, got, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", status.Error(codes.Unauthenticated, "authorization metadata: want \"Bearer TOKEN\"")
	}
	return strings.TrimSpace(got), nil
}

// TokenAuth returns an Options.Authenticate that accepts a stream whose
// gRPC metadata carries "authorization: Bearer TOKEN" with the given join
// token, as a mesh-wide Principal, and ends any other with
// Unauthenticated. The token is compared in constant time and never
// echoed. An empty token refuses everything, so a missing token file
// cannot open the mesh.
func TokenAuth(token string) func(ctx context.Context) (Principal, error) {
	want := sha256.Sum256([]byte(token))
	return func(ctx context.Context) (Principal, error) {
		got, err := BearerToken(ctx)
		if err != nil {
			return Principal{}, err
		}
		// Hashing first makes the comparison's time independent of where
		// the values differ and of their lengths.
		h := sha256.Sum256([]byte(got))
		if token == "" || subtle.ConstantTimeCompare(h[:], want[:]) != 1 {
			return Principal{}, status.Error(codes.Unauthenticated, "invalid join token")
		}
		return Principal{Mesh: true, Subject: "join token"}, nil
	}
}
