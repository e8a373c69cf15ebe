package api

import (
	"time"

	"github.com/weft-mesh/weft/analyze"
)

// These are the API's wire types; api/client re-exports them so the CLI
// needs only the client package.

// Source is one input file of an apply, delete or analyze request.
type Source struct {
	Name    string `json:"name"`    // file name as the user gave it, or "-" for stdin
	Content string `json:"content"` // the file's YAML or JSON documents
}

// SourcesRequest is the body of POST /api/v1/apply, /delete and /analyze.
type SourcesRequest struct {
	Sources []Source `json:"sources"`
}

// ObjectResult is what a write did to one object.
type ObjectResult struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Action    string `json:"action"` // created, configured, unchanged, deleted
}

// ApplyResponse is the body of a successful apply.
type ApplyResponse struct {
	Results []ObjectResult `json:"results"`
	// Messages are the analyzer's findings about the applied objects, and
	// any finding elsewhere that this apply introduced: at most
	// MaxApplyMessagesPerCode of each code.
	Messages []analyze.Message `json:"messages"`
	// OmittedMessages counts the findings left out of Messages; GET
	// /api/v1/analyze lists them all.
	OmittedMessages int   `json:"omittedMessages,omitempty"`
	DryRun          bool  `json:"dryRun,omitempty"`
	Revision        int64 `json:"revision,omitempty"` // store revision after the write
}

// DeleteResponse is the body of a successful delete.
type DeleteResponse struct {
	Results  []ObjectResult `json:"results"`
	Revision int64          `json:"revision,omitempty"`
}

// AnalyzeResponse is the body of GET and POST /api/v1/analyze.
type AnalyzeResponse struct {
	Messages []analyze.Message `json:"messages"`
	Revision int64             `json:"revision"`
}

// FieldError is one decoding or validation problem, as config.Error.
type FieldError struct {
	Source    string `json:"source,omitempty"`
	Doc       int    `json:"doc,omitempty"`
	Kind      string `json:"kind,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	Field     string `json:"field,omitempty"`
	Message   string `json:"message"`
}

// ErrorResponse is the body of every non-2xx answer. Error is always set,
// one problem per line; Errors and Messages detail a refused apply.
type ErrorResponse struct {
	Error    string            `json:"error"`
	Errors   []FieldError      `json:"errors,omitempty"`
	Messages []analyze.Message `json:"messages,omitempty"`
}

// ProxiesResponse is the body of GET /api/v1/proxies.
type ProxiesResponse struct {
	Proxies []ProxyInfo `json:"proxies"`
}

// ProxyInfo describes one proxy known to the xDS server.
type ProxyInfo struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Workload    string            `json:"workload,omitempty"`
	Type        string            `json:"type"`            // sidecar or router
	Admin       string            `json:"admin,omitempty"` // admin address: /ready, /config_dump, /stats/prometheus
	Labels      map[string]string `json:"labels,omitempty"`
	Connected   bool              `json:"connected"`
	ConnectedAt time.Time         `json:"connectedAt,omitzero"`
	Acked       map[string]string `json:"acked,omitempty"` // type URL (or short kind) -> acknowledged version
	LastNack    string            `json:"lastNack,omitempty"`
}

// ProxySource is the control plane's view of connected proxies.
type ProxySource interface {
	// Proxies lists every proxy, connected or recently gone.
	Proxies() []ProxyInfo
	// ProxyConfig returns the JSON of the resources of kind (listeners,
	// routes, clusters, endpoints or secrets) last sent to proxy id, as an
	// Envoy config dump. The API redacts private keys in it again before
	// answering.
	ProxyConfig(id, kind string) ([]byte, error)
}

// ProxyConfigKinds are the kinds GET /api/v1/proxies/{id}/config/{kind}
// accepts; the singular forms are accepted too and mean the same.
var ProxyConfigKinds = []string{"listeners", "routes", "clusters", "endpoints", "secrets"}
