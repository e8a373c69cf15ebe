package config

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// fieldError is a problem at one place of a spec, before it is tied to a
// document and object.
type fieldError struct {
	field path
	msg   string
}

// specWalker checks a JSON value (as decoded with json.Decoder.UseNumber)
// against a protobuf message descriptor. protojson stops at the first problem
// and names fields by their proto names without a position; walking the value
// ourselves first lets Decode report every problem with a YAML field path.
//
// The walker also normalizes what protojson is stricter about than Istio:
// durations are accepted in Go syntax ("1m", "10ms") and rewritten to the
// seconds form protojson requires.
type specWalker struct {
	errs []fieldError
}

func (w *specWalker) errorf(p path, format string, args ...any) {
	w.errs = append(w.errs, fieldError{p, fmt.Sprintf(format, args...)})
}

// message checks v against md and returns v normalized for protojson, with
// the offending parts left out so the rest can still be converted and
// validated. nil means nothing of v is usable.
func (w *specWalker) message(md protoreflect.MessageDescriptor, v any, p path) any {
	before := len(w.errs)
	if wkt, ok := w.wellKnown(md, v, p); ok {
		if len(w.errs) > before {
			return nil
		}
		return wkt
	}
	obj, ok := v.(map[string]any)
	if !ok {
		w.errorf(p, "must be an object, got %s", describe(v))
		return nil
	}
	out := make(map[string]any, len(obj))
	seen := map[protoreflect.FieldNumber]string{}
	oneofs := map[protoreflect.FullName]string{}
	for _, name := range sortedKeys(obj) {
		fp := p.field(name)
		fd := lookupField(md, name)
		if fd == nil {
			w.errorf(fp, "unknown field%s", suggest(md, name))
			continue
		}
		fp = p.field(fd.JSONName())
		if prev, dup := seen[fd.Number()]; dup {
			w.errorf(fp, "given twice, as %q and %q", prev, name)
			continue
		}
		seen[fd.Number()] = name
		val := obj[name]
		if val == nil {
			// protojson treats null as "not set" for every field but
			// google.protobuf.Value, which takes it as a null value.
			out[name] = nil
			continue
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if prev, dup := oneofs[od.FullName()]; dup {
				w.errorf(fp, "cannot be set together with %q; only one of them may be given", prev)
				continue
			}
			oneofs[od.FullName()] = fd.JSONName()
		}
		if val := w.field(fd, val, fp); val != nil {
			out[name] = val
		}
	}
	return out
}

// field checks the value of one field, which may be a map or a list, and
// returns it normalized, or nil when it is unusable.
func (w *specWalker) field(fd protoreflect.FieldDescriptor, v any, p path) any {
	switch {
	case fd.IsMap():
		obj, ok := v.(map[string]any)
		if !ok {
			w.errorf(p, "must be a map, got %s", describe(v))
			return nil
		}
		out := make(map[string]any, len(obj))
		for _, k := range sortedKeys(obj) {
			kp := p.key(k)
			before := len(w.errs)
			w.mapKey(fd.MapKey(), k, kp)
			if obj[k] == nil && fd.MapValue().Message() == nil {
				w.errorf(kp, "must not be null")
			}
			val := w.single(fd.MapValue(), obj[k], kp)
			if len(w.errs) == before && val != nil {
				out[k] = val
			}
		}
		return out
	case fd.IsList():
		list, ok := v.([]any)
		if !ok {
			w.errorf(p, "must be a list, got %s", describe(v))
			return nil
		}
		out := make([]any, len(list))
		for i, e := range list {
			ep := p.index(i)
			if e == nil && !isValueMessage(fd) {
				w.errorf(ep, "must not be null")
			} else {
				out[i] = w.single(fd, e, ep)
			}
			if out[i] == nil && !isValueMessage(fd) {
				// Keep the element's place so later paths stay right.
				out[i] = zeroJSON(fd)
			}
		}
		return out
	}
	return w.single(fd, v, p)
}

// zeroJSON is the JSON for the zero value of fd's type, standing in for a
// list element that could not be used.
func zeroJSON(fd protoreflect.FieldDescriptor) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		md := fd.Message()
		if md.FullName().Parent() != "google.protobuf" {
			return map[string]any{}
		}
		switch md.Name() {
		case "Duration":
			return "0s"
		case "Timestamp":
			return "1970-01-01T00:00:00Z"
		case "ListValue":
			return []any{}
		case "FieldMask":
			return ""
		}
		if v := md.Fields().ByName("value"); v != nil && md.Name() != "Value" {
			return zeroJSON(v) // a wrapper is written as its bare value
		}
		return map[string]any{}
	case protoreflect.BoolKind:
		return false
	case protoreflect.StringKind, protoreflect.BytesKind:
		return ""
	}
	return json.Number("0")
}

