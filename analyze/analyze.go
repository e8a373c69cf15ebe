// Package analyze finds configuration that is valid object by object but
// wrong as a whole: routes to subsets no DestinationRule defines, unknown
// hosts and gateways, weights that do not add up, security policies that
// name nobody or contradict each other, and the like. Each finding
// has a stable code, documented in README.md, so users and scripts can look
// it up and tell findings apart across releases.
package analyze

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/weft-mesh/weft/config"
	"github.com/weft-mesh/weft/model"
)

// Level is how serious a finding is.
type Level string

// Levels, from most to least serious.
const (
	Error   Level = "Error"   // traffic will not flow as written
	Warning Level = "Warning" // likely a mistake; some requests may fail
	Info    Level = "Info"    // worth knowing; may be intended
)

// rank orders the levels, most serious highest.
var rank = map[Level]int{Info: 1, Warning: 2, Error: 3}

// AtLeast reports whether l is as serious as min or more: a Warning is at
// least Info and at least Warning, not at least Error.
func (l Level) AtLeast(min Level) bool { return rank[l] >= rank[min] && rank[l] > 0 }

// ParseLevel reads a level as istioctl's --failure-threshold takes it:
// Info, Warning (or Warn) or Error, in any case.
func ParseLevel(s string) (Level, error) {
	switch strings.ToLower(s) {
	case "info":
		return Info, nil
	case "warning", "warn":
		return Warning, nil
	case "error":
		return Error, nil
	}
	return "", fmt.Errorf("level %q: want Info, Warning or Error", s)
}

// Message codes. They never change meaning; retired codes are not reused.
const (
	// Objects the Kubernetes store refuses (reported in their status, not
	// by Analyze): it never sees invalid objects in the local store.
	CodeInvalidObject        = "WEFT0001"
	CodeShadowedServiceEntry = "WEFT0002"

	CodeUndefinedSubset   = "WEFT0101"
	CodeUnknownHost       = "WEFT0102"
	CodeWeightSum         = "WEFT0103"
	CodeConflictingRoutes = "WEFT0104"
	CodeUnknownGateway    = "WEFT0105"
	CodeEmptySubset       = "WEFT0106"
	CodeUnknownPort       = "WEFT0107"
	CodeDuplicateHost     = "WEFT0108"
	CodeRetryBudget       = "WEFT0109"
	CodeHashNoEffect      = "WEFT0110"
	CodeIneffectiveFault  = "WEFT0111"
	CodeProtocolMismatch  = "WEFT0112"

	CodeUnknownPrincipal   = "WEFT0201"
	CodeMTLSConflict       = "WEFT0202"
	CodeUnservedMTLSPort   = "WEFT0203"
	CodeNonMemberWorkloads = "WEFT0204"
	CodeIgnoredMemberRoll  = "WEFT0205"
)

// names are the codes' names, as Istio's analysis messages carry one
// (status.validationMessages[].type.name).
var names = map[string]string{
	CodeInvalidObject: "InvalidObject", CodeShadowedServiceEntry: "ShadowedServiceEntry",
	CodeUndefinedSubset: "UndefinedSubset", CodeUnknownHost: "UnknownHost", CodeWeightSum: "WeightSum",
	CodeConflictingRoutes: "ConflictingRoutes", CodeUnknownGateway: "UnknownGateway", CodeEmptySubset: "EmptySubset",
	CodeUnknownPort: "UnknownPort", CodeDuplicateHost: "DuplicateHost", CodeRetryBudget: "RetryBudget",
	CodeHashNoEffect: "HashNoEffect", CodeIneffectiveFault: "IneffectiveFault", CodeProtocolMismatch: "ProtocolMismatch",
	CodeUnknownPrincipal: "UnknownPrincipal", CodeMTLSConflict: "MTLSConflict", CodeUnservedMTLSPort: "UnservedMTLSPort",
	CodeNonMemberWorkloads: "NonMemberWorkloads", CodeIgnoredMemberRoll: "IgnoredMemberRoll",
}

// Name returns a code's name, e.g. "UndefinedSubset" for WEFT0101; ""
// for an unknown code.
func Name(code string) string { return names[code] }

// Message is one finding about one object.
type Message struct {
	Code   string
	Level  Level
	Object config.Key
	Field  string // path in YAML spelling, e.g. spec.http[0].route[0].destination.subset; "" for the whole object
	Text   string
}

// String renders the message as
// "Warning [WEFT0101] VirtualService default/catalog spec.http[0]...: TEXT".
func (m Message) String() string {
	if m.Field == "" {
		return fmt.Sprintf("%s [%s] %s: %s", m.Level, m.Code, m.Object, m.Text)
	}
	return fmt.Sprintf("%s [%s] %s %s: %s", m.Level, m.Code, m.Object, m.Field, m.Text)
}

// Analyze checks the snapshot as a whole and returns its findings, sorted
// by object (kind, namespace, name), then field, then code.
func Analyze(s *model.Snapshot) []Message {
	a := &analyzer{s: s}
	a.virtualServices()
	a.destinationRules()
	a.hashEffect()
	a.serviceEntries()
	a.security()
	sortMessages(a.msgs)
	return a.msgs
}

// analyzer collects findings for one snapshot.
type analyzer struct {
	s    *model.Snapshot
	msgs []Message
	wls  []*workload // the registry's workloads, once listed
	// wildcards are the services with a wildcard host, once listed:
	// knownHost runs for every destination, which must not cost a scan
	// of every service each time.
	wildcards []*model.Service
	listedWC  bool
}

func (a *analyzer) report(code string, level Level, o *config.Object, field, format string, args ...any) {
	a.msgs = append(a.msgs, Message{Code: code, Level: level, Object: o.Key(), Field: field, Text: fmt.Sprintf(format, args...)})
}

// knownHost reports whether host (fully qualified) is a service in the
// registry, directly or through a wildcard ServiceEntry host.
func (a *analyzer) knownHost(host string) bool {
	if a.s.Service(host) != nil {
		return true
	}
	if !a.listedWC {
		for _, svc := range a.s.Services() {
			if strings.HasPrefix(svc.Hostname, "*") {
				a.wildcards = append(a.wildcards, svc)
			}
		}
		a.listedWC = true
	}
	for _, svc := range a.wildcards {
		if model.HostMatches(svc.Hostname, host) {
			return true
		}
	}
	return false
}

func sortMessages(msgs []Message) {
	sort.SliceStable(msgs, func(i, j int) bool {
		a, b := msgs[i], msgs[j]
		switch {
		case a.Object.Kind != b.Object.Kind:
			return a.Object.Kind < b.Object.Kind
		case a.Object.Namespace != b.Object.Namespace:
			return a.Object.Namespace < b.Object.Namespace
		case a.Object.Name != b.Object.Name:
			return a.Object.Name < b.Object.Name
		case a.Field != b.Field:
			return naturalLess(a.Field, b.Field)
		case a.Code != b.Code:
			return a.Code < b.Code
		}
		return a.Text < b.Text
	})
}

// naturalLess orders field paths with their indexes compared as numbers,
// so http[2] comes before http[10].
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digitPrefix(a), digitPrefix(b)
		if da > 0 && db > 0 {
			na, _ := strconv.Atoi(a[:da])
			nb, _ := strconv.Atoi(b[:db])
			if na != nb {
				return na < nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digitPrefix(s string) int {
	n := 0
	for n < len(s) && n < 9 && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}
