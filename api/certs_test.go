package api_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/weft-mesh/weft/api"
	"github.com/weft-mesh/weft/api/client"
)

func TestIssueCertificate(t *testing.T) {
	issue := func(ns, sa string) (*api.Certificate, error) {
		if ns == "outside" {
			return nil, fmt.Errorf("%w: namespace %q is not a member of the mesh", api.ErrRefused, ns)
		}
		return &api.Certificate{ID: "spiffe://cluster.local/ns/" + ns + "/sa/" + sa, CertChain: "CHAIN", PrivateKey: "KEY", Root: "ROOT", NotAfter: time.Unix(1e9, 0)}, nil
	}
	f := newFixture(t, api.Options{Token: testToken, Certificates: issue})
	body := `{"namespace":"shop","serviceAccount":"caller"}`
	if status, msg, _ := raw(t, "POST", f.srv.URL+"/api/v1/certificates", "", "", body); status != 401 {
		t.Errorf("without the API token: %d %q", status, msg)
	}
	c := client.New(f.srv.URL, client.WithToken(testToken))
	cert, err := c.IssueCertificate(context.Background(), "shop", "caller")
	if err != nil || cert.ID != "spiffe://cluster.local/ns/shop/sa/caller" || cert.PrivateKey != "KEY" {
		t.Errorf("issued %+v, %v", cert, err)
	}
	if _, err := c.IssueCertificate(context.Background(), "outside", "x"); err == nil || !strings.Contains(err.Error(), "not a member") {
		t.Errorf("refusal: %v", err)
	}
	var apiErr *client.APIError
	if _, err := c.IssueCertificate(context.Background(), "outside", "x"); !errors.As(err, &apiErr) || apiErr.Status != 403 {
		t.Errorf("refusal status: %v", err)
	}
	if status, _, _ := raw(t, "POST", f.srv.URL+"/api/v1/certificates", "Bearer "+testToken, "", `{"namespace":"shop"}`); status != 400 {
		t.Errorf("without a service account: %d", status)
	}
	if status, _, _ := raw(t, "POST", newFixture(t, api.Options{}).srv.URL+"/api/v1/certificates", "", "", body); status != 503 {
		t.Errorf("without an issuer: %d", status)
	}
}
