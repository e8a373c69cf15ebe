package filter

import "strings"

// Flag is a set of Envoy response flags (%RESPONSE_FLAGS%). The bit order is
// Envoy's, so String lists several flags in the order Envoy prints them.
type Flag uint32

// Response flags, as Envoy names them.
const (
	NoHealthy             Flag = 1 << iota // UH: no healthy upstream
	UpstreamTimeout                        // UT: upstream request timeout
	UpstreamReset                          // UR: upstream remote reset
	ConnectFailure                         // UF: upstream connection failure
	ConnectionTermination                  // UC: upstream connection termination
	Overflow                               // UO: upstream overflow (circuit breaking)
	NoRoute                                // NR: no route
	DelayInjected                          // DI: fault delay injected
	FaultInjected                          // FI: fault abort injected
	DownstreamClosed                       // DC: downstream connection termination
	RetryLimitExceeded                     // URX: upstream retry limit exceeded
	NoCluster                              // NC: no cluster found
	RateLimited                            // RL: local rate limit (429)
	RBACDenied                             // RBAC: denied by an RBAC filter (403, or a closed TCP connection)
)

var flagNames = [...]string{"UH", "UT", "UR", "UF", "UC", "UO", "NR", "DI", "FI", "DC", "URX", "NC", "RL", "RBAC"}

// String returns the flags as Envoy prints them: comma separated, "" when
// none. A single flag does not allocate.
func (f Flag) String() string {
	if f == 0 {
		return ""
	}
	if f&(f-1) == 0 {
		for i, n := range flagNames {
			if f == 1<<i {
				return n
			}
		}
	}
	var b strings.Builder
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(n)
		}
	}
	return b.String()
}
