package config

import "fmt"

// ValidateIdentity checks a workload identity as Kubernetes names it: the
// namespace a DNS-1123 label, the service account a DNS-1123 subdomain.
// The error names the offending part.
func ValidateIdentity(namespace, serviceAccount string) error {
	if !isDNS1123Label(namespace) {
		return fmt.Errorf("namespace %q: want a DNS-1123 label (lower-case letters, digits and '-', at most 63)", namespace)
	}
	if !isDNS1123Subdomain(serviceAccount) {
		return fmt.Errorf("service account %q: want a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', at most 253)", serviceAccount)
	}
	return nil
}
