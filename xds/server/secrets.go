package server

import (
	"fmt"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/weft-mesh/weft/ca"
	"github.com/weft-mesh/weft/xds/node"
	"github.com/weft-mesh/weft/xds/resource"
)

// renewRetry bounds how soon a failed re-issue is tried again; renewFloor
// keeps a tiny lifetime from turning renewals into a busy loop.
const (
	renewRetryMin = time.Second
	renewRetryMax = 30 * time.Second
	renewFloor    = 100 * time.Millisecond
)

// Identity returns the SPIFFE ID a proxy is issued a certificate for:
// spiffe://TD/ns/NAMESPACE/sa/SERVICE_ACCOUNT. Namespace and service
// account must be plain names, so no metadata can forge a path that reads
// as another identity.
func Identity(trustDomain string, m *node.Meta) (string, error) {
	sa := m.ServiceAccount
	if sa == "" {
		sa = ca.DefaultServiceAccount
	}
	if err := checkName(m.Namespace); err != nil {
		return "", fmt.Errorf("node %s: metadata %s: %w", m.ID(), node.KeyNamespace, err)
	}
	if err := checkName(sa); err != nil {
		return "", fmt.Errorf("node %s: metadata %s: %w", m.ID(), node.KeyServiceAccount, err)
	}
	return ca.SPIFFEID(trustDomain, m.Namespace, sa), nil
}

// checkName accepts Kubernetes-style names: letters, digits, '-', '.', '_'.
func checkName(s string) error {
	if s == "" || len(s) > 253 {
		return fmt.Errorf("%q: want 1 to 253 characters", s)
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
		default:
			return fmt.Errorf("%q: character %q not allowed", s, r)
		}
	}
	return nil
}

// admit asks Options.Admit about m and turns a refusal into PermissionDenied.
func (s *Server) admit(m *node.Meta) error {
	if s.opts.Admit == nil {
		return nil
	}
	if err := s.opts.Admit(m); err != nil {
		return status.Error(codes.PermissionDenied, err.Error())
	}
	return nil
}

// issue gives the stream a fresh certificate and trust bundle as its SDS
// target and schedules the next renewal at half the certificate's
// remaining lifetime. Without an Issuer the target is empty.
func (c *conn) issue() error {
	iss := c.s.opts.Issuer
	if iss == nil {
		c.secrets = resource.Empty
		return nil
	}
	svid, err := iss.Issue(c.identity, c.s.opts.CertTTL)
	if err != nil {
		return fmt.Errorf("issue certificate for %s: %w", c.identity, err)
	}
	now := time.Now()
	var secrets []*resource.Resource
	for _, m := range []*tlsv3.Secret{ca.RootSecret(ca.SecretRoot, iss.RootPEM()), ca.CertificateSecret(ca.SecretDefault, svid)} {
		r, err := resource.New(m.GetName(), m)
		if err != nil {
			return fmt.Errorf("encode secret %s: %w", m.GetName(), err)
		}
		secrets = append(secrets, r)
	}
	c.secrets = resource.NewSet(secrets)
	delete(c.targets, SecretType)
	c.certExpiry = svid.NotAfter
	c.scheduleRenew(svid.NotAfter.Sub(now) / 2)
	c.log.Info("xds certificate issued", "id", c.identity, "not_after", svid.NotAfter.Format(time.RFC3339))
	return nil
}

// renew re-issues the certificate when its renewal time has come. On
// failure the current certificate stays and a retry is scheduled.
func (c *conn) renew() {
	if err := c.issue(); err != nil {
		retry := min(max(c.s.opts.CertTTL/20, renewRetryMin), renewRetryMax)
		c.log.Error("xds certificate renewal failed; keeping the current one", "err", err,
			"expires", c.certExpiry.Format(time.RFC3339), "retry_in", retry)
		c.scheduleRenew(retry)
	}
}

func (c *conn) scheduleRenew(d time.Duration) {
	d = max(d, renewFloor)
	if c.renewTimer != nil {
		c.renewTimer.Stop()
	}
	c.renewTimer = time.AfterFunc(d, func() {
		select {
		case c.renewCh <- struct{}{}:
		default:
		}
	})
}

func (c *conn) stopRenew() {
	if c.renewTimer != nil {
		c.renewTimer.Stop()
	}
}

// redactAll returns res with every secret replaced by a redacted copy.
func redactAll(res []proto.Message) []proto.Message {
	out := make([]proto.Message, len(res))
	for i, m := range res {
		if s, ok := m.(*tlsv3.Secret); ok {
			m = ca.Redact(s)
		}
		out[i] = m
	}
	return out
}
