// Package intake is Errand's HTTP API: the thin front door app servers
// call. Handlers validate, write rows to PostgreSQL and hand work to the
// dispatcher; they never call a provider and never wait for a job. It must
// never log personal data or let one tenant's request touch another's rows.
package intake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/account"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/downloadlink"
	"github.com/errandhq/errand/internal/filestore"
	"github.com/errandhq/errand/internal/metrics"
	"github.com/errandhq/errand/internal/pseudonym"
	"github.com/errandhq/errand/internal/ratelimit"
	"github.com/errandhq/errand/internal/seclog"
	"github.com/errandhq/errand/jobs"
)

// Deps are the intake's collaborators; main wires them.
type Deps struct {
	Store        *db.Store
	Redis        redis.UniversalClient
	Inspector    *asynq.Inspector
	Dispatcher   *jobs.Dispatcher
	Clock        clock.Clock
	Logger       *slog.Logger
	Metrics      *metrics.Metrics
	Limiter      *ratelimit.Limiter
	SecLog       *seclog.Log
	Files        filestore.Store
	AdminToken   string
	PublicURL    string
	MaxBodyBytes int64
	RateLimit    ratelimit.Limit
	// ImportMaxBytes bounds an import upload (ERRAND_IMPORT_MAX_BYTES;
	// 0 = DefaultImportMaxBytes).
	ImportMaxBytes int64
	// Verify configures verification codes and credential uploads.
	Verify VerifySettings
	// Console serves /monitoring/ (asynqmon behind admin auth); nil = none.
	Console http.Handler
	// SecretKey (ERRAND_SECRET_KEY) signs download links; "" = no links.
	SecretKey string
	// Deletions starts the deletion of an approved deletion request; nil =
	// approved requests wait for fulfilment by hand.
	Deletions DeletionStarter
	// DeletionSvc serves /v1/deletions (jobs.Deletions); nil = not
	// available. When set and Deletions is not, it also fulfils approved
	// deletion requests.
	DeletionSvc DeletionService
	// Pseudonyms hash the addresses webhooks opt out (suppression list).
	Pseudonyms *pseudonym.Hasher
	// TwilioAuthToken verifies Twilio's webhook signatures ("" = refuse them).
	TwilioAuthToken string
	// ResendWebhookSecret verifies Resend's Svix signatures ("" = refuse them).
	ResendWebhookSecret string
	// KeyCacheTTL is how long a live API key is remembered without asking
	// the database (ERRAND_API_KEY_CACHE_TTL; 0 = ask on every request):
	// the longest a key revoked through another process, or a tenant
	// cancelled, still works here (keycache.go).
	KeyCacheTTL time.Duration
}

// Server is the intake.
type Server struct {
	Deps
	logger   *slog.Logger
	accounts *account.Service
	mux      *http.ServeMux
	links    *downloadlink.Signer
	keys     *keyCache
}

// NewServer builds the intake's handler.
func NewServer(d Deps) *Server {
	s := &Server{Deps: d, logger: d.Logger, mux: http.NewServeMux(),
		accounts: &account.Service{Store: d.Store, Clock: d.Clock, SecLog: d.SecLog}, keys: newKeyCache(d.KeyCacheTTL)}
	if s.Deletions == nil && d.DeletionSvc != nil {
		s.Deletions = d.DeletionSvc
	}
	if d.SecretKey != "" {
		s.links = downloadlink.New(d.SecretKey, d.Clock)
	}
	if d.Metrics != nil {
		d.Metrics.WatchPrivacyOverdue(jobs.PrivacyOverdue(d.Store, d.Clock))
	}
	s.routes()
	return s
}

// ServeHTTP gives each request an ID, a logger context, a body limit,
// metrics and panic recovery, then routes it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := r.Header.Get("X-Request-Id")
	if id == "" || len(id) > 64 {
		b := make([]byte, 8)
		rand.Read(b) //nolint:errcheck
		id = hex.EncodeToString(b)
	}
	r = logRequest(r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)), id)
	w.Header().Set("X-Request-Id", id)
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}

	// Handler only finds the route; ServeHTTP (below) also fills in the
	// path values.
	var h http.Handler = s.mux
	if fallback, pattern0 := s.mux.Handler(r); pattern0 == "" {
		h = s.unrouted(fallback)
	}
	_, pattern := s.mux.Handler(r)
	if pattern == "" {
		pattern = "unrouted"
	}
	defer func() {
		if v := recover(); v != nil {
			s.logger.ErrorContext(r.Context(), "panic serving request", "panic", v, "route", pattern)
			if !rec.wrote {
				s.writeError(rec, r, errPanic)
			}
		}
		if s.Metrics != nil {
			s.Metrics.HTTPRequests.WithLabelValues(pattern, r.Method, strconv.Itoa(rec.status)).Inc()
			s.Metrics.HTTPDuration.WithLabelValues(pattern).Observe(time.Since(start).Seconds())
		}
		level := slog.LevelInfo
		if rec.status >= 500 {
			level = slog.LevelError
		}
		s.logger.Log(r.Context(), level, "request", "method", r.Method, "route", pattern,
			"status", rec.status, "duration_ms", time.Since(start).Milliseconds())
	}()
	if r.Body != nil && s.MaxBodyBytes > 0 && !bodyLimitExempt(pattern) {
		r.Body = http.MaxBytesReader(rec, r.Body, s.MaxBodyBytes)
	}
	h.ServeHTTP(rec, r)
}

// unrouted answers requests no route matched in the API's error format,
// keeping the mux's choice between 404 and 405 (and its Allow header).
func (s *Server) unrouted(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		probe := &headerProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		if allow := probe.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		if probe.status == http.StatusMethodNotAllowed {
			s.writeError(w, r, errMethod)
			return
		}
		s.writeError(w, r, errNoRoute)
	})
}

// bodyLimitExempt lists routes that stream large bodies under their own
// limits (imports, uploads).
func bodyLimitExempt(pattern string) bool {
	_, ok := streamingRoutes[pattern]
	return ok
}

var streamingRoutes = map[string]struct{}{
	"POST /v1/pros/{external_id}/credentials": {}, // withBodyLimit: ERRAND_CREDENTIAL_MAX_BYTES
	"POST /v1/imports":                        {}, // withBodyLimit: ERRAND_IMPORT_MAX_BYTES
}

type requestIDKey struct{}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer
// (asynqmon and streaming downloads flush).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header         { return p.header }
func (p *headerProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *headerProbe) WriteHeader(code int)        { p.status = code }
