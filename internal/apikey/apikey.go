// Package apikey makes and checks tenant API keys. A key is
// "ek_<prefix>_<secret>": the prefix is public (it names the key in logs,
// the admin API and revocation), the secret has 256 bits of entropy, and
// only the SHA-256 of the whole key is ever stored. Nothing here logs.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
)

// ErrMalformed means the presented string is not shaped like a key.
var ErrMalformed = errors.New("malformed API key")

// Key is a freshly generated key. Plain is shown to the caller once.
type Key struct {
	Plain  string
	Prefix string
	Hash   []byte
}

// New generates a key.
func New() Key {
	p := make([]byte, 6)
	s := make([]byte, 32)
	rand.Read(p) //nolint:errcheck // crypto/rand.Read never fails
	rand.Read(s) //nolint:errcheck
	prefix := hex.EncodeToString(p)
	plain := "ek_" + prefix + "_" + base64.RawURLEncoding.EncodeToString(s)
	return Key{Plain: plain, Prefix: prefix, Hash: Hash(plain)}
}

// Parse splits a presented key into its prefix and hash.
func Parse(plain string) (prefix string, hash []byte, err error) {
	rest, ok := strings.CutPrefix(plain, "ek_")
	if !ok {
		return "", nil, ErrMalformed
	}
	prefix, secret, ok := strings.Cut(rest, "_")
	if !ok || len(prefix) != 12 || len(secret) != 43 {
		return "", nil, ErrMalformed
	}
	if _, err := hex.DecodeString(prefix); err != nil {
		return "", nil, ErrMalformed
	}
	return prefix, Hash(plain), nil
}

// Hash is the stored form of a key.
func Hash(plain string) []byte {
	h := sha256.Sum256([]byte(plain))
	return h[:]
}

// Equal compares two hashes in constant time.
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
