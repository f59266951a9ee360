package apikey

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNewParseRoundTrip(t *testing.T) {
	t.Parallel()
	k := New()
	require.True(t, strings.HasPrefix(k.Plain, "ek_"+k.Prefix+"_"))
	prefix, hash, err := Parse(k.Plain)
	require.NoError(t, err)
	require.Equal(t, k.Prefix, prefix)
	require.True(t, Equal(k.Hash, hash))
	require.NotEqual(t, k.Plain, New().Plain, "keys are random")
}

func TestParseRejectsMalformed(t *testing.T) {
	t.Parallel()
	k := New()
	for _, s := range []string{"", "ek_", "Bearer " + k.Plain, k.Plain[:len(k.Plain)-1], strings.Replace(k.Plain, "ek_", "ex_", 1), "ek_zzzzzzzzzzzz_" + strings.Repeat("a", 43)} {
		_, _, err := Parse(s)
		require.ErrorIs(t, err, ErrMalformed, s)
	}
}

func TestTamperedSecretHashesDifferently(t *testing.T) {
	t.Parallel()
	k := New()
	b := []byte(k.Plain)
	if b[len(b)-1] == 'A' {
		b[len(b)-1] = 'B'
	} else {
		b[len(b)-1] = 'A'
	}
	prefix, hash, err := Parse(string(b))
	require.NoError(t, err)
	require.Equal(t, k.Prefix, prefix)
	require.False(t, Equal(k.Hash, hash))
}
