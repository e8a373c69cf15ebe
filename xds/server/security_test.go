package server

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/weft-mesh/weft/ca"
	"github.com/weft-mesh/weft/xds/node"
	"github.com/weft-mesh/weft/xds/translate"
)

// subscribeRefused subscribes like subscribeAll but ignores send errors:
// the server may have ended the stream already.
func (c *client) subscribeRefused() {
	for i, typ := range pushOrder {
		req := &discovery.DiscoveryRequest{TypeUrl: typ}
		if i == 0 {
			req.Node = c.node
		}
		if c.stream.Send(req) != nil {
			return
		}
	}
}

// streamErr waits for the stream to end and returns its error.
func (c *client) streamErr(t *testing.T) error {
	t.Helper()
	for {
		select {
		case err := <-c.errc:
			return err
		case <-c.resps: // anything sent before the end
		case <-time.After(5 * time.Second):
			t.Fatal("stream not closed")
			return nil
		}
	}
}

func TestAuthentication(t *testing.T) {
	gen := &fakeGen{}
	gen.set("catalog")
	const token = "join-4f1d2c"
	_, addr, logs := startWith(t, gen, Options{Authenticate: TokenAuth(token)})

	for name, tok := range map[string]string{"no token": "", "wrong token": "not-the-token-9a8b"} {
		t.Run(name, func(t *testing.T) {
			c := dialToken(t, addr, sidecar("web"), tok)
			c.subscribeRefused()
			err := c.streamErr(t)
			if grpcstatus.Code(err) != codes.Unauthenticated {
				t.Fatalf("stream ended with %v, want Unauthenticated", err)
			}
			t.Log(err)
		})
	}
	c := dialToken(t, addr, sidecar("web"), token)
	c.subscribeAll()
	c.expect(5)
	for _, secret := range []string{token, "not-the-token-9a8b"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the server logged a token")
		}
	}
	empty := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "))
	if _, err := TokenAuth("")(empty); grpcstatus.Code(err) != codes.Unauthenticated {
		t.Errorf("an empty join token accepted a stream: %v", err)
	}
}

// TestPrincipalBoundsIdentity: a credential scoped to one namespace and
// service account admits a proxy claiming exactly that identity, and
// refuses one claiming another with a message naming both.
func TestPrincipalBoundsIdentity(t *testing.T) {
	gen := &fakeGen{}
	gen.set("catalog")
	scoped := func(context.Context) (Principal, error) {
		return Principal{Namespace: "default", ServiceAccount: "reviews", Subject: "token reviews-1"}, nil
	}
	_, addr, _ := startWith(t, gen, Options{Authenticate: scoped})

	own := sidecar("web")
	own.Namespace, own.ServiceAccount = "default", "reviews"
	c := dial(t, addr, own)
	c.subscribeAll()
	if got := c.expect(5); len(got) != 5 {
		t.Fatalf("own identity got %v", types(got))
	}

	forged := sidecar("web")
	forged.Namespace, forged.ServiceAccount = "kube-system", "admin"
	f := dial(t, addr, forged)
	f.subscribeRefused()
	err := f.streamErr(t)
	if grpcstatus.Code(err) != codes.PermissionDenied ||
		!strings.Contains(err.Error(), "default/reviews") || !strings.Contains(err.Error(), "kube-system/admin") {
		t.Fatalf("forged identity: %v, want PermissionDenied naming both identities", err)
	}
}

// TestAdmission: a proxy outside the mesh is refused with the reason, and
// one already connected is cut off when its namespace leaves.
func TestAdmission(t *testing.T) {
	gen := &fakeGen{}
	gen.set("catalog")
	var members atomic.Value
	members.Store("coolapp")
	admit := func(m *node.Meta) error {
		if m.Namespace != members.Load().(string) {
			return errors.New("namespace " + m.Namespace + " is not a member of ServiceMeshMemberRoll istio-system/default")
		}
		return nil
	}
	s, addr, _ := startWith(t, gen, Options{Admit: admit})

	out := sidecar("web")
	out.Namespace = "outsider"
	c := dial(t, addr, out)
	c.subscribeRefused()
	err := c.streamErr(t)
	if grpcstatus.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "ServiceMeshMemberRoll istio-system/default") {
		t.Fatalf("outsider: %v, want PermissionDenied naming the member roll", err)
	}

	in := dial(t, addr, sidecar("web"))
	in.subscribeAll()
	in.expect(5)
	members.Store("other")
	s.Push("member roll changed")
	if err := in.streamErr(t); grpcstatus.Code(err) != codes.PermissionDenied {
		t.Fatalf("after leaving the mesh: %v, want PermissionDenied", err)
	}
	waitFor(t, "connection removed", func() bool { return len(s.Connections()) == 0 })
}

