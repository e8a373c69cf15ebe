// Package jointoken keeps identity-scoped join tokens: secrets a proxy
// presents on its xDS stream (and with its telemetry reports) that admit
// exactly one workload identity, a namespace and service account, so a
// token's holder can get certificates for that identity and no other.
//
// A token reads ID.SECRET: the ID names it in listings and revocations,
// the SECRET is 32 random bytes. Only the SHA-256 of the secret is kept,
// in a JSON file (mode 0600) that survives restarts; tokens minted for
// proxies of the control plane's own process may be kept in memory only.
package jointoken

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Token describes an issued token; it never holds the secret.
type Token struct {
	ID             string    `json:"id"`
	Namespace      string    `json:"namespace"`
	ServiceAccount string    `json:"serviceAccount"`
	Created        time.Time `json:"created"`
	// Expires is when the token stops admitting proxies; zero: never.
	Expires time.Time `json:"expires,omitzero"`
	// Note says what the token is for, e.g. "weft run default/reviews-v1-x7k2".
	Note string `json:"note,omitempty"`
	// Ephemeral tokens live in memory only and end with the process.
	Ephemeral bool `json:"ephemeral,omitempty"`
}

// Identity returns "NAMESPACE/SERVICE_ACCOUNT".
func (t Token) Identity() string { return t.Namespace + "/" + t.ServiceAccount }

// Errors of Verify and Check. Neither says more than needed: an unknown
// and a revoked token look the same.
var (
	ErrUnknown = errors.New("unknown or revoked join token")
	ErrExpired = errors.New("expired join token")
)

// record is a Token as stored: with the secret's digest.
type record struct {
	Token
	SHA256 string `json:"sha256"`
}

type file struct {
	Tokens []record `json:"tokens"`
}

// Store holds the tokens. It is safe for concurrent use.
type Store struct {
	path string
	now  func() time.Time

	mu   sync.Mutex
	byID map[string]*record
}

// Open loads the store kept at path, or starts an empty one there; with
// path "" nothing is persisted.
func Open(path string) (*Store, error) {
	s := &Store{path: path, now: time.Now, byID: map[string]*record{}}
	if path == "" {
		return s, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("join tokens: %w", err)
	}
	var f file
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("join tokens: %s: %w (remove it to start afresh; every scoped token is then revoked)", path, err)
	}
	for i := range f.Tokens {
		r := f.Tokens[i]
		if r.ID == "" || len(r.SHA256) != 2*sha256.Size {
			return nil, fmt.Errorf("join tokens: %s: token %d has no id or digest", path, i)
		}
		s.byID[r.ID] = &r
	}
	return s, nil
}

// Create issues a token for namespace/serviceAccount that expires after
// ttl (0: never) and returns it with its secret form, which is shown
// only here. An ephemeral token is not written to disk.
func (s *Store) Create(namespace, serviceAccount string, ttl time.Duration, note string, ephemeral bool) (string, Token, error) {
	if ttl < 0 {
		return "", Token{}, fmt.Errorf("join token: negative lifetime %v", ttl)
	}
	var idb [8]byte
	var secret [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", Token{}, fmt.Errorf("join token: %w", err)
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", Token{}, fmt.Errorf("join token: %w", err)
	}
	sec := base64.RawURLEncoding.EncodeToString(secret[:])
	now := s.now().UTC().Truncate(time.Second)
	t := Token{ID: hex.EncodeToString(idb[:]), Namespace: namespace, ServiceAccount: serviceAccount, Created: now, Note: note, Ephemeral: ephemeral}
	if ttl > 0 {
		t.Expires = now.Add(ttl)
	}
	sum := sha256.Sum256([]byte(sec))
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, r := range s.byID {
		if r.expired(now) {
			delete(s.byID, id) // no use any more; keeps the file from growing
		}
	}
	s.byID[t.ID] = &record{Token: t, SHA256: hex.EncodeToString(sum[:])}
	if !ephemeral {
		if err := s.saveLocked(); err != nil {
			delete(s.byID, t.ID)
			return "", Token{}, err
		}
	}
	return t.ID + "." + sec, t, nil
}

// Verify returns the token a secret form belongs to, or ErrUnknown or
// ErrExpired. The secret is compared by digest, in constant time.
func (s *Store) Verify(token string) (Token, error) {
	id, sec, ok := strings.Cut(strings.TrimSpace(token), ".")
	if !ok || id == "" || sec == "" {
		return Token{}, ErrUnknown
	}
	sum := sha256.Sum256([]byte(sec))
	s.mu.Lock()
	r := s.byID[id]
	s.mu.Unlock()
	var want [sha256.Size]byte
	if r != nil {
		hex.Decode(want[:], []byte(r.SHA256))
	}
	// Compared even for an unknown ID, so timing does not tell IDs apart.
	if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 || r == nil {
		return Token{}, ErrUnknown
	}
	if r.expired(s.now()) {
		return r.Token, ErrExpired
	}
	return r.Token, nil
}

// Check reports whether the token with this ID still admits proxies: nil,
// ErrUnknown (revoked) or ErrExpired.
func (s *Store) Check(id string) error {
	s.mu.Lock()
	r := s.byID[id]
	s.mu.Unlock()
	switch {
	case r == nil:
		return ErrUnknown
	case r.expired(s.now()):
		return ErrExpired
	}
	return nil
}

func (r *record) expired(now time.Time) bool { return !r.Expires.IsZero() && !now.Before(r.Expires) }

// List returns every token, expired ones included, by creation time.
func (s *Store) List() []Token {
	s.mu.Lock()
	out := make([]Token, 0, len(s.byID))
	for _, r := range s.byID {
		out = append(out, r.Token)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Revoke deletes the token with this ID and returns it, or ErrUnknown.
func (s *Store) Revoke(id string) (Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.byID[id]
	if r == nil {
		return Token{}, ErrUnknown
	}
	delete(s.byID, id)
	if !r.Ephemeral {
		if err := s.saveLocked(); err != nil {
			s.byID[id] = r
			return Token{}, err
		}
	}
	return r.Token, nil
}

// saveLocked writes the persistent tokens: a temporary file made 0600
// and renamed over the store, so a crash leaves the old or the new one.
func (s *Store) saveLocked() error {
	if s.path == "" {
		return nil
	}
	f := file{Tokens: []record{}}
	for _, r := range s.byID {
		if !r.Ephemeral {
			f.Tokens = append(f.Tokens, *r)
		}
	}
	sort.Slice(f.Tokens, func(i, j int) bool { return f.Tokens[i].ID < f.Tokens[j].ID })
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("join tokens: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".join-tokens-*")
	if err != nil {
		return fmt.Errorf("join tokens: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename: nothing left to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("join tokens: %w", err)
	}
	_, werr := tmp.Write(append(data, '\n'))
	if err := tmp.Sync(); werr == nil {
		werr = err
	}
	if err := tmp.Close(); werr == nil {
		werr = err
	}
	if werr != nil {
		return fmt.Errorf("join tokens: %w", werr)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("join tokens: %w", err)
	}
	return nil
}
