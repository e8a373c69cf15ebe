package rbac

import (
	"fmt"

	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/weft-mesh/weft/proxy/contract"
	"github.com/weft-mesh/weft/proxy/filter"
)

// metadataMatcher is a compiled envoy.type.matcher.v3.MetadataMatcher over
// the exchange's dynamic metadata (filter.Exchange.Metadata).
type metadataMatcher struct {
	filter string
	path   []string
	value  valueMatcher
	invert bool
}

func compileMetadata(m *matcherv3.MetadataMatcher) (*metadataMatcher, error) {
	if err := contract.CheckFields(m, "filter", "path", "value", "invert"); err != nil {
		return nil, err
	}
	out := &metadataMatcher{filter: m.GetFilter(), invert: m.GetInvert()}
	if out.filter == "" {
		return nil, fmt.Errorf("filter: empty")
	}
	if len(m.GetPath()) == 0 {
		return nil, fmt.Errorf("path: at least one segment required")
	}
	for i, seg := range m.GetPath() {
		if err := contract.CheckFields(seg, "key"); err != nil {
			return nil, fmt.Errorf("path[%d].%w", i, err)
		}
		if seg.GetKey() == "" {
			return nil, fmt.Errorf("path[%d].key: empty", i)
		}
		out.path = append(out.path, seg.GetKey())
	}
	if m.GetValue() == nil {
		return nil, fmt.Errorf("value: required")
	}
	v, err := compileValue(m.GetValue(), 0)
	if err != nil {
		return nil, fmt.Errorf("value.%w", err)
	}
	out.value = v
	return out, nil
}

// match looks the path up in md (namespace, then keys) and matches the value
// found; a missing value matches nothing, before invert.
func (m *metadataMatcher) match(md map[string]map[string]any) bool {
	var v any
	found := false
	if ns, ok := md[m.filter]; ok {
		v, found = ns[m.path[0]]
		for _, k := range m.path[1:] {
			if !found {
				break
			}
			obj, ok := v.(map[string]any)
			if !ok {
				found = false
				break
			}
			v, found = obj[k]
		}
	}
	return (found && m.value.match(v)) != m.invert
}

type valueKind uint8

const (
	vNull valueKind = iota
	vDouble
	vString
	vBool
	vPresent
	vList // list_match.one_of
	vOr
)

// valueMatcher is a compiled ValueMatcher.
type valueMatcher struct {
	kind   valueKind
	str    filter.StringMatcher
	b      bool
	lo, hi float64 // double range [lo, hi); exact when lo == hi
	exact  bool
	kids   []valueMatcher // one_of (one kid) or or_match
}

func compileValue(v *matcherv3.ValueMatcher, depth int) (valueMatcher, error) {
	var out valueMatcher
	if depth > maxDepth {
		return out, fmt.Errorf("match_pattern: nested deeper than %d", maxDepth)
	}
	if err := contract.CheckFields(v, "null_match", "double_match", "string_match", "bool_match",
		"present_match", "list_match", "or_match"); err != nil {
		return out, err
	}
	switch p := v.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_NullMatch_:
		out.kind = vNull
	case *matcherv3.ValueMatcher_DoubleMatch:
		out.kind = vDouble
		if err := contract.CheckFields(p.DoubleMatch, "range", "exact"); err != nil {
			return out, fmt.Errorf("double_match.%w", err)
		}
		switch d := p.DoubleMatch.GetMatchPattern().(type) {
		case *matcherv3.DoubleMatcher_Exact:
			out.lo, out.hi, out.exact = d.Exact, d.Exact, true
		case *matcherv3.DoubleMatcher_Range:
			if d.Range.GetStart() > d.Range.GetEnd() {
				return out, fmt.Errorf("double_match.range: start above end")
			}
			out.lo, out.hi = d.Range.GetStart(), d.Range.GetEnd()
		default:
			return out, fmt.Errorf("double_match: one of range, exact required")
		}
	case *matcherv3.ValueMatcher_StringMatch:
		out.kind = vString
		sm, err := filter.CompileStringMatcher(p.StringMatch)
		if err != nil {
			return out, fmt.Errorf("string_match.%w", err)
		}
		out.str = sm
	case *matcherv3.ValueMatcher_BoolMatch:
		out.kind, out.b = vBool, p.BoolMatch
	case *matcherv3.ValueMatcher_PresentMatch:
		out.kind, out.b = vPresent, p.PresentMatch
	case *matcherv3.ValueMatcher_ListMatch:
		out.kind = vList
		if err := contract.CheckFields(p.ListMatch, "one_of"); err != nil {
			return out, fmt.Errorf("list_match.%w", err)
		}
		if p.ListMatch.GetOneOf() == nil {
			return out, fmt.Errorf("list_match.one_of: required")
		}
		k, err := compileValue(p.ListMatch.GetOneOf(), depth+1)
		if err != nil {
			return out, fmt.Errorf("list_match.one_of.%w", err)
		}
		out.kids = []valueMatcher{k}
	case *matcherv3.ValueMatcher_OrMatch:
		out.kind = vOr
		if len(p.OrMatch.GetValueMatchers()) < 2 {
			return out, fmt.Errorf("or_match.value_matchers: at least two required")
		}
		for i, vm := range p.OrMatch.GetValueMatchers() {
			k, err := compileValue(vm, depth+1)
			if err != nil {
				return out, fmt.Errorf("or_match.value_matchers[%d].%w", i, err)
			}
			out.kids = append(out.kids, k)
		}
	default:
		return out, fmt.Errorf("match_pattern: required")
	}
	return out, nil
}

// match reports whether v (a present value) matches. A list_match on a
// single value matches that value as a one-element list: a claim the
// token carries as a string matches the list_match Istio writes for it.
func (m *valueMatcher) match(v any) bool {
	switch m.kind {
	case vNull:
		return v == nil
	case vDouble:
		f, ok := v.(float64)
		if !ok {
			return false
		}
		if m.exact {
			return f == m.lo
		}
		return f >= m.lo && f < m.hi
	case vString:
		s, ok := v.(string)
		return ok && m.str.Match(s)
	case vBool:
		b, ok := v.(bool)
		return ok && b == m.b
	case vPresent:
		return m.b
	case vList:
		if ss, ok := v.([]string); ok {
			for _, e := range ss {
				if m.kids[0].match(e) {
					return true
				}
			}
			return false
		}
		l, ok := v.([]any)
		if !ok {
			_, nested := v.(map[string]any)
			return v != nil && !nested && m.kids[0].match(v)
		}
		for _, e := range l {
			if m.kids[0].match(e) {
				return true
			}
		}
		return false
	case vOr:
		for i := range m.kids {
			if m.kids[i].match(v) {
				return true
			}
		}
	}
	return false
}
