package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// Decode reads Kubernetes-style YAML (or JSON) documents separated by "---"
// and returns the objects they hold, in order. A document may also be a
// Kubernetes List ("kind: List" with "items"), as MarshalList writes JSON. source names the input in
// error messages (a file name, or "-" for standard input).
//
// Documents that are empty or hold only comments are skipped, and are not
// counted when numbering documents in errors. A namespace left out of a
// document stays "" for the caller to fill in. Every decoded object is also
// checked with Validate.
//
// When any document has problems, Decode returns the objects that had none
// together with an ErrorList holding every problem of the input, so callers
// that apply all-or-nothing must check the error first.
func Decode(source string, r io.Reader) ([]*Object, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", source, err)
	}
	var (
		objs []*Object
		errs ErrorList
	)
	for i, doc := range splitDocuments(data) {
		docObjs, docErrs := decodeDocument(doc)
		for _, e := range docErrs {
			e.Source, e.Doc = source, i+1
		}
		errs = append(errs, docErrs...)
		objs = append(objs, docObjs...)
	}
	if len(errs) > 0 {
		return objs, errs
	}
	return objs, nil
}

// DecodeObject decodes one object from its JSON, as the Kubernetes API
// server returns a custom resource, with the same checks as Decode (the
// path `weft apply` takes) and Validate. source names the object in error
// messages (e.g. "cluster"). Server-set metadata (resourceVersion,
// generation, uid, ...) and status are accepted and left out of the
// result; callers that need them read them from the JSON themselves.
func DecodeObject(source string, js []byte) (*Object, error) {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, ErrorList{{Source: source, Msg: "invalid JSON: " + err.Error()}}
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, ErrorList{{Source: source, Msg: "want an object with apiVersion, kind, metadata and spec, got " + describe(v)}}
	}
	o, errs := decodeObject(top)
	for _, e := range errs {
		e.Source = source
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return o, nil
}

// document is the text of one YAML document and where it starts in the input.
type document struct {
	text      []byte
	firstLine int // 1-based line of the input the text starts at
}

