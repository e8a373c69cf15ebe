package cluster

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// checkFields returns an error naming the first populated field of m that is
// not in allowed: the xDS contract is a subset of Envoy's API and anything
// outside it must be NACKed rather than silently ignored.
func checkFields(m proto.Message, allowed ...string) error {
	var bad string
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !slices.Contains(allowed, string(fd.Name())) {
			bad = string(fd.Name())
			return false
		}
		return true
	})
	if bad != "" {
		return fmt.Errorf("%s: unsupported field", bad)
	}
	return nil
}