func isValueMessage(fd protoreflect.FieldDescriptor) bool {
	return fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Value"
}

// single checks one value (not a list or map) of the field's type and
// returns it normalized, or nil when it is unusable.
func (w *specWalker) single(fd protoreflect.FieldDescriptor, v any, p path) any {
	before := len(w.errs)
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if v == nil {
			return nil
		}
		return w.message(fd.Message(), v, p)
	case protoreflect.EnumKind:
		w.enum(fd.Enum(), v, p)
	default:
		w.scalar(fd.Kind(), v, p)
	}
	if len(w.errs) > before {
		return nil
	}
	return v
}

func (w *specWalker) mapKey(fd protoreflect.FieldDescriptor, k string, p path) {
	switch fd.Kind() {
	case protoreflect.StringKind:
	case protoreflect.BoolKind:
		if k != "true" && k != "false" {
			w.errorf(p, "map key must be true or false")
		}
	default:
		w.scalar(fd.Kind(), k, p)
	}
}

func (w *specWalker) enum(ed protoreflect.EnumDescriptor, v any, p path) {
	switch x := v.(type) {
	case string:
		if ed.Values().ByName(protoreflect.Name(x)) == nil {
			names := make([]string, ed.Values().Len())
			for i := range names {
				names[i] = string(ed.Values().Get(i).Name())
			}
			w.errorf(p, "unknown value %q; must be one of %s", x, strings.Join(names, ", "))
		}
	case json.Number:
		if _, err := strconv.ParseInt(x.String(), 10, 32); err != nil {
			w.errorf(p, "enum number %s out of range", x)
		}
	default:
		w.errorf(p, "must be an enum name (string), got %s", describe(v))
	}
}

// Integer bounds per kind, as float64 for the fallback path of numbers
// written with an exponent or fraction.
var intBounds = map[protoreflect.Kind][2]float64{
	protoreflect.Int32Kind: {math.MinInt32, math.MaxInt32}, protoreflect.Sint32Kind: {math.MinInt32, math.MaxInt32},
	protoreflect.Sfixed32Kind: {math.MinInt32, math.MaxInt32}, protoreflect.Uint32Kind: {0, math.MaxUint32},
	protoreflect.Fixed32Kind: {0, math.MaxUint32}, protoreflect.Int64Kind: {math.MinInt64, math.MaxInt64},
	protoreflect.Sint64Kind: {math.MinInt64, math.MaxInt64}, protoreflect.Sfixed64Kind: {math.MinInt64, math.MaxInt64},
	protoreflect.Uint64Kind: {0, math.MaxUint64}, protoreflect.Fixed64Kind: {0, math.MaxUint64},
}

func (w *specWalker) scalar(k protoreflect.Kind, v any, p path) {
	switch k {
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			w.errorf(p, "must be true or false, got %s", describe(v))
		}
	case protoreflect.StringKind:
		if _, ok := v.(string); !ok {
			w.errorf(p, "must be a string, got %s (quote it)", describe(v))
		}
	case protoreflect.BytesKind:
		s, ok := v.(string)
		if !ok {
			w.errorf(p, "must be a base64 string, got %s", describe(v))
			return
		}
		if !isBase64(s) {
			w.errorf(p, "must be base64-encoded")
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f, ok := numberValue(v)
		if !ok {
			if s, isStr := v.(string); !isStr || (s != "NaN" && s != "Infinity" && s != "-Infinity") {
				w.errorf(p, "must be a number, got %s", describe(v))
			}
			return
		}
		if k == protoreflect.FloatKind && !math.IsInf(f, 0) && math.Abs(f) > math.MaxFloat32 {
			w.errorf(p, "%v is out of range for a 32-bit float", f)
		}
	default:
		w.integer(k, v, p)
	}
}

