// Package otp makes and checks one-time verification codes without ever
// storing one. A verification keeps a random nonce; its code is derived
// from the server secret, the verification's ID and that nonce, so the
// intake (to hash it) and the worker (to send it) compute the same code,
// a retry renders exactly the same text, and someone holding the database
// alone can neither read a code nor brute-force one from its check value.
// It must never log, return in an error, or persist a code.
package otp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// Digits is the length of a code; codes are uniform over 000000–999999.
const Digits = 6

// NonceSize is the length of a verification's random nonce.
const NonceSize = 32

const space = 1_000_000 // 10^Digits

// reject is 2^64 mod 10^6: the top `reject` values of a uint64 would make
// the low codes slightly likelier than the others, so they are skipped.
const reject = (math.MaxUint64%space + 1) % space

// Codes derives and checks codes with keys taken from the server secret.
type Codes struct {
	derive []byte // makes a code from (id, nonce)
	check  []byte // hashes a code for storage and comparison
}

// New derives the two keys from the server secret (ERRAND_SECRET_KEY).
// They are distinct, so the stored check value says nothing about the key
// that makes codes.
func New(secret string) *Codes {
	return &Codes{derive: subkey(secret, "errand otp derive v1"), check: subkey(secret, "errand otp check v1")}
}

func subkey(secret, label string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(label))
	return m.Sum(nil)
}

// NewNonce returns a fresh random nonce from the operating system's CSPRNG.
func NewNonce() []byte {
	b := make([]byte, NonceSize)
	rand.Read(b) //nolint:errcheck // crypto/rand.Read never fails; it crashes the program instead
	return b
}

// Code is the verification's code: HMAC-SHA256(derive key, id || nonce ||
// counter), read as 64-bit numbers and reduced to six digits by rejection
// sampling (a number among the top 2^64 mod 10^6 values is skipped for the
// next one), so every code is exactly equally likely. A skip happens with
// probability 3·10^-14, so in practice the first number is the code.
func (c *Codes) Code(id uuid.UUID, nonce []byte) string {
	for counter := uint32(0); ; counter++ {
		m := hmac.New(sha256.New, c.derive)
		m.Write(id[:])
		m.Write(nonce)
		var ctr [4]byte
		binary.BigEndian.PutUint32(ctr[:], counter)
		m.Write(ctr[:])
		sum := m.Sum(nil)
		for i := 0; i+8 <= len(sum); i += 8 {
			v := binary.BigEndian.Uint64(sum[i:])
			if v <= math.MaxUint64-reject {
				return pad(v % space)
			}
		}
	}
}

func pad(v uint64) string {
	s := strconv.FormatUint(v, 10)
	return strings.Repeat("0", Digits-len(s)) + s
}

// Hash is the value stored to check a code later: HMAC-SHA256 under the
// check key of the verification's ID and the code. Without the secret, the
// million possible codes cannot be tried against it.
func (c *Codes) Hash(id uuid.UUID, code string) []byte {
	m := hmac.New(sha256.New, c.check)
	m.Write(id[:])
	m.Write([]byte(code))
	return m.Sum(nil)
}

// Match reports whether code is the one whose hash is stored, comparing
// in constant time.
func (c *Codes) Match(id uuid.UUID, code string, stored []byte) bool {
	if len(stored) == 0 {
		return false
	}
	return hmac.Equal(c.Hash(id, code), stored)
}

// Valid reports whether s has the shape of a code: exactly six ASCII digits.
func Valid(s string) bool {
	if len(s) != Digits {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
