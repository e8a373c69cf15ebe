package controlplane

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weft-mesh/weft/api/client"
	"github.com/weft-mesh/weft/ca"
)

// TestScopedJoinTokens: by default only identity-scoped join tokens open
// the xDS door (a mesh-wide join-token file from an older run is ignored).
// A token made through the API, with the API token, admits the identity it
// names and no other, with a refusal naming both; it authorizes telemetry
// reports; revoking it disconnects the proxy that joined with it (issue 14:
// any join-token holder could take any identity).
func TestScopedJoinTokens(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, JoinTokenFile), []byte("old-mesh-wide-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cp := startCPIn(t, dir, Options{})
	ctx := context.Background()
	if cp.JoinToken() != "" {
		t.Fatal("the mesh-wide join token is on by default")
	}
	if err := openADS(t, cp.XDSAddr(), nil, "old-mesh-wide-token", sidecarIn("default", "reviews")).end(t); status.Code(err) != codes.Unauthenticated ||
		!strings.Contains(err.Error(), "--join-token-scope mesh") {
		t.Errorf("the mesh-wide token without --join-token-scope mesh: %v, want Unauthenticated with a hint", err)
	}

	anon := client.New(cp.APIAddr())
	var ae *client.APIError
	if _, _, err := anon.CreateJoinToken(ctx, "default", "reviews", 0, ""); !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Fatalf("create without the API token: %v, want 401", err)
	}
	if _, err := anon.JoinTokens(ctx); !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Fatalf("list without the API token (reads are open on loopback): %v, want 401", err)
	}
	admin := client.New(cp.APIAddr(), client.WithToken(cp.APIToken()))
	for _, bad := range [][2]string{{"istio-system", "weft-controlplane"}, {"Default", "reviews"}, {"default", "re/views"}, {"", "x"}} {
		if _, _, err := admin.CreateJoinToken(ctx, bad[0], bad[1], 0, ""); !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
			t.Errorf("create for %s/%s: %v, want 400", bad[0], bad[1], err)
		}
	}
	tok, info, err := admin.CreateJoinToken(ctx, "default", "bookinfo-reviews", time.Hour, "reviews VM")
	if err != nil {
		t.Fatal(err)
	}
	if info.Identity() != "default/bookinfo-reviews" || info.Expires.IsZero() || strings.Contains(tok, " ") {
		t.Fatalf("created %q %+v", tok, info)
	}
	list, err := admin.JoinTokens(ctx)
	if err != nil || len(list) != 1 || list[0].ID != info.ID || list[0].Note != "reviews VM" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, JoinTokensFile)); strings.Contains(string(b), tok[len(info.ID)+1:]) {
		t.Error("the token store holds the secret")
	}

	// The identity the token names: configuration and its certificate.
	own := openADS(t, cp.XDSAddr(), nil, tok, sidecarIn("default", "bookinfo-reviews"))
	chain, err := ca.ParseCerts(own.secrets(t)[ca.SecretDefault].GetTlsCertificate().GetCertificateChain().GetInlineBytes())
	if err != nil {
		t.Fatal(err)
	}
	if got := chain[0].URIs[0].String(); got != "spiffe://cluster.local/ns/default/sa/bookinfo-reviews" {
		t.Fatalf("certificate for %s", got)
	}
	// Any other identity: refused, naming both.
	for _, claim := range [][2]string{{"default", "bookinfo-productpage"}, {"istio-system", "istio-ingressgateway-service-account"}, {"kube-system", "admin"}, {"default", ""}} {
		err := openADS(t, cp.XDSAddr(), nil, tok, sidecarIn(claim[0], claim[1])).end(t)
		claimed := claim[0] + "/" + claim[1]
		if claim[1] == "" {
			claimed += "default"
		}
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "default/bookinfo-reviews") || !strings.Contains(err.Error(), claimed) {
			t.Errorf("token for default/bookinfo-reviews claiming %s: %v, want PermissionDenied naming both", claimed, err)
		}
	}

	intake := func(tok string) int {
		code, _, _ := fetch(t, "POST", "http://"+cp.APIAddr()+"/api/v1/telemetry", `{"node":"x"}`, tok)
		return code
	}
	if code := intake(tok); code != http.StatusNoContent {
		t.Errorf("telemetry with the scoped token: %d, want 204", code)
	}

	if _, err := admin.RevokeJoinToken(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	if err := own.end(t); status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("the proxy that joined with a revoked token: %v, want Unauthenticated (revoked)", err)
	}
	if err := openADS(t, cp.XDSAddr(), nil, tok, sidecarIn("default", "bookinfo-reviews")).end(t); status.Code(err) != codes.Unauthenticated {
		t.Errorf("a revoked token: %v, want Unauthenticated", err)
	}
	if code := intake(tok); code != http.StatusUnauthorized {
		t.Errorf("telemetry with a revoked token: %d, want 401", code)
	}
	if _, err := admin.RevokeJoinToken(ctx, info.ID); !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		t.Errorf("revoking twice: %v, want 404", err)
	}
}
