package intake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"hash"
	"io"
	"mime"
	"net/http"
	"strings"
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

		release := func() {
			// Nothing durable happened (or we cannot tell): let the client retry.
			ctx := context.WithoutCancel(r.Context())
			if err := s.Store.Q().IdempotencyKeyRelease(ctx, db.IdempotencyKeyReleaseParams{Scope: scope, Key: key}); err != nil {
				s.logger.ErrorContext(ctx, "could not release idempotency key", "err", err)
			}
		}
		// A handler that panics answers 500 (ServeHTTP recovers): its key
		// must not stay reserved until it goes stale.
		finished := false
		defer func() {
			if !finished {
				release()
			}
		}()

		hasher := requestHasher(r)
		body := r.Body
		r.Body = io.NopCloser(io.TeeReader(body, hasher))
		policy := &replayPolicy{}
		r = r.WithContext(context.WithValue(r.Context(), replayPolicyKey{}, policy))
		rec := &captureWriter{ResponseWriter: w, status: http.StatusOK}
		herr := h(rec, r)
		finished = true
		if herr != nil {
			s.writeError(rec, r, herr)
		}
		io.Copy(hasher, body) //nolint:errcheck // a body cut short hashes differently, which is right

		if rec.status >= 500 || rec.status == http.StatusTooManyRequests {
			// Nothing durable happened (or we cannot tell), or the request
			// was refused for now: let the client retry with the same key.
			release()
			return nil
		}
		st, typ := int32(rec.status), rec.Header().Get("Content-Type")
		// The work is done even if the client has gone: it will retry with
		// this key, and must get this response rather than the work again.
		err = s.Store.Q().IdempotencyKeyComplete(context.WithoutCancel(r.Context()), db.IdempotencyKeyCompleteParams{
			Scope: scope, Key: key, RequestHash: hasher.Sum(), ResponseStatus: &st, ResponseType: &typ,
			ResponseBody: policy.apply(rec.body.Bytes())})
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
	if subtle.ConstantTimeCompare(hasher.Sum(), rec.RequestHash) != 1 {
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

// replayPolicy lets a handler keep secrets out of the stored response: an
// API key is shown once, so a replay answers with the key's field null.
type replayPolicy struct{ redact []string }

type replayPolicyKey struct{}

// redactOnReplay asks the idempotency layer not to store these top-level
// JSON fields of the response (they replay as null).
func redactOnReplay(r *http.Request, fields ...string) {
	if p, ok := r.Context().Value(replayPolicyKey{}).(*replayPolicy); ok {
		p.redact = append(p.redact, fields...)
	}
}

func (p *replayPolicy) apply(body []byte) []byte {
	if len(p.redact) == 0 {
		return body
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return []byte(`{"error":{"code":"internal_error","message":"the first response is not stored"}}`)
	}
	for _, f := range p.redact {
		if _, ok := obj[f]; ok {
			obj[f] = json.RawMessage("null")
		}
	}
	out, _ := json.Marshal(obj)
	return append(out, '\n')
}

// requestHasher starts a hash of the request's identity: method, path and
// query; the body is written into it as it is read. A multipart body is
// hashed with its boundary replaced by a fixed token: clients choose a new
// random boundary for every attempt (curl, Go's multipart.Writer), and a
// retried upload is the same request.
func requestHasher(r *http.Request) *requestHash {
	h := &requestHash{sum: sha256.New()}
	io.WriteString(h.sum, r.Method+" "+r.URL.RequestURI()+"\n") //nolint:errcheck
	if mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil &&
		strings.HasPrefix(mt, "multipart/") && params["boundary"] != "" {
		h.boundary = []byte(params["boundary"])
	}
	return h
}

// requestHash is a SHA-256 of a request, written as a stream, that sees
// every occurrence of boundary as the same fixed token, even when one is
// split across two writes.
type requestHash struct {
	sum      hash.Hash
	boundary []byte
	held     []byte // a tail that may be the start of a boundary
}

var boundaryToken = []byte("\x00boundary\x00")

func (h *requestHash) Write(p []byte) (int, error) {
	if len(h.boundary) == 0 {
		return h.sum.Write(p)
	}
	buf := append(h.held, p...)
	for {
		i := bytes.Index(buf, h.boundary)
		if i < 0 {
			break
		}
		h.sum.Write(buf[:i])
		h.sum.Write(boundaryToken)
		buf = buf[i+len(h.boundary):]
	}
	keep := min(len(buf), len(h.boundary)-1)
	h.sum.Write(buf[:len(buf)-keep])
	h.held = append(h.held[:0], buf[len(buf)-keep:]...)
	return len(p), nil
}

// Sum is the hash of everything written.
func (h *requestHash) Sum() []byte {
	h.sum.Write(h.held)
	h.held = nil
	return h.sum.Sum(nil)
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
