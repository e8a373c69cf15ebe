package sds

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"
	"sync/atomic"
)

// Store holds the current secret of every name a configuration has referred
// to. It outlives configurations: TLS settings hold Refs, and publishing a
// new set of secrets swaps what those Refs return, atomically per secret.
// It is safe for concurrent use.
type Store struct {
	mu   sync.Mutex
	refs map[string]*Ref
}

// Ref is a handle on one named secret; Load is lock-free.
type Ref struct {
	name string
	cur  atomic.Pointer[Secret]
}

// NewStore returns an empty Store.
func NewStore() *Store { return &Store{refs: map[string]*Ref{}} }

// Ref returns the handle of the named secret, creating it (empty) if needed.
func (s *Store) Ref(name string) *Ref {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.refs[name]
	if r == nil {
		r = &Ref{name: name}
		s.refs[name] = r
	}
	return r
}

// Publish makes secrets the current values of their names. Names not in
// secrets keep their value: configurations that still refer to them (being
// drained) keep working.
func (s *Store) Publish(secrets map[string]*Secret) {
	for name, sec := range secrets {
		s.Ref(name).cur.Store(sec)
	}
}

// Get returns the current secret of name, nil when none was published.
func (s *Store) Get(name string) *Secret {
	s.mu.Lock()
	r := s.refs[name]
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	return r.Load()
}

// Name returns the secret's name.
func (r *Ref) Name() string { return r.name }

// Load returns the current secret, nil when none was published yet.
func (r *Ref) Load() *Secret { return r.cur.Load() }

// Certificate returns the current certificate, or an error naming the
// secret when it has not arrived or is not a tls_certificate.
func (r *Ref) Certificate() (*tls.Certificate, error) {
	s := r.cur.Load()
	switch {
	case s == nil:
		return nil, fmt.Errorf("secret %q not received", r.name)
	case s.Certificate == nil:
		return nil, fmt.Errorf("secret %q holds no tls_certificate", r.name)
	}
	return s.Certificate, nil
}

// Roots returns the current trusted CAs, or an error naming the secret when
// it has not arrived or is not a validation_context.
func (r *Ref) Roots() (*x509.CertPool, error) {
	s := r.cur.Load()
	switch {
	case s == nil:
		return nil, fmt.Errorf("secret %q not received", r.name)
	case s.Roots == nil:
		return nil, fmt.Errorf("secret %q holds no validation_context", r.name)
	}
	return s.Roots, nil
}
