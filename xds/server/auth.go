package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TokenAuth returns an Options.Authenticate that accepts a stream whose
// gRPC metadata carries "authorization: Bearer TOKEN" with the given join
// token, and ends any other with Unauthenticated. The token is compared in
// constant time and never echoed. An empty token refuses everything, so a
// missing token file cannot open the mesh.
func TokenAuth(token string) func(ctx context.Context) error {
	want := sha256.Sum256([]byte(token))
	return func(ctx context.Context) error {
		md, _ := metadata.FromIncomingContext(ctx)
		vals := md.Get("authorization")
		if len(vals) == 0 {
			return status.Error(codes.Unauthenticated, "missing join token: send gRPC metadata \"authorization: Bearer TOKEN\"")
		}
		scheme, got, ok := strings.Cut(vals[0], " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return status.Error(codes.Unauthenticated, "authorization metadata: want \"Bearer TOKEN\"")
		}
		// Hashing first makes the comparison's time independent of where
		// the values differ and of their lengths.
		h := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if token == "" || subtle.ConstantTimeCompare(h[:], want[:]) != 1 {
			return status.Error(codes.Unauthenticated, "invalid join token")
		}
		return nil
	}
}
