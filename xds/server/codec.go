package server

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/weft-mesh/weft/internal/bounded"
	"github.com/weft-mesh/weft/xds/resource"
)

// ServerOptions returns the options the gRPC server that registers this
// ADS server must be created with: its codec, which writes responses
// straight from the resources' encodings (see codec).
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ForceServerCodecV2(codec{encoding.GetCodecV2("proto")})}
}

// codec is protobuf, except that responses made of encoded resources
// (sotwResponse, deltaResponse) are written from those encodings without
// copying them: a response is a few bytes of its own (version, nonce)
// around buffers shared by every stream sending the same set.
type codec struct{ proto encoding.CodecV2 }

func (codec) Name() string { return "proto" }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *sotwResponse:
		return m.encode(), nil
	case *deltaResponse:
		return m.encode(), nil
	}
	return c.proto.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

// Field numbers of envoy.service.discovery.v3 messages and google.protobuf.Any.
const (
	fResponseVersion   = 1 // DiscoveryResponse.version_info
	fResponseResources = 2 // DiscoveryResponse.resources
	fResponseTypeURL   = 4 // DiscoveryResponse.type_url
	fResponseNonce     = 5 // DiscoveryResponse.nonce

	fDeltaVersion   = 1 // DeltaDiscoveryResponse.system_version_info
	fDeltaResources = 2 // DeltaDiscoveryResponse.resources
	fDeltaTypeURL   = 4 // DeltaDiscoveryResponse.type_url
	fDeltaNonce     = 5 // DeltaDiscoveryResponse.nonce
	fDeltaRemoved   = 6 // DeltaDiscoveryResponse.removed_resources

	fResourceVersion = 1 // Resource.version
	fResourceAny     = 2 // Resource.resource
	fResourceName    = 3 // Resource.name

	fAnyTypeURL = 1 // Any.type_url
	fAnyValue   = 2 // Any.value
)

// sotwResponse is a DiscoveryResponse.
type sotwResponse struct {
	version, typeURL, nonce string
	resources               mem.BufferSlice // the encoded resources field
}

func (r *sotwResponse) encode() mem.BufferSlice {
	return envelope(fResponseVersion, r.version, r.resources, fResponseTypeURL, r.typeURL, fResponseNonce, r.nonce, 0, nil)
}

// deltaResponse is a DeltaDiscoveryResponse.
type deltaResponse struct {
	version, typeURL, nonce string
	resources               mem.BufferSlice // the encoded resources field
	removed                 []string
}

func (r *deltaResponse) encode() mem.BufferSlice {
	return envelope(fDeltaVersion, r.version, r.resources, fDeltaTypeURL, r.typeURL, fDeltaNonce, r.nonce, fDeltaRemoved, r.removed)
}

// envelope is a response: its version field, the resources field's
// buffers as they are, then its type URL, nonce and removed names.
func envelope(fVersion protowire.Number, version string, resources mem.BufferSlice, fType protowire.Number, typeURL string,
	fNonce protowire.Number, nonce string, fRemoved protowire.Number, removed []string) mem.BufferSlice {
	str := func(b []byte, f protowire.Number, s string) []byte {
		return protowire.AppendString(protowire.AppendTag(b, f, protowire.BytesType), s)
	}
	head := str(nil, fVersion, version)
	tail := str(str(nil, fType, typeURL), fNonce, nonce)
	for _, n := range removed {
		tail = str(tail, fRemoved, n)
	}
	out := make(mem.BufferSlice, 0, len(resources)+2)
	out = append(out, mem.SliceBuffer(head))
	out = append(out, resources...)
	return append(out, mem.SliceBuffer(tail))
}

// encodedKey names one encoding of a list of resources: which list (a
// set or a diff), of which type, for which protocol.
type encodedKey struct {
	list    any // *resource.Set or *resource.Diff
	typeURL string
	delta   bool
}

