package mtls

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
)

// revocations reads CRLs (PEM "X509 CRL" blocks, or one DER CRL) into the
// set of revoked certificates, keyed by issuer and serial.
func revocations(b []byte) (map[string]bool, error) {
	var ders [][]byte
	rest := b
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "X509 CRL" {
			return nil, fmt.Errorf("PEM block %d: type %q, want X509 CRL", len(ders), blk.Type)
		}
		ders = append(ders, blk.Bytes)
	}
	if len(ders) == 0 {
		ders = [][]byte{b} // not PEM: DER
	}
	out := map[string]bool{}
	for i, der := range ders {
		rl, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, fmt.Errorf("CRL %d: %w", i, err)
		}
		for _, e := range rl.RevokedCertificateEntries {
			out[revocationKey(rl.RawIssuer, e.SerialNumber)] = true
		}
	}
	return out, nil
}

func revocationKey(issuer []byte, serial *big.Int) string {
	return string(issuer) + "/" + serial.String()
}