// splitDocuments cuts the input at "---" (and "...") marker lines, dropping
// documents with nothing but blank lines and comments. Splitting the text
// ourselves, rather than streaming through a YAML decoder, keeps a syntax
// error in one document from hiding the problems of the others.
func splitDocuments(data []byte) []document {
	var (
		docs    []document
		cur     []byte
		start   = 1
		content bool // cur holds something besides blanks and comments
	)
	flush := func(next int) {
		if content {
			docs = append(docs, document{cur, start})
		}
		cur, content, start = nil, false, next
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i, raw := range lines {
		line := bytes.TrimRight(raw, "\r\n")
		if rest, ok := documentMarker(line); ok {
			flush(i + 1)
			if len(rest) == 0 {
				start = i + 2
				continue
			}
			raw = append(rest, '\n') // "--- {...}": the document starts on the marker line
		}
		if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 && trimmed[0] != '#' {
			content = true
		}
		cur = append(cur, raw...)
	}
	flush(0)
	return docs
}

// documentMarker reports whether line starts or ends a document, and returns
// any content that follows a "---" on the same line.
func documentMarker(line []byte) (rest []byte, ok bool) {
	if bytes.Equal(line, []byte("...")) {
		return nil, true
	}
	if !bytes.HasPrefix(line, []byte("---")) {
		return nil, false
	}
	after := line[3:]
	if len(after) > 0 && after[0] != ' ' && after[0] != '\t' {
		return nil, false // e.g. "----" is content, not a marker
	}
	after = bytes.TrimSpace(after)
	if len(after) == 0 || after[0] == '#' {
		return nil, true
	}
	return append([]byte(nil), after...), true
}

// Top-level fields of a document.
var topLevelFields = map[string]bool{"apiVersion": true, "kind": true, "metadata": true, "spec": true, "status": true}

// Metadata fields the API server sets or weft has no use for; they appear in
// `kubectl get -o yaml` output, so that output must apply unchanged.
var ignoredMetaFields = map[string]bool{
	"creationTimestamp": true, "resourceVersion": true, "uid": true, "generation": true, "managedFields": true,
	"selfLink": true, "ownerReferences": true, "finalizers": true, "deletionTimestamp": true,
	"deletionGracePeriodSeconds": true, "generateName": true,
}

// decodeDocument turns one document into its objects: one, or several when
// the document is a Kubernetes List (as `weft get -o json` prints). It
// returns only the objects without errors. The errors carry each object's
// identity, as far as it could be read, but no source.
func decodeDocument(doc document) ([]*Object, ErrorList) {
	fail := func(msg string) ErrorList { return ErrorList{{Msg: msg}} }
	js, err := yamlToJSON(doc.text)
	if err != nil {
		return nil, fail("invalid YAML: " + shiftLineNumbers(err.Error(), doc.firstLine-1))
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fail("invalid document: " + err.Error())
	}
	if v == nil {
		return nil, nil // a document holding only "null" or "~", which kubectl also skips
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, fail(fmt.Sprintf("document must be a mapping with apiVersion, kind, metadata and spec, got %s", describe(v)))
	}
	if top["kind"] != "List" {
		o, errs := decodeObject(top)
		if o == nil {
			return nil, errs
		}
		return []*Object{o}, nil
	}
	items, ok := top["items"].([]any)
	if !ok {
		return nil, ErrorList{{Kind: "List", Field: "items", Msg: "must be a list of objects"}}
	}
	var (
		objs []*Object
		errs ErrorList
	)
	for i, item := range items {
		m, ok := item.(map[string]any)
		if !ok {
			errs = append(errs, &Error{Field: string(path("items").index(i)), Msg: "must be an object, got " + describe(item)})
			continue
		}
		o, itemErrs := decodeObject(m)
		for _, e := range itemErrs {
			e.Field = strings.TrimSuffix(string(path("items").index(i).field(e.Field)), ".")
		}
		errs = append(errs, itemErrs...)
		if o != nil {
			objs = append(objs, o)
		}
	}
	return objs, errs
}

// decodeObject turns one object's fields into an Object, or returns why not.
func decodeObject(top map[string]any) (*Object, ErrorList) {
	d := &docDecoder{}
	info, kindOK := d.kind(top["kind"], top["spec"])
	d.metadata(top["metadata"])
	if kindOK {
		d.apiVersion(info, top["apiVersion"])
	}
	for _, k := range sortedKeys(top) {
		if !topLevelFields[k] {
			d.errorf(path(k), "unknown field; a document has apiVersion, kind, metadata and spec")
		}
	}
	var spec proto.Message
	switch s, present := top["spec"]; {
	case !present || s == nil:
		d.errorf("spec", "required")
	case kindOK:
		spec = d.spec(info, s)
	}
	if spec == nil {
		return nil, d.errs
	}
	apiVersion, _ := top["apiVersion"].(string)
	o := &Object{APIVersion: apiVersion, Kind: info.Kind, Meta: d.meta, Spec: spec}
	errs := append(d.errs, unshadowed(Validate(o), d.errs)...)
	if len(errs) > 0 {
		return nil, errs
	}
	return o, nil
}

// unshadowed drops the validation errors about fields that already have a
// decoding error, or that contain or lie within one: the decoder leaves out
// what it cannot read, and "required" about a field the user did write (only
// wrongly) would mislead.
func unshadowed(verrs, decodeErrs ErrorList) ErrorList {
	var out ErrorList
	for _, ve := range verrs {
		shadowed := false
		for _, de := range decodeErrs {
			if pathsOverlap(ve.Field, de.Field) {
				shadowed = true
				break
			}
		}
		if !shadowed {
			out = append(out, ve)
		}
	}
	return out
}

func pathsOverlap(a, b string) bool {
	within := func(inner, outer string) bool {
		return strings.HasPrefix(inner, outer) && (len(inner) == len(outer) || inner[len(outer)] == '.' || inner[len(outer)] == '[')
	}
	return a != "" && b != "" && (within(a, b) || within(b, a))
}

// yamlToJSON converts one document, turning a panic in the YAML library into
// an error: hostile input must never take the control plane down.
func yamlToJSON(y []byte) (js []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("YAML parser failed: %v", r)
		}
	}()
	return yaml.YAMLToJSON(y)
}

var lineNumber = regexp.MustCompile(`line (\d+)`)

// shiftLineNumbers rewrites "line N" in a parser message, which counts from
// the start of the document, to count from the start of the input.
func shiftLineNumbers(msg string, offset int) string {
	if offset == 0 {
		return msg
	}
	return lineNumber.ReplaceAllStringFunc(msg, func(m string) string {
		n, err := strconv.Atoi(m[len("line "):])
		if err != nil {
			return m
		}
		return "line " + strconv.Itoa(n+offset)
	})
}

// docDecoder collects the object's identity and errors as one document is read.
type docDecoder struct {
	kindName Kind
	meta     Meta
	errs     ErrorList
}

func (d *docDecoder) errorf(p path, format string, args ...any) {
	d.errs = append(d.errs, &Error{Kind: d.kindName, Namespace: d.meta.Namespace, Name: d.meta.Name, Field: string(p), Msg: fmt.Sprintf(format, args...)})
}

