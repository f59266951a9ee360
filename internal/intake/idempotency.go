package intake

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"hash"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/fault"
)

const (
	idempotencyTTL = 24 * time.Hour
	// A reservation older than this belongs to a request whose process died.
	idempotencyStale = 10 * time.Minute
	maxKeyLength     = 255
)

// idempotent makes a POST safe to repeat with an Idempotency-Key header:
// the first response to a key is stored and replayed for 24 hours; the
// same key with a different request is refused (409), as is a repeat that
// arrives while the first is still running.
//
// The key is reserved before the handler runs. The request is hashed as
// the handler reads it (so large uploads are never buffered) and the rest
// of the body is drained into the hash afterwards.
func (s *Server) idempotent(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		key := r.Header.Get("Idempotency-Key")
		if key == "" {
			return h(w, r)
		}
		if len(key) > maxKeyLength {
			return fault.Fields(map[string]string{"Idempotency-Key": "at most 255 characters"})
		}
		scope := "admin"
		if p := tenantOf(r.Context()); p.TenantID != uuid.Nil {
			scope = p.TenantID.String()
		}
		now := s.Clock.Now()
		_, err := s.Store.Q().IdempotencyKeyReserve(r.Context(), db.IdempotencyKeyReserveParams{
			Scope: scope, Key: key, Now: now, ExpiresAt: now.Add(idempotencyTTL), StaleBefore: now.Add(-idempotencyStale)})
		if db.IsNotFound(err) {
			return s.replay(w, r, scope, key)
		}
		if err != nil {
			return err
		}

		hasher := requestHasher(r)
		body := r.Body
		r.Body = io.NopCloser(io.TeeReader(body, hasher))
		rec := &captureWriter{ResponseWriter: w, status: http.StatusOK}
		herr := h(rec, r)
		if herr != nil {
			s.writeError(rec, r, herr)
		}
		io.Copy(hasher, body) //nolint:errcheck // a body cut short hashes differently, which is right

		if rec.status >= 500 || rec.status == http.StatusTooManyRequests {
			// Nothing durable happened (or we cannot tell), or the request
			// was refused for now: let the client retry with the same key.
			if err := s.Store.Q().IdempotencyKeyRelease(r.Context(), db.IdempotencyKeyReleaseParams{Scope: scope, Key: key}); err != nil {
				s.logger.ErrorContext(r.Context(), "could not release idempotency key", "err", err)
			}
			return nil
		}
		st, typ := int32(rec.status), rec.Header().Get("Content-Type")
		err = s.Store.Q().IdempotencyKeyComplete(r.Context(), db.IdempotencyKeyCompleteParams{
			Scope: scope, Key: key, RequestHash: hasher.Sum(nil), ResponseStatus: &st, ResponseType: &typ,
			ResponseBody: rec.body.Bytes()})
		if err != nil {
			s.logger.ErrorContext(r.Context(), "could not store idempotent response", "err", err)
		}
		return nil
	}
}

// replay answers a repeated key with the first response, after checking
// the request is the same one.
func (s *Server) replay(w http.ResponseWriter, r *http.Request, scope, key string) error {
	rec, err := s.Store.Q().IdempotencyKeyGet(r.Context(), db.IdempotencyKeyGetParams{Scope: scope, Key: key})
	if err != nil {
		return err
	}
	if rec.State == "pending" {
		return &fault.Error{Code: fault.Conflict, Subcode: "idempotency_request_in_progress", RetryAfter: 1,
			Message: "a request with this Idempotency-Key is still being processed; retry shortly"}
	}
	hasher := requestHasher(r)
	if _, err := io.Copy(hasher, r.Body); err != nil && tooLarge(err) {
		return decodeFault(err)
	}
	if subtle.ConstantTimeCompare(hasher.Sum(nil), rec.RequestHash) != 1 {
		return &fault.Error{Code: fault.Conflict, Subcode: "idempotency_key_reused",
			Message: "this Idempotency-Key was used for a different request in the last 24 hours"}
	}
	if rec.ResponseType != nil && *rec.ResponseType != "" {
		w.Header().Set("Content-Type", *rec.ResponseType)
	}
	w.Header().Set("Idempotent-Replayed", "true")
	status := http.StatusOK
	if rec.ResponseStatus != nil {
		status = int(*rec.ResponseStatus)
	}
	w.WriteHeader(status)
	w.Write(rec.ResponseBody) //nolint:errcheck
	return nil
}

// requestHasher starts a hash of the request's identity: method, path and
// query; the body is written into it as it is read.
func requestHasher(r *http.Request) hash.Hash {
	h := sha256.New()
	io.WriteString(h, r.Method+" "+r.URL.RequestURI()+"\n") //nolint:errcheck
	return h
}

// captureWriter passes a response through while keeping a copy.
type captureWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
	body   bytes.Buffer
}

func (c *captureWriter) WriteHeader(code int) {
	if !c.wrote {
		c.status, c.wrote = code, true
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *captureWriter) Write(b []byte) (int, error) {
	c.wrote = true
	c.body.Write(b)
	return c.ResponseWriter.Write(b)
}
