package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// CertificateRequest is the body of POST /api/v1/certificates: the
// workload identity to issue a certificate for.
type CertificateRequest struct {
	Namespace      string `json:"namespace"`
	ServiceAccount string `json:"serviceAccount"`
}

// Certificate is a workload certificate, as the answer to POST
// /api/v1/certificates: for a proxyless gRPC application, which cannot
// take SDS secrets, and presents it to the control plane's xDS (mTLS) and
// to its peers. The key is the caller's secret; it is never logged.
type Certificate struct {
	ID         string    `json:"id"`         // the SPIFFE ID
	CertChain  string    `json:"certChain"`  // leaf and chain, PEM
	PrivateKey string    `json:"privateKey"` // PKCS#8, PEM
	Root       string    `json:"root"`       // the mesh root, PEM
	NotAfter   time.Time `json:"notAfter"`
}

// CertificateIssuer issues workload certificates for the API; its error is
// shown to the caller (a refusal: 403, any other: 500).
type CertificateIssuer func(namespace, serviceAccount string) (*Certificate, error)

// ErrRefused wraps an issuer's refusal (a namespace outside the mesh, a
// reserved identity).
var ErrRefused = errors.New("refused")

// issueCertificate serves POST /api/v1/certificates. It is a write, so
// the API token guards it.
func (s *Server) issueCertificate(w http.ResponseWriter, r *http.Request) {
	if s.certs == nil {
		writeError(w, http.StatusServiceUnavailable, "this control plane issues no certificates")
		return
	}
	var req CertificateRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "decode certificate request: "+err.Error())
		return
	}
	if req.Namespace == "" || req.ServiceAccount == "" {
		writeError(w, http.StatusBadRequest, "certificate request: namespace and serviceAccount are required")
		return
	}
	cert, err := s.certs(req.Namespace, req.ServiceAccount)
	switch {
	case errors.Is(err, ErrRefused):
		writeError(w, http.StatusForbidden, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.log.Info("workload certificate issued", "id", cert.ID, "not_after", cert.NotAfter)
	writeJSON(w, http.StatusOK, cert)
}