// kind finds the object's kind; spec is only read to explain a refusal.
func (d *docDecoder) kind(v, spec any) (KindInfo, bool) {
	s, ok := v.(string)
	if !ok || s == "" {
		if v == nil {
			d.errorf("kind", "required")
		} else {
			d.errorf("kind", "must be a string, got %s", describe(v))
		}
		return KindInfo{}, false
	}
	for _, k := range Kinds {
		if string(k.Kind) == s {
			d.kindName = k.Kind
			return k, true
		}
	}
	if msg := refusedKindMessage(s, spec); msg != "" {
		d.errorf("kind", "%s", msg)
		return KindInfo{}, false
	}
	d.errorf("kind", "unsupported kind %q; weft understands %s", s, kindNames())
	return KindInfo{}, false
}

func (d *docDecoder) apiVersion(info KindInfo, v any) {
	s, ok := v.(string)
	if !ok || s == "" {
		d.errorf("apiVersion", "required, e.g. %q", info.PreferredAPIVersion())
		return
	}
	group, version, _ := strings.Cut(s, "/")
	if group != info.Group {
		d.errorf("apiVersion", "%s belongs to API group %s, got %q", info.Kind, info.Group, s)
		return
	}
	for _, v := range info.Versions {
		if v == version {
			return
		}
	}
	d.errorf("apiVersion", "unsupported version %q of %s; use one of %s", version, info.Group, strings.Join(info.Versions, ", "))
}

func (d *docDecoder) metadata(v any) {
	m, ok := v.(map[string]any)
	if !ok {
		if v == nil {
			d.errorf("metadata", "required, with at least a name")
		} else {
			d.errorf("metadata", "must be an object, got %s", describe(v))
		}
		return
	}
	// Read the identity first so every later error names the object.
	if name, ok := m["name"].(string); ok {
		d.meta.Name = name
	}
	if ns, ok := m["namespace"].(string); ok {
		d.meta.Namespace = ns
	}
	for _, k := range sortedKeys(m) {
		p := path("metadata").field(k)
		switch val := m[k]; {
		case k == "name":
			name, isStr := val.(string)
			switch {
			case !isStr || name == "":
				d.errorf(p, "required, as a string")
			case !isDNS1123Subdomain(name):
				d.errorf(p, "%q is not a valid name: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters", name)
			}
		case k == "namespace":
			ns, isStr := val.(string)
			switch {
			case val == nil:
			case !isStr:
				d.errorf(p, "must be a string, got %s", describe(val))
			case ns != "" && !isDNS1123Label(ns):
				d.errorf(p, "%q is not a valid namespace: use lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters", ns)
			}
		case k == "labels":
			d.meta.Labels = d.stringMap(p, val)
		case k == "annotations":
			d.meta.Annotations = d.stringMap(p, val)
		case ignoredMetaFields[k]:
		default:
			d.errorf(p, "unknown field")
		}
	}
	if _, present := m["name"]; !present {
		d.errorf("metadata.name", "required")
	}
}

func (d *docDecoder) stringMap(p path, v any) map[string]string {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		d.errorf(p, "must be a map of strings, got %s", describe(v))
		return nil
	}
	out := make(map[string]string, len(m))
	for _, k := range sortedKeys(m) {
		s, ok := m[k].(string)
		if !ok {
			d.errorf(p.key(k), "must be a string, got %s (quote it)", describe(m[k]))
			continue
		}
		out[k] = s
	}
	return out
}

// spec checks the spec against the kind's message and converts it. When
// parts of the spec are wrong, the rest is still converted (and so can be
// validated), so one round reports as much as possible.
func (d *docDecoder) spec(info KindInfo, v any) proto.Message {
	msg := info.New()
	w := &specWalker{}
	norm := w.message(msg.ProtoReflect().Descriptor(), v, "spec")
	for _, e := range w.errs {
		d.errorf(e.field, "%s", e.msg)
	}
	if norm == nil {
		return nil
	}
	js, err := json.Marshal(norm)
	if err == nil {
		err = protojson.UnmarshalOptions{}.Unmarshal(js, msg)
	}
	if err != nil {
		if len(w.errs) == 0 {
			// The walker should have caught this; report it rather than lose it.
			d.errorf("spec", "%v", err)
		}
		return nil
	}
	return msg
}

// isDNS1123Subdomain is Kubernetes' rule for object names (custom
// resources included) and label prefixes: at most 253 characters in all,
// dot-separated parts of lower-case letters, digits and '-' that start and
// end with a letter or digit. Unlike a DNS label, a part has no 63-character
// limit of its own: Kubernetes does not impose one, and Istio's own test
// configuration has longer names.
func isDNS1123Subdomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if !isDNS1123Part(part) {
			return false
		}
	}
	return true
}

// isDNS1123Label is a DNS label: one part of at most 63 characters, the rule
// for namespaces and subset names.
func isDNS1123Label(s string) bool { return len(s) <= 63 && isDNS1123Part(s) }

// isDNS1123Part reports whether s is a non-empty run of lower-case letters,
// digits and '-' that starts and ends with a letter or digit.
func isDNS1123Part(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}
