// Package v1 holds the Go types of Maistra's maistra.io/v1 API that weft
// accepts, generated from servicemeshmemberroll.proto.
package v1

//go:generate protoc --proto_path=../.. --go_out=../.. --go_opt=paths=source_relative maistra/v1/servicemeshmemberroll.proto
