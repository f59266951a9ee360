package otp

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

const secret = "otp-test-secret-0123456789abcdef-xyz"

func TestCodeIsDeterministicAndSixDigits(t *testing.T) {
	c := New(secret)
	id, nonce := uuid.New(), NewNonce()
	code := c.Code(id, nonce)
	require.True(t, Valid(code), code)
	require.Equal(t, code, c.Code(id, nonce), "a retry renders the same code")
	require.Equal(t, code, New(secret).Code(id, nonce), "intake and worker agree")
	require.NotEqual(t, code, New(secret+"other").Code(id, nonce), "another secret, another code")
}

func TestCodeDependsOnIDAndNonce(t *testing.T) {
	c := New(secret)
	id, nonce := uuid.New(), NewNonce()
	same := 0
	for i := 0; i < 50; i++ {
		if c.Code(uuid.New(), nonce) == c.Code(id, nonce) {
			same++
		}
		if c.Code(id, NewNonce()) == c.Code(id, nonce) {
			same++
		}
	}
	require.LessOrEqual(t, same, 1, "100 draws from a million collide at most by chance")
}

// Over many deterministic draws every digit appears in every position
// about equally often (a chi-square bound loose enough never to flake on
// this fixed input, tight enough to catch a modulo slip such as % 100000).
func TestCodesAreUniform(t *testing.T) {
	c := New(secret)
	const n = 20000
	var counts [Digits][10]int
	id := uuid.MustParse("5b7c2d1e-8f3a-4c6b-9d0e-1f2a3b4c5d6e")
	nonce := make([]byte, NonceSize)
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint64(nonce, uint64(i))
		code := c.Code(id, nonce)
		require.Len(t, code, Digits)
		for p := 0; p < Digits; p++ {
			counts[p][code[p]-'0']++
		}
	}
	for p := 0; p < Digits; p++ {
		chi := 0.0
		for d := 0; d < 10; d++ {
			e := float64(n) / 10
			chi += math.Pow(float64(counts[p][d])-e, 2) / e
		}
		require.Less(t, chi, 40.0, "position %d: %v", p, counts[p])
	}
}

func TestRejectionBound(t *testing.T) {
	// 2^64 = 18446744073709551616, whose remainder by 10^6 is 551616.
	require.EqualValues(t, 551616, reject)
	require.Zero(t, (uint64(math.MaxUint64)-reject+1)%space, "accepted values are a whole number of code cycles")
}

func TestMatch(t *testing.T) {
	c := New(secret)
	id := uuid.New()
	code := c.Code(id, NewNonce())
	stored := c.Hash(id, code)
	require.True(t, c.Match(id, code, stored))
	require.False(t, c.Match(uuid.New(), code, stored), "bound to its verification")
	require.False(t, c.Match(id, "000000", c.Hash(id, "000001")))
	require.False(t, c.Match(id, code, nil), "a wiped hash matches nothing")
	require.False(t, bytes.Contains(stored, []byte(code)))
}

func TestValid(t *testing.T) {
	for s, ok := range map[string]bool{"012345": true, "12345": false, "1234567": false, "12a456": false, "１２３４５６": false, "": false} {
		require.Equal(t, ok, Valid(s), s)
	}
}
