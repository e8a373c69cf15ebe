package stats

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/weft-mesh/weft/model"
)

// PeerHeader carries the calling proxy's identity to the called one, as
// Istio's x-envoy-peer-metadata does: the outbound side sets it, the
// inbound side reads it and strips it before the request reaches the app.
// Canonical form, for http.Header keys.
const PeerHeader = "X-Weft-Peer"

// Peer is the identity in PeerHeader: base64 of its JSON.
type Peer struct {
	Workload  string `json:"workload,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	App       string `json:"app,omitempty"`
	Version   string `json:"version,omitempty"`
	// Dst is the FQDN of the service the caller routed the request to.
	Dst string `json:"dst,omitempty"`
}

// Encode returns p as a header value.
func (p Peer) Encode() string {
	b, _ := json.Marshal(p) // strings only: cannot fail
	return base64.RawStdEncoding.EncodeToString(b)
}

// DecodePeer parses a PeerHeader value (padded or not, standard or URL
// alphabet).
func DecodePeer(v string) (Peer, error) {
	var p Peer
	s := strings.TrimRight(strings.TrimSpace(v), "=")
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		return p, fmt.Errorf("peer metadata: %w", err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("peer metadata: %w", err)
	}
	return p, nil
}

// ServiceFromCluster returns the service FQDN of a cluster named
// "outbound|PORT|SUBSET|FQDN"; other names are returned as they are, and
// inbound clusters ("inbound|PORT||") yield "".
func ServiceFromCluster(name string) string {
	if rest, ok := strings.CutPrefix(name, "outbound|"); ok {
		if i := strings.LastIndexByte(rest, '|'); i >= 0 {
			return rest[i+1:]
		}
	}
	if strings.HasPrefix(name, "inbound|") {
		return ""
	}
	return name
}

// ServiceParts splits a service host (an FQDN or authority, a port is
// dropped) into Istio's destination_service, destination_service_name and
// destination_service_namespace. Only a mesh host, NAME.NAMESPACE.svc.cluster.local,
// says its namespace; any other host (a ServiceEntry's, a bare name, an IP
// address) is its own name, as Istio names ServiceEntry services, and its
// namespace is "" (unknown): the caller may know it from elsewhere.
func ServiceParts(host string) (svc, name, namespace string) {
	svc = stripPort(host)
	if in, ok := strings.CutSuffix(svc, "."+model.DomainSuffix); ok && strings.Contains(in, ".") {
		name, _, _ = strings.Cut(in, ".")
		return svc, name, in[strings.LastIndexByte(in, '.')+1:]
	}
	return svc, svc, ""
}

func stripPort(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		return h[:i]
	}
	return h
}
