package downloadlink_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/downloadlink"
)

const secret = "a-test-secret-of-at-least-32-characters"

func TestLinks(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	s := downloadlink.New(secret, clk)
	tenant, id, other := uuid.New(), uuid.New(), uuid.New()
	q, exp := s.Sign("export", tenant, id)
	require.Equal(t, clk.Now().Add(downloadlink.TTL), exp)

	got, err := s.Verify("export", id, q)
	require.NoError(t, err)
	require.Equal(t, tenant, got)

	with := func(k, v string) url.Values {
		c := url.Values{}
		for key, vals := range q {
			c[key] = append([]string(nil), vals...)
		}
		c.Set(k, v)
		return c
	}
	bad := map[string]struct {
		id   uuid.UUID
		kind string
		q    url.Values
	}{
		"another resource":     {other, "export", q},
		"another kind":         {id, "credential", q},
		"another tenant":       {id, "export", with("tenant", other.String())},
		"later expiry":         {id, "export", with("expires", "9999999999")},
		"flipped signature":    {id, "export", with("signature", flip(q.Get("signature")))},
		"no signature":         {id, "export", with("signature", "")},
		"garbage expiry":       {id, "export", with("expires", "soon")},
		"garbage tenant":       {id, "export", with("tenant", "acme")},
		"signature not base64": {id, "export", with("signature", "!!!")},
	}
	for name, c := range bad {
		_, err := s.Verify(c.kind, c.id, c.q)
		require.ErrorIs(t, err, downloadlink.ErrInvalid, name)
	}
	_, err = downloadlink.New(secret+"x", clk).Verify("export", id, q)
	require.ErrorIs(t, err, downloadlink.ErrInvalid, "another server secret")

	clk.Advance(downloadlink.TTL - time.Second)
	_, err = s.Verify("export", id, q)
	require.NoError(t, err, "valid until the end")
	clk.Advance(time.Second)
	_, err = s.Verify("export", id, q)
	require.ErrorIs(t, err, downloadlink.ErrExpired)
}

// flip changes a signature's first character.
func flip(sig string) string {
	if sig[0] == 'A' {
		return "B" + sig[1:]
	}
	return "A" + sig[1:]
}
