package client

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/weft-mesh/weft/api"
	"github.com/weft-mesh/weft/jointoken"
)

// JoinToken describes an identity-scoped join token (never its secret).
type JoinToken = jointoken.Token

// CreateJoinToken asks the control plane for a join token that admits
// proxies claiming namespace/serviceAccount only, expiring after ttl (0:
// never). It returns the token, shown only this once, and its description.
func (c *Client) CreateJoinToken(ctx context.Context, namespace, serviceAccount string, ttl time.Duration, note string) (string, JoinToken, error) {
	req := api.TokenRequest{Namespace: namespace, ServiceAccount: serviceAccount, Note: note}
	if ttl > 0 {
		req.TTL = ttl.String()
	}
	var resp api.TokenResponse
	if err := c.doJSON(ctx, http.MethodPost, "/api/v1/tokens", nil, req, &resp); err != nil {
		return "", JoinToken{}, err
	}
	return resp.Token, resp.Info, nil
}

// JoinTokens lists the control plane's scoped join tokens.
func (c *Client) JoinTokens(ctx context.Context) ([]JoinToken, error) {
	var resp api.TokenList
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/tokens", nil, nil, &resp); err != nil {
		return nil, err
	}
	return resp.Tokens, nil
}

// RevokeJoinToken deletes a scoped join token; proxies that joined with it
// are disconnected.
func (c *Client) RevokeJoinToken(ctx context.Context, id string) (JoinToken, error) {
	var info JoinToken
	err := c.doJSON(ctx, http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(id), nil, nil, &info)
	return info, err
}
