package sds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// Redacted replaces private material wherever resources are shown.
const Redacted = "[redacted]"

// Redact returns a deep copy of m in which every private key and password
// of a TlsCertificate, and every GenericSecret, reads "[redacted]" (as an
// inline_string), also inside typed configs packed in Any fields (transport
// sockets of listeners and clusters). Filenames are kept: they are not
// secret. m itself is not modified.
func Redact[M proto.Message](m M) M {
	c := proto.Clone(m).(M)
	redact(c.ProtoReflect())
	return c
}

var redactedSource = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: Redacted}}

// redact scrubs m in place and reports whether it changed anything.
func redact(m protoreflect.Message) bool {
	changed := false
	switch v := m.Interface().(type) {
	case *tlsv3.TlsCertificate:
		if isInline(v.PrivateKey) {
			v.PrivateKey, changed = proto.Clone(redactedSource).(*corev3.DataSource), true
		}
		if isInline(v.Password) {
			v.Password, changed = proto.Clone(redactedSource).(*corev3.DataSource), true
		}
		return changed
	case *tlsv3.GenericSecret:
		if v.Secret != nil {
			v.Secret, changed = proto.Clone(redactedSource).(*corev3.DataSource), true
		}
		return changed
	case *anypb.Any:
		inner, err := v.UnmarshalNew()
		if err != nil {
			return false // a type this binary does not know holds nothing it made
		}
		if !redact(inner.ProtoReflect()) {
			return false
		}
		packed, err := anypb.New(inner)
		if err != nil {
			v.Value = nil // never show what could not be re-packed
			return true
		}
		v.Value = packed.Value
		return true
	}
	m.Range(func(fd protoreflect.FieldDescriptor, val protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := val.List()
			for i := 0; i < l.Len(); i++ {
				changed = redact(l.Get(i).Message()) || changed
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			val.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				changed = redact(mv.Message()) || changed
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			changed = redact(val.Message()) || changed
		}
		return true
	})
	return changed
}

func isInline(ds *corev3.DataSource) bool {
	switch ds.GetSpecifier().(type) {
	case *corev3.DataSource_InlineBytes, *corev3.DataSource_InlineString, *corev3.DataSource_EnvironmentVariable:
		return true
	}
	return false
}
