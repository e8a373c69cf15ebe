package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/weft-mesh/weft/api"
)

// CanaryResponse is what the control plane knows of a canary beyond its
// status (api.CanaryResponse).
type CanaryResponse = api.CanaryResponse

// Canary returns the analysis' view of a canary: its target, events,
// checks and weight history.
func (c *Client) Canary(ctx context.Context, namespace, name string) (*CanaryResponse, error) {
	var resp CanaryResponse
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/canaries/"+url.PathEscape(namespace)+"/"+url.PathEscape(name), nil, nil, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// CanaryCommand gives a canary a manual command: promote, abort or resume.
func (c *Client) CanaryCommand(ctx context.Context, namespace, name, action string) (*CanaryResponse, error) {
	var resp CanaryResponse
	path := "/api/v1/canaries/" + url.PathEscape(namespace) + "/" + url.PathEscape(name) + "/" + url.PathEscape(action)
	if err := c.doJSON(ctx, http.MethodPost, path, nil, []byte("{}"), &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}
