// Package contract holds the check every proxy package applies to the xDS
// resources it compiles: the control plane emits a subset of Envoy's API
// (docs/ARCHITECTURE.md, "The xDS contract"), and a field outside it must be
// NACKed, naming the field, rather than silently ignored.
package contract

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// CheckFields returns an error naming the first populated field of m that
// is not in allowed.
func CheckFields(m proto.Message, allowed ...string) error {
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
