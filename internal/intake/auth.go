package intake

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"math"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/apikey"
	"github.com/errandhq/errand/internal/fault"
	"github.com/errandhq/errand/internal/seclog"
)

// handlerFunc is a handler that returns its failure instead of writing it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// principal is the authenticated tenant of a request.
type principal struct {
	TenantID  uuid.UUID
	Timezone  string
	Region    string
	KeyPrefix string
	Cancelled bool
}

type principalKey struct{}

func tenantOf(ctx context.Context) principal {
	p, _ := ctx.Value(principalKey{}).(principal)
	return p
}

// serve turns a handlerFunc into an http.Handler that writes its error.
func (s *Server) serve(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

var errUnauthenticated = &fault.Error{Code: fault.Unauthenticated,
	Message: "send a valid API key as 'Authorization: Bearer <key>'"}

// tenant authenticates a tenant API key, applies the key's rate limit and
// refuses cancelled tenants (unless the route allows them).
func (s *Server) tenant(h handlerFunc, opts ...routeOption) http.Handler {
	var ro routeOptions
	for _, o := range opts {
		o(&ro)
	}
	return s.serve(func(w http.ResponseWriter, r *http.Request) error {
		key := bearer(r)
		prefix, hash, err := apikey.Parse(key)
		if err != nil {
			s.authFailed(r, "", "malformed or missing key")
			return errUnauthenticated
		}
		now := s.Clock.Now()
		row, cached := s.keys.get(prefix, now)
		if !cached {
			row, err = s.Store.Q().APIKeyAuthenticate(r.Context(), prefix)
			if db.IsNotFound(err) {
				s.authFailed(r, prefix, "unknown or revoked key")
				return errUnauthenticated
			}
			if err != nil {
				return err
			}
			s.keys.put(prefix, row, now)
		}
		if !apikey.Equal(row.KeyHash, hash) {
			s.authFailed(r, prefix, "wrong secret for key prefix")
			return errUnauthenticated
		}
		p := principal{TenantID: row.TenantID, Timezone: row.TenantTimezone, Region: row.TenantRegion,
			KeyPrefix: prefix, Cancelled: row.TenantStatus == "cancelled"}
		if p.Cancelled && !ro.allowCancelled {
			return fault.New(fault.TenantCancelled, "this account is cancelled; only its deletion and exports can be reached")
		}
		ok, retry, err := s.Limiter.Allow(r.Context(), "apikey:"+prefix, s.RateLimit)
		if err != nil {
			return fault.New(fault.Unavailable, "rate limiter unavailable")
		}
		if !ok {
			return &fault.Error{Code: fault.RateLimited, Message: "too many requests for this API key",
				RetryAfter: ceilSeconds(retry.Seconds())}
		}
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		return h(w, r)
	})
}

type routeOptions struct{ allowCancelled bool }

type routeOption func(*routeOptions)

// allowCancelled lets a cancelled tenant reach the route (its deletion,
// its exports).
func allowCancelled(o *routeOptions) { o.allowCancelled = true }

// admin authenticates the admin token.
func (s *Server) admin(h handlerFunc) http.Handler {
	return s.serve(func(w http.ResponseWriter, r *http.Request) error {
		if !s.isAdmin(r) {
			s.SecLog.Record(r.Context(), seclog.Event{Kind: seclog.AdminAuthFailed, Actor: "admin",
				RemoteAddr: r.RemoteAddr, RequestID: requestID(r.Context())})
			return &fault.Error{Code: fault.Unauthenticated, Message: "send the admin token as 'Authorization: Bearer <token>'"}
		}
		return h(w, r)
	})
}

func (s *Server) isAdmin(r *http.Request) bool {
	return TokenEqual(bearer(r), s.AdminToken)
}

// TokenEqual compares a presented secret with the expected one in constant
// time (hashing first so lengths leak nothing either).
func TokenEqual(presented, expected string) bool {
	if expected == "" || presented == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(presented)), sha256.Sum256([]byte(expected))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func (s *Server) authFailed(r *http.Request, prefix, reason string) {
	detail := map[string]any{"reason": reason}
	if prefix != "" {
		detail["key_prefix"] = prefix
	}
	s.SecLog.Record(r.Context(), seclog.Event{Kind: seclog.AuthFailed, Actor: "api_key",
		RemoteAddr: r.RemoteAddr, RequestID: requestID(r.Context()), Detail: detail})
}

func (s *Server) actor(r *http.Request, who string) seclog.Event {
	return seclog.Event{Actor: who, RemoteAddr: r.RemoteAddr, RequestID: requestID(r.Context())}
}

func ceilSeconds(sec float64) int {
	n := int(math.Ceil(sec))
	if n < 1 {
		n = 1
	}
	return n
}
