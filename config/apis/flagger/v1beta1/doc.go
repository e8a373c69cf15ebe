// Package v1beta1 holds the Go types of Flagger's flagger.app/v1beta1 API
// as weft reads it (Canary, MetricTemplate and the Canary's status),
// generated from canary.proto.
package v1beta1

// /usr/include comes before istio.io/api's common-protos so the
// well-known types resolve to google.golang.org/protobuf's packages.
//go:generate sh -c "protoc --proto_path=../.. --proto_path=/usr/include --proto_path=$(go list -m -f '{{.Dir}}' istio.io/api) --proto_path=$(go list -m -f '{{.Dir}}' istio.io/api)/common-protos --go_out=../.. --go_opt=paths=source_relative flagger/v1beta1/canary.proto"
