package route

import (
	"github.com/weft-mesh/weft/proxy/contract"

	"fmt"
	"net/http"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// HeaderMutation is one level's (route configuration, virtual host, route or
// weighted cluster) compiled headers_to_remove and headers_to_add. Apply
// removes first, then adds in order, as Envoy does.
type HeaderMutation struct {
	remove []string
	add    []headerAdd
}

type headerAdd struct {
	key    string   // canonical
	value  []string // one element, shared read-only
	action corev3.HeaderValueOption_HeaderAppendAction
}

func compileMutation(add []*corev3.HeaderValueOption, remove []string) (*HeaderMutation, error) {
	if len(add) == 0 && len(remove) == 0 {
		return nil, nil
	}
	m := &HeaderMutation{}
	for i, name := range remove {
		if err := modifiable(name); err != nil {
			return nil, fmt.Errorf("headers_to_remove[%d]: %w", i, err)
		}
		m.remove = append(m.remove, http.CanonicalHeaderKey(name))
	}
	for i, o := range add {
		if err := contract.CheckFields(o, "header", "append", "append_action", "keep_empty_value"); err != nil {
			return nil, fmt.Errorf("headers_to_add[%d].%w", i, err)
		}
		h := o.GetHeader()
		if h == nil {
			return nil, fmt.Errorf("headers_to_add[%d].header: required", i)
		}
		if err := contract.CheckFields(h, "key", "value", "raw_value"); err != nil {
			return nil, fmt.Errorf("headers_to_add[%d].header.%w", i, err)
		}
		if err := modifiable(h.GetKey()); err != nil {
			return nil, fmt.Errorf("headers_to_add[%d].header.key: %w", i, err)
		}
		v := h.GetValue()
		if len(h.GetRawValue()) > 0 {
			v = string(h.GetRawValue())
		}
		if !validValue(v) {
			return nil, fmt.Errorf("headers_to_add[%d].header.value: invalid header value %q", i, v)
		}
		// Envoy's header formatter: "%%" is a literal "%".
		v = strings.ReplaceAll(v, "%%", "%")
		if v == "" && !o.GetKeepEmptyValue() {
			continue
		}
		action := o.GetAppendAction()
		if ap := o.GetAppend(); ap != nil {
			if action != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
				return nil, fmt.Errorf("headers_to_add[%d]: append and append_action are exclusive", i)
			}
			if !ap.GetValue() {
				action = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
			}
		}
		switch action {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD, corev3.HeaderValueOption_ADD_IF_ABSENT,
			corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
		default:
			return nil, fmt.Errorf("headers_to_add[%d].append_action: unsupported %v", i, action)
		}
		m.add = append(m.add, headerAdd{key: http.CanonicalHeaderKey(h.GetKey()), value: []string{v}, action: action})
	}
	return m, nil
}

// modifiable rejects what Envoy does not let configuration add or remove:
// empty names, pseudo-headers and Host.
func modifiable(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty header name")
	case strings.HasPrefix(name, ":") || strings.EqualFold(name, "host"):
		return fmt.Errorf("%q may not be modified", name)
	case strings.ContainsAny(name, " \t\r\n:\"(),/;<=>?@[\\]{}"):
		return fmt.Errorf("invalid header name %q", name)
	}
	return nil
}

func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// Apply edits h. Values appended to an existing header are put in a new
// slice, so slices shared with another header map are never written.
func (m *HeaderMutation) Apply(h http.Header) {
	if m == nil {
		return
	}
	for _, k := range m.remove {
		delete(h, k)
	}
	for i := range m.add {
		a := &m.add[i]
		vv, ok := h[a.key]
		switch a.action {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			if ok {
				h[a.key] = append(vv[:len(vv):len(vv)], a.value[0])
			} else {
				h[a.key] = a.value
			}
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			if !ok {
				h[a.key] = a.value
			}
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			h[a.key] = a.value
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			if ok {
				h[a.key] = a.value
			}
		}
	}
}

// mutations are a route's header edits in Envoy's order: the weighted
// cluster's (per request), then the route's, the virtual host's, and the
// route configuration's.
type mutations []*HeaderMutation

func levels(ms ...*HeaderMutation) mutations {
	var out mutations
	for _, m := range ms {
		if m != nil {
			out = append(out, m)
		}
	}
	return out
}

// RequestHeaders applies the request header edits for target t (from Target)
// to h, the headers going upstream.
func (rt *Route) RequestHeaders(h http.Header, t *WeightedCluster) {
	if t != nil {
		t.RequestHeaders.Apply(h)
	}
	for _, m := range rt.reqMut {
		m.Apply(h)
	}
}

// ResponseHeaders applies the response header edits for target t (nil for
// local replies) to h, the headers going downstream.
func (rt *Route) ResponseHeaders(h http.Header, t *WeightedCluster) {
	if t != nil {
		t.ResponseHeaders.Apply(h)
	}
	for _, m := range rt.respMut {
		m.Apply(h)
	}
}

// HasRequestHeaders reports whether any request header edit applies to t.
func (rt *Route) HasRequestHeaders(t *WeightedCluster) bool {
	return len(rt.reqMut) > 0 || (t != nil && t.RequestHeaders != nil)
}

// HasResponseHeaders reports whether any response header edit applies to t.
func (rt *Route) HasResponseHeaders(t *WeightedCluster) bool {
	return len(rt.respMut) > 0 || (t != nil && t.ResponseHeaders != nil)
}
