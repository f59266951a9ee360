// Package pseudonym turns an address (an E.164 phone number, an email
// address) into a stable keyed hash: the same address always gives the
// same pseudonym under the same server secret, and the pseudonym reveals
// nothing without it. Suppression lists and opt-out records use pseudonyms
// so they can outlive the erasure of the person they protect.
package pseudonym

import (
	"crypto/hmac"
	"crypto/sha256"
	"strings"
)

// Hasher makes pseudonyms.
type Hasher struct{ key []byte }

// New derives the hashing key from the server secret (ERRAND_SECRET_KEY).
func New(secret string) *Hasher {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("errand pseudonym v1"))
	return &Hasher{key: m.Sum(nil)}
}

// Address is the pseudonym of an address on a channel ("sms" or "email").
// Email addresses compare case-insensitively.
func (h *Hasher) Address(channel, address string) []byte {
	address = strings.TrimSpace(address)
	if channel == "email" {
		address = strings.ToLower(address)
	}
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(channel + ":" + address))
	return m.Sum(nil)
}
