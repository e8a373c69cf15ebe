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
	// Revision is the store revision of the newest configuration generated
	// for the proxy; Sync says whether the proxy ACKed all of it: synced,
	// pending or nacked, with SyncDetail saying what is pending or refused.
	Revision   int64  `json:"revision"`
	Sync       string `json:"sync,omitempty"`
	SyncDetail string `json:"syncDetail,omitempty"`
	// SyncedRevision is the newest revision the proxy ACKed in full.
	SyncedRevision int64 `json:"syncedRevision"`
}

// Sync states of a proxy for a revision (ProxySync.State, ProxyInfo.Sync).
const (
	SyncSynced  = "synced"  // the proxy ACKed the revision, or a later one, in full
	SyncPending = "pending" // not yet
	SyncNACKed  = "nacked"  // the proxy rejected the configuration of the revision
)

// SyncResponse is the body of GET /api/v1/sync?revision=N: whether every
// connected proxy has ACKed the configuration of store revision N (or of
// a later one), and which have not.
type SyncResponse struct {
	Revision int64       `json:"revision"` // the revision asked about (default: the store's current one)
	Synced   bool        `json:"synced"`   // every connected proxy is synced
	Proxies  []ProxySync `json:"proxies"`  // every connected proxy, by ID
}

// ProxySync is one proxy's state for the revision a SyncResponse is about.
type ProxySync struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	State     string `json:"state"`            // SyncSynced, SyncPending or SyncNACKed
	Revision  int64  `json:"revision"`         // the newest revision generated for the proxy
	Detail    string `json:"detail,omitempty"` // what is pending, or what was refused
}

// HealthResponse is the body of GET /healthz.
type HealthResponse struct {
	Status   string `json:"status"`   // "ok"
	Revision int64  `json:"revision"` // the store's current revision
	Version  string `json:"version"`  // the control plane's weft version
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
