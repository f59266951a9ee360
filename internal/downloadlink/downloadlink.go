// Package downloadlink signs and checks short-lived download links: an
// HMAC-SHA256, under a key derived from the server secret, over what the
// link points at (a kind, the tenant, the resource ID) and when it
// expires. A link works without an API key until then; changing any part
// of it, or using it after it expires, is refused. It never serves files
// itself.
package downloadlink

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/errandhq/errand/internal/clock"
)

// TTL is how long a link works.
const TTL = 15 * time.Minute

// Errors. Both mean 403 to the caller.
var (
	ErrInvalid = errors.New("download link is invalid")
	ErrExpired = errors.New("download link has expired")
)

// Signer makes and checks links.
type Signer struct {
	key   []byte
	clock clock.Clock
	ttl   time.Duration
}

// New derives the signing key from the server secret (ERRAND_SECRET_KEY).
func New(secret string, clk clock.Clock) *Signer {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("errand download links v1"))
	return &Signer{key: m.Sum(nil), clock: clk, ttl: TTL}
}

// Link is a signed reference to one resource.
type Link struct {
	Kind      string // what the ID names, e.g. "export"
	TenantID  uuid.UUID
	ID        uuid.UUID
	ExpiresAt time.Time
}

func (s *Signer) mac(l Link) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(l.Kind + "\n" + l.TenantID.String() + "\n" + l.ID.String() + "\n" + strconv.FormatInt(l.ExpiresAt.Unix(), 10)))
	return m.Sum(nil)
}

// Sign returns the query parameters of a link to the resource, valid for
// the TTL from now, and when it expires.
func (s *Signer) Sign(kind string, tenantID, id uuid.UUID) (url.Values, time.Time) {
	exp := s.clock.Now().Add(s.ttl).Truncate(time.Second)
	l := Link{Kind: kind, TenantID: tenantID, ID: id, ExpiresAt: exp}
	return url.Values{
		"tenant":    {tenantID.String()},
		"expires":   {strconv.FormatInt(exp.Unix(), 10)},
		"signature": {base64.RawURLEncoding.EncodeToString(s.mac(l))},
	}, exp
}

// Verify checks the query of a link to the resource kind/id and returns the
// tenant it belongs to. The signature is compared in constant time, and
// checked before the expiry so that nothing is learned from a forgery.
func (s *Signer) Verify(kind string, id uuid.UUID, q url.Values) (uuid.UUID, error) {
	tenant, err := uuid.Parse(q.Get("tenant"))
	if err != nil {
		return uuid.Nil, ErrInvalid
	}
	exp, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	if err != nil {
		return uuid.Nil, ErrInvalid
	}
	sig, err := base64.RawURLEncoding.DecodeString(q.Get("signature"))
	if err != nil {
		return uuid.Nil, ErrInvalid
	}
	want := s.mac(Link{Kind: kind, TenantID: tenant, ID: id, ExpiresAt: time.Unix(exp, 0)})
	if !hmac.Equal(sig, want) {
		return uuid.Nil, ErrInvalid
	}
	if !s.clock.Now().Before(time.Unix(exp, 0)) {
		return uuid.Nil, ErrExpired
	}
	return tenant, nil
}
