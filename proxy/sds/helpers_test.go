package sds_test

import (
	"crypto/x509"
	"encoding/base64"

	"github.com/weft-mesh/weft/proxy/sds"
)

func x509Opts(roots *sds.Secret) x509.VerifyOptions {
	return x509.VerifyOptions{Roots: roots.Roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
}

func encodeB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
