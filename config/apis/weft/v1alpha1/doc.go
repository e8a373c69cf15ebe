// Package v1alpha1 holds the Go types of weft's own weft.io/v1alpha1 API
// (RateLimit), generated from ratelimit.proto.
package v1alpha1

//go:generate protoc --proto_path=../.. --proto_path=/usr/include --go_out=../.. --go_opt=paths=source_relative weft/v1alpha1/ratelimit.proto