// integer checks integer kinds. protojson accepts them as numbers or as
// quoted strings, and accepts an exponent or fraction as long as the value
// is whole.
func (w *specWalker) integer(k protoreflect.Kind, v any, p path) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	default:
		w.errorf(p, "must be an integer, got %s", describe(v))
		return
	}
	b := intBounds[k]
	if b[0] == 0 {
		if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			if float64(n) > b[1] {
				w.errorf(p, "%s is out of range (0 to %.0f)", s, b[1])
			}
			return
		}
	} else if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if float64(n) < b[0] || float64(n) > b[1] {
			w.errorf(p, "%s is out of range (%.0f to %.0f)", s, b[0], b[1])
		}
		return
	}
	f, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil || math.IsNaN(f) || math.IsInf(f, 0):
		w.errorf(p, "must be an integer, got %q", s)
	case f != math.Trunc(f):
		w.errorf(p, "must be a whole number, got %s", s)
	case f < 0 && b[0] == 0:
		w.errorf(p, "must not be negative, got %s", s)
	case f < b[0] || f > b[1]:
		w.errorf(p, "%s is out of range (%.0f to %.0f)", s, b[0], b[1])
	}
}

// wellKnown handles the google.protobuf types whose JSON form is not an
// object of their fields. ok is false for every other message.
func (w *specWalker) wellKnown(md protoreflect.MessageDescriptor, v any, p path) (out any, ok bool) {
	name := md.FullName()
	if name.Parent() != "google.protobuf" {
		return nil, false
	}
	switch name.Name() {
	case "Duration":
		return w.duration(v, p), true
	case "Timestamp":
		s, isStr := v.(string)
		if !isStr {
			w.errorf(p, "must be an RFC 3339 timestamp string, got %s", describe(v))
		} else if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			w.errorf(p, "invalid RFC 3339 timestamp %q", s)
		}
		return v, true
	case "DoubleValue", "FloatValue", "Int64Value", "UInt64Value", "Int32Value", "UInt32Value", "BoolValue", "StringValue", "BytesValue":
		// Wrappers are written as their bare value.
		w.scalar(md.Fields().ByName("value").Kind(), v, p)
		return v, true
	case "Struct":
		if _, isObj := v.(map[string]any); !isObj {
			w.errorf(p, "must be an object, got %s", describe(v))
		}
		return v, true
	case "ListValue":
		if _, isList := v.([]any); !isList {
			w.errorf(p, "must be a list, got %s", describe(v))
		}
		return v, true
	case "Value":
		return v, true
	case "Empty":
		if obj, isObj := v.(map[string]any); !isObj || len(obj) != 0 {
			w.errorf(p, "must be an empty object")
		}
		return v, true
	case "FieldMask":
		if _, isStr := v.(string); !isStr {
			w.errorf(p, "must be a comma-separated string of field paths, got %s", describe(v))
		}
		return v, true
	}
	return nil, false // Any and the rest decode as protojson sees fit
}

// duration accepts Go duration syntax, which is what Istio users write
// ("1m", "1.5s", "10ms"), and returns it in protojson's "SECONDS.NANOSs" form.
func (w *specWalker) duration(v any, p path) any {
	s, ok := v.(string)
	if !ok {
		w.errorf(p, "must be a duration string such as \"10s\" or \"250ms\", got %s", describe(v))
		return v
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		w.errorf(p, "invalid duration %q (use a form such as \"1.5s\", \"10ms\" or \"1m\")", s)
		return v
	}
	if d < 0 {
		w.errorf(p, "duration must not be negative, got %s", s)
		return v
	}
	secs, nanos := int64(d/time.Second), int64(d%time.Second)
	if nanos == 0 {
		return fmt.Sprintf("%ds", secs)
	}
	return strings.TrimRight(fmt.Sprintf("%d.%09d", secs, nanos), "0") + "s"
}

// lookupField finds a field by its JSON (lowerCamel) or proto (snake_case)
// name, as protojson does.
func lookupField(md protoreflect.MessageDescriptor, name string) protoreflect.FieldDescriptor {
	if fd := md.Fields().ByJSONName(name); fd != nil {
		return fd
	}
	return md.Fields().ByName(protoreflect.Name(name))
}

// suggest names the closest known field when name looks like a typo of it.
func suggest(md protoreflect.MessageDescriptor, name string) string {
	best, bestDist := "", 3
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		cand := fields.Get(i).JSONName()
		if d := editDistance(strings.ToLower(name), strings.ToLower(cand)); d < bestDist {
			best, bestDist = cand, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func numberValue(v any) (float64, bool) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	default:
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

func isBase64(s string) bool {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if _, err := enc.DecodeString(s); err == nil {
			return true
		}
	}
	return false
}

// describe names a JSON value's type for messages, with short values shown.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case json.Number:
		return "number " + x.String()
	case string:
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		return fmt.Sprintf("string %q", x)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