// encoded remembers, for recently sent sets and diffs, their resources
// field as buffers: each resource's header (its Any wrapper, and for delta
// its name and version) and, without a copy, its encoding.
var encoded = bounded.NewCost[encodedKey, mem.BufferSlice](maxEncodedBuffers, func(b mem.BufferSlice) int { return len(b) })

// maxEncodedBuffers bounds the buffers the encodings held refer to (two
// per resource, about 130 bytes each besides the resources themselves).
const maxEncodedBuffers = 400_000

// encodeResources returns the resources field of a response carrying res
// (list is what res came from, to share the encoding with other streams).
func encodeResources(list any, typeURL string, delta bool, res func() []*resource.Resource) mem.BufferSlice {
	return encoded.Get(encodedKey{list, typeURL, delta}, func() mem.BufferSlice { return buildResources(typeURL, delta, res()) })
}

func buildResources(typeURL string, delta bool, res []*resource.Resource) mem.BufferSlice {
	// One array holds every header, so a set of thousands costs one
	// allocation plus the slice of buffers.
	size := 0
	anyHead := func(r *resource.Resource) int {
		return protowire.SizeTag(fAnyTypeURL) + protowire.SizeBytes(len(typeURL)) + protowire.SizeTag(fAnyValue) + protowire.SizeVarint(uint64(len(r.Bytes)))
	}
	for _, r := range res {
		size += 3*protowire.SizeVarint(uint64(len(r.Bytes))+64) + 2*len(r.Name) + len(typeURL) + 64
	}
	heads := make([]byte, 0, size)
	out := make(mem.BufferSlice, 0, 2*len(res)+1)
	for _, r := range res {
		start := len(heads)
		anyLen := anyHead(r) + len(r.Bytes)
		if !delta {
			heads = protowire.AppendTag(heads, fResponseResources, protowire.BytesType)
			heads = protowire.AppendVarint(heads, uint64(anyLen))
		} else {
			resLen := protowire.SizeTag(fResourceVersion) + protowire.SizeBytes(len(r.Version)) +
				protowire.SizeTag(fResourceAny) + protowire.SizeBytes(anyLen) +
				protowire.SizeTag(fResourceName) + protowire.SizeBytes(len(r.Name))
			heads = protowire.AppendTag(heads, fDeltaResources, protowire.BytesType)
			heads = protowire.AppendVarint(heads, uint64(resLen))
			heads = protowire.AppendTag(heads, fResourceName, protowire.BytesType)
			heads = protowire.AppendString(heads, r.Name)
			heads = protowire.AppendTag(heads, fResourceVersion, protowire.BytesType)
			heads = protowire.AppendString(heads, r.Version)
			heads = protowire.AppendTag(heads, fResourceAny, protowire.BytesType)
			heads = protowire.AppendVarint(heads, uint64(anyLen))
		}
		heads = protowire.AppendTag(heads, fAnyTypeURL, protowire.BytesType)
		heads = protowire.AppendString(heads, typeURL)
		heads = protowire.AppendTag(heads, fAnyValue, protowire.BytesType)
		heads = protowire.AppendVarint(heads, uint64(len(r.Bytes)))
		out = append(out, mem.SliceBuffer(heads[start:len(heads):len(heads)]))
		if len(r.Bytes) > 0 {
			out = append(out, mem.SliceBuffer(r.Bytes))
		}
	}
	return out
}

// setResources returns the resources field for every resource of s. A
// layered set is its base's shared encoding plus its own layer's: order
// among resources does not matter to either protocol.
func setResources(s *resource.Set, typeURL string, delta bool) mem.BufferSlice {
	base, own := s.Layers()
	if len(own) == 0 || base == nil {
		return encodeResources(s, typeURL, delta, s.Items)
	}
	for _, r := range own {
		if base.Has(r.Name) {
			return encodeResources(s, typeURL, delta, s.Items) // own hides some of base: encode the merge
		}
	}
	b := encodeResources(base, typeURL, delta, base.Items)
	o := buildResources(typeURL, delta, own)
	return append(append(make(mem.BufferSlice, 0, len(b)+len(o)), b...), o...)
}
