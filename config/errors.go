package config

import (
	"strconv"
	"strings"
)

// Error is one problem found while decoding or validating an object. It
// carries enough context to find the offending line by eye: the file, the
// document within it, the object, and the field path in YAML spelling
// (e.g. "spec.http[0].route[1].destination.subset").
type Error struct {
	Source    string // file name, or "-" for standard input; "" when not decoded from a file
	Doc       int    // 1-based index of the document in Source; 0 when unknown
	Kind      Kind   // "" when the document's kind could not be read
	Namespace string
	Name      string
	Field     string // "" when the problem concerns the whole document
	Msg       string
}

// Error renders the error as
// "FILE: document N: KIND NS/NAME: FIELD: MSG", leaving out the parts that
// are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	if e.Doc > 0 {
		b.WriteString("document ")
		b.WriteString(strconv.Itoa(e.Doc))
		b.WriteString(": ")
	}
	if e.Kind != "" {
		b.WriteString(string(e.Kind))
		if e.Name != "" {
			b.WriteByte(' ')
			if e.Namespace != "" {
				b.WriteString(e.Namespace)
				b.WriteByte('/')
			}
			b.WriteString(e.Name)
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in one input. Decode returns all of them
// at once so a user fixes a file in one round, not one error per attempt.
type ErrorList []*Error

// Error renders one error per line.
func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap exposes the individual errors to errors.Is and errors.As.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// DefaultNamespace sets Namespace to ns on every error that names an object
// but no namespace, so messages match the namespace the caller fills into
// the decoded objects.
func (l ErrorList) DefaultNamespace(ns string) {
	for _, e := range l {
		if e.Namespace == "" && e.Name != "" {
			e.Namespace = ns
		}
	}
}

// path is a field path in YAML spelling, built up while walking an object.
type path string

func (p path) field(name string) path { return p + "." + path(name) }

func (p path) index(i int) path { return p + "[" + path(strconv.Itoa(i)) + "]" }

func (p path) key(k string) path { return p + "[" + path(k) + "]" }