// secretsOf decodes an SDS response into name -> secret.
func secretsOf(t *testing.T, r *discovery.DiscoveryResponse) map[string]*tlsv3.Secret {
	t.Helper()
	out := map[string]*tlsv3.Secret{}
	for _, a := range r.Resources {
		s := &tlsv3.Secret{}
		if err := a.UnmarshalTo(s); err != nil {
			t.Fatal(err)
		}
		out[s.Name] = s
	}
	return out
}

// leafOf verifies the default secret against the ROOTCA secret and returns
// the leaf certificate.
func leafOf(t *testing.T, secrets map[string]*tlsv3.Secret) *x509.Certificate {
	t.Helper()
	def, root := secrets[ca.SecretDefault], secrets[ca.SecretRoot]
	if def == nil || root == nil || len(secrets) != 2 {
		t.Fatalf("secrets %v, want default and ROOTCA", secrets)
	}
	roots, err := ca.ParseCerts(root.GetValidationContext().GetTrustedCa().GetInlineBytes())
	if err != nil {
		t.Fatalf("ROOTCA: %v", err)
	}
	chain, err := ca.ParseCerts(def.GetTlsCertificate().GetCertificateChain().GetInlineBytes())
	if err != nil {
		t.Fatalf("default chain: %v", err)
	}
	if _, err := ca.ParseKey(def.GetTlsCertificate().GetPrivateKey().GetInlineBytes()); err != nil {
		t.Fatalf("default key: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(roots[0])
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("leaf does not verify against ROOTCA: %v", err)
	}
	return chain[0]
}

func TestSecretsFirstAndRotated(t *testing.T) {
	gen := &fakeGen{}
	gen.set("catalog")
	authority, err := ca.LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	s, addr, logs := startWith(t, gen, Options{Issuer: authority, TrustDomain: "example.org", CertTTL: 2 * time.Second})
	m := sidecar("web")
	m.ServiceAccount = "web-sa"
	c := dial(t, addr, m)
	c.subscribeAll()

	sds := c.next(responseWait)
	if sds == nil || sds.TypeUrl != SecretType {
		t.Fatalf("first response %v, want SDS", sds)
	}
	leaf := leafOf(t, secretsOf(t, sds))
	if want := "spiffe://example.org/ns/coolapp/sa/web-sa"; len(leaf.URIs) != 1 || leaf.URIs[0].String() != want {
		t.Fatalf("identity %v, want %s", leaf.URIs, want)
	}
	// Nothing that could use the certificate goes out before its ACK: the
	// answer to a resubscription (which is SDS again, unACKed) comes first.
	c.send(&discovery.DiscoveryRequest{TypeUrl: SecretType})
	if r := c.next(responseWait); r == nil || r.TypeUrl != SecretType {
		t.Fatalf("%v sent before SDS was ACKed", r)
	} else {
		sds = r
	}
	c.ack(sds)
	if got := c.expect(4); !eq(types(got), []string{"CDS", "EDS", "LDS", "RDS"}) {
		t.Fatalf("after the SDS ACK got %v", types(got))
	}

	// At half its lifetime the certificate is re-issued and pushed alone.
	var next *discovery.DiscoveryResponse
	for deadline := time.Now().Add(responseWait); next == nil && time.Now().Before(deadline); {
		if r := c.next(100 * time.Millisecond); r != nil {
			if r.TypeUrl != SecretType {
				t.Fatalf("rotation pushed %s", shortType(r.TypeUrl))
			}
			next = r
		}
	}
	if next == nil {
		t.Fatalf("certificate not re-issued within %v of a 2s lifetime", responseWait)
	}
	if next.VersionInfo == sds.VersionInfo {
		t.Error("rotated secrets kept the version")
	}
	renewed := leafOf(t, secretsOf(t, next))
	if renewed.SerialNumber.Cmp(leaf.SerialNumber) == 0 || renewed.URIs[0].String() != leaf.URIs[0].String() {
		t.Errorf("renewed leaf: serial %v (was %v), id %v", renewed.SerialNumber, leaf.SerialNumber, renewed.URIs)
	}
	c.ack(next)

	// What the API shows carries no private key.
	waitFor(t, "rotated SDS ACKed", func() bool { return s.Connections()[0].Acked[SecretType] == next.VersionInfo })
	_, res, ok := s.Acked(m.ID(), SecretType)
	if !ok || len(res) != 2 {
		t.Fatalf("Acked SDS: %v, %d", ok, len(res))
	}
	for _, r := range res {
		sec := r.(*tlsv3.Secret)
		if k := sec.GetTlsCertificate().GetPrivateKey(); k != nil && (k.GetInlineString() != ca.Redacted || len(k.GetInlineBytes()) != 0) {
			t.Errorf("Acked %s shows its private key", sec.Name)
		}
		if strings.Contains(sec.String(), "PRIVATE KEY") {
			t.Errorf("Acked %s contains a PEM private key", sec.Name)
		}
	}
	if strings.Contains(logs.String(), "PRIVATE KEY") {
		t.Error("a private key was logged")
	}
}

func TestSecretsByName(t *testing.T) {
	// Envoy subscribes to secrets by name once a cluster or listener names
	// them; it gets only those, and CDS does not wait for an SDS it never
	// asked for.
	gen := &fakeGen{}
	gen.set("catalog")
	authority, err := ca.LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	_, addr, _ := startWith(t, gen, Options{Issuer: authority})
	c := dial(t, addr, sidecar("web"))
	c.send(&discovery.DiscoveryRequest{TypeUrl: translate.ClusterType})
	cds := c.next(responseWait)
	if cds == nil || cds.TypeUrl != translate.ClusterType {
		t.Fatalf("CDS without an SDS subscription: %v", cds)
	}
	c.ack(cds)
	c.send(&discovery.DiscoveryRequest{TypeUrl: SecretType, ResourceNames: []string{ca.SecretRoot}})
	sds := c.next(responseWait)
	if sds == nil || sds.TypeUrl != SecretType {
		t.Fatalf("named SDS: %v", sds)
	}
	if got := secretsOf(t, sds); len(got) != 1 || got[ca.SecretRoot] == nil {
		t.Fatalf("asked for ROOTCA, got %v", got)
	}
}

func TestIdentityRejectsForgedNames(t *testing.T) {
	gen := &fakeGen{}
	gen.set("catalog")
	authority, err := ca.LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	_, addr, _ := startWith(t, gen, Options{Issuer: authority})
	m := sidecar("web")
	m.ServiceAccount = "x/sa/admin"
	c := dial(t, addr, m)
	c.subscribeRefused()
	if err := c.streamErr(t); grpcstatus.Code(err) != codes.InvalidArgument {
		t.Fatalf("service account with a slash: %v, want InvalidArgument", err)
	}
	if id, err := Identity("td", &node.Meta{Type: node.Sidecar, Name: "a", Namespace: "ns"}); err != nil || id != "spiffe://td/ns/ns/sa/default" {
		t.Errorf("Identity without SA = %q, %v", id, err)
	}
}

// brokenIssuer fails after its first certificate.
type brokenIssuer struct {
	*ca.CA
	calls atomic.Int32
}

func (b *brokenIssuer) Issue(id string, ttl time.Duration) (*ca.SVID, error) {
	if b.calls.Add(1) > 1 {
		return nil, errors.New("signing key unavailable")
	}
	return b.CA.Issue(id, ttl)
}

func TestRenewalFailureKeepsStream(t *testing.T) {
	gen := &fakeGen{}
	gen.set("catalog")
	authority, err := ca.LoadOrCreate(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	iss := &brokenIssuer{CA: authority}
	s, addr, _ := startWith(t, gen, Options{Issuer: iss, CertTTL: 2 * time.Second})
	c := dial(t, addr, sidecar("web"))
	c.subscribeAll()
	first := c.expect(5)
	waitFor(t, "a failed renewal", func() bool { return iss.calls.Load() >= 2 })
	// Still the first certificate: nothing was pushed for the failure.
	if got, sds := c.settleSDS(); len(got) != 0 || sds.VersionInfo != first[0].VersionInfo {
		t.Errorf("a failed renewal pushed %v, then SDS %s (first %s)", types(got), sds.VersionInfo, first[0].VersionInfo)
	}
	if len(s.Connections()) != 1 {
		t.Error("a failed renewal closed the stream")
	}
}
