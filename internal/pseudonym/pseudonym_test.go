package pseudonym

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAddress(t *testing.T) {
	t.Parallel()
	h := New("secret-one-0123456789abcdef0123456789")
	a := h.Address("sms", "+13125550142")
	require.Len(t, a, 32)
	require.True(t, bytes.Equal(a, h.Address("sms", " +13125550142 ")), "stable")
	require.False(t, bytes.Equal(a, h.Address("email", "+13125550142")), "channels differ")
	require.False(t, bytes.Equal(a, New("secret-two-0123456789abcdef0123456789").Address("sms", "+13125550142")), "keyed")
	require.True(t, bytes.Equal(h.Address("email", "Pat@Example.com"), h.Address("email", "pat@example.com")))
	require.NotContains(t, string(a), "3125550142")
}
