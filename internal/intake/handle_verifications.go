package intake

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/fault"
	"github.com/errandhq/errand/internal/normalize"
	"github.com/errandhq/errand/internal/otp"
	"github.com/errandhq/errand/internal/pseudonym"
	"github.com/errandhq/errand/internal/ratelimit"
	"github.com/errandhq/errand/jobs"
)

// VerifySettings configure one-time codes and credential uploads.
type VerifySettings struct {
	Codes      *otp.Codes
	Pseudonyms *pseudonym.Hasher
	// PerDestination limits codes sent to one address, whichever tenants
	// ask (keyed by the address's pseudonym, never the address).
	PerDestination ratelimit.Limit
	// PerTenant limits codes one tenant requests.
	PerTenant ratelimit.Limit
	// CodeTTL is how long a code is valid (default 10 minutes).
	CodeTTL time.Duration
	// MaxAttempts is how many wrong codes fail a verification (default 5).
	MaxAttempts int
	// CredentialMaxBytes bounds an uploaded credential document (default 10 MiB).
	CredentialMaxBytes int64
}

// Defaults for VerifySettings.
const (
	DefaultCodeTTL            = 10 * time.Minute
	DefaultMaxAttempts        = 5
	DefaultCredentialMaxBytes = 10 << 20
)

func (v VerifySettings) codeTTL() time.Duration {
	if v.CodeTTL > 0 {
		return v.CodeTTL
	}
	return DefaultCodeTTL
}

func (v VerifySettings) maxAttempts() int {
	if v.MaxAttempts > 0 {
		return v.MaxAttempts
	}
	return DefaultMaxAttempts
}

func (v VerifySettings) credentialMaxBytes() int64 {
	if v.CredentialMaxBytes > 0 {
		return v.CredentialMaxBytes
	}
	return DefaultCredentialMaxBytes
}

// Verifications. A verification is a row with a state machine (see
// db/migrations/0020_verifications.sql) and a message of kind
// "verification" that carries its code:
//
//	POST  /v1/verifications         pending (message queued on the critical queue)
//	POST  /v1/verifications/{id}/check
//	      right code                pending → approved
//	      5th wrong code            pending → failed ("too many wrong codes")
//	      after expires_at          pending → expired
//	      message failed/suppressed pending → failed ("the code could not be delivered: …")
//	POST  for the same address      older pending → failed ("superseded …"), its message cancelled
//
// The code is never stored: the row holds a nonce and a keyed hash; the
// worker's renderer derives the code again when it sends the message.

type verificationRequest struct {
	Channel string `json:"channel"`
	To      string `json:"to"`
}

type checkRequest struct {
	Code string `json:"code"`
}

type deliveryJSON struct {
	MessageID string  `json:"message_id"`
	Status    string  `json:"status"`
	Error     *string `json:"error"`
}

type verificationJSON struct {
	ID                string        `json:"id"`
	Channel           string        `json:"channel"`
	To                string        `json:"to"`
	Status            string        `json:"status"`
	Reason            *string       `json:"reason"`
	AttemptsRemaining int           `json:"attempts_remaining"`
	ExpiresAt         time.Time     `json:"expires_at"`
	ApprovedAt        *time.Time    `json:"approved_at"`
	CreatedAt         time.Time     `json:"created_at"`
	Delivery          *deliveryJSON `json:"delivery"`
}

func verificationView(v db.Verification, m *db.Message) verificationJSON {
	out := verificationJSON{ID: v.ID.String(), Channel: v.Channel, To: v.Destination, Status: v.Status, Reason: v.Reason,
		AttemptsRemaining: max(int(v.MaxAttempts-v.Attempts), 0), ExpiresAt: v.ExpiresAt, ApprovedAt: v.ApprovedAt,
		CreatedAt: v.CreatedAt}
	if v.Status != "pending" {
		out.AttemptsRemaining = 0
	}
	if m != nil {
		out.Delivery = &deliveryJSON{MessageID: m.ID.String(), Status: m.Status, Error: m.Error}
	}
	return out
}

var errNoVerification = fault.New(fault.NotFound, "no verification with this id")

func (s *Server) handleVerificationCreate(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	req, err := decode[verificationRequest](r)
	if err != nil {
		return err
	}
	var to string
	switch req.Channel {
	case "sms":
		to, err = normalize.Phone(req.To, p.Region)
	case "email":
		to, err = normalize.Email(req.To)
	default:
		return fault.Fields(map[string]string{"channel": `must be "sms" or "email"`})
	}
	if err != nil {
		return fault.Fields(map[string]string{"to": err.Error()})
	}
	hash := s.Verify.Pseudonyms.Address(req.Channel, to)
	if err := s.limitVerifications(r.Context(), p.TenantID, hash); err != nil {
		return err
	}

	now := s.Clock.Now()
	id := uuid.New()
	nonce := otp.NewNonce()
	check := s.Verify.Codes.Hash(id, s.Verify.Codes.Code(id, nonce))
	var v db.Verification
	var msg db.Message
	var superseded []db.Message
	err = s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) error {
		if err := q.VerificationLockAddress(r.Context(), addressLock(p.TenantID, hash)); err != nil {
			return err
		}
		old, err := q.VerificationSupersede(r.Context(), db.VerificationSupersedeParams{Now: now, TenantID: p.TenantID,
			Channel: req.Channel, DestinationHash: hash})
		if err != nil {
			return err
		}
		for _, o := range old {
			if o.MessageID == nil {
				continue
			}
			m, err := q.MessageCancel(r.Context(), db.MessageCancelParams{TenantID: p.TenantID, ID: *o.MessageID, Now: now})
			if err == nil {
				superseded = append(superseded, m)
			} else if !db.IsNotFound(err) { // already sending or sent: its renderer or the check refuses the old code
				return err
			}
		}
		tenant, err := q.TenantGet(r.Context(), p.TenantID)
		if err != nil {
			return err
		}
		msg, err = s.Dispatcher.InsertMessage(r.Context(), q, jobs.NewMessage{TenantID: p.TenantID,
			Kind: jobs.MessageKindVerification, Channel: req.Channel, Body: verificationPlaceholder, SendAt: now})
		if err != nil {
			return err
		}
		v, err = q.VerificationCreate(r.Context(), db.VerificationCreateParams{ID: id, TenantID: p.TenantID,
			Channel: req.Channel, Destination: to, DestinationHash: hash, Brand: brand(tenant.Name), Nonce: nonce,
			CodeHash: check, MaxAttempts: int32(s.Verify.maxAttempts()), MessageID: &msg.ID,
			ExpiresAt: now.Add(s.Verify.codeTTL()), Now: now})
		return err
	})
	if err != nil {
		return err
	}
	for _, m := range superseded {
		s.Dispatcher.ForgetMessage(m)
	}
	s.Dispatcher.EnqueueMessages(r.Context(), msg)
	encode(w, http.StatusAccepted, verificationView(v, &msg))
	return nil
}

// verificationPlaceholder is the stored body of a verification message:
// the text with the code exists only at send time.
const verificationPlaceholder = "[verification code: written when sent, never stored]"

// limitVerifications applies the per-address limit (across tenants, so
// nobody can use Errand to bomb a phone) and then the tenant's own.
func (s *Server) limitVerifications(ctx context.Context, tenantID uuid.UUID, addressHash []byte) error {
	checks := []struct {
		key     string
		limit   ratelimit.Limit
		message string
	}{
		{"verify:address:" + hex.EncodeToString(addressHash), s.Verify.PerDestination, "too many codes were requested for this address; try again later"},
		{"verify:tenant:" + tenantID.String(), s.Verify.PerTenant, "too many codes were requested by this account; try again later"},
	}
	for _, c := range checks {
		ok, retry, err := s.Limiter.Allow(ctx, c.key, c.limit)
		if err != nil {
			return fault.New(fault.Unavailable, "rate limiter unavailable")
		}
		if !ok {
			return &fault.Error{Code: fault.RateLimited, Message: c.message, RetryAfter: ceilSeconds(retry.Seconds())}
		}
	}
	return nil
}

// addressLock is the advisory lock key of an address within a tenant.
func addressLock(tenantID uuid.UUID, addressHash []byte) int64 {
	h := sha256.New()
	h.Write(tenantID[:])
	h.Write(addressHash)
	return int64(binary.BigEndian.Uint64(h.Sum(nil)))
}

// brand is the business name a code is sent under, on one line.
func brand(name string) string {
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, name)
	return strings.Join(strings.Fields(name), " ")
}

func (s *Server) handleVerificationCheck(w http.ResponseWriter, r *http.Request) error {
	if _, err := uuid.Parse(r.PathValue("id")); err != nil {
		return errNoVerification
	}
	req, err := decode[checkRequest](r)
	if err != nil {
		return err
	}
	code := strings.TrimSpace(req.Code)
	if !otp.Valid(code) {
		return fault.Fields(map[string]string{"code": "must be the 6 digits that were sent"})
	}
	return s.answerVerification(w, r, func(q *db.Queries, v db.Verification) (db.Verification, error) {
		now := s.Clock.Now()
		if s.Verify.Codes.Match(v.ID, code, v.CodeHash) {
			return q.VerificationApprove(r.Context(), db.VerificationApproveParams{Now: now, TenantID: v.TenantID, ID: v.ID})
		}
		return q.VerificationWrongCode(r.Context(), db.VerificationWrongCodeParams{Now: now, TenantID: v.TenantID, ID: v.ID})
	})
}

func (s *Server) handleVerificationGet(w http.ResponseWriter, r *http.Request) error {
	return s.answerVerification(w, r, nil)
}

// answerVerification locks the request's verification, settles it, lets
// act move it on if it is still pending (a finished verification answers
// its status, whatever the code), and answers it with its message.
func (s *Server) answerVerification(w http.ResponseWriter, r *http.Request,
	act func(q *db.Queries, v db.Verification) (db.Verification, error)) error {
	p := tenantOf(r.Context())
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return errNoVerification
	}
	var v db.Verification
	var m *db.Message
	err = s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) error {
		var err error
		if v, err = q.VerificationLock(r.Context(), db.VerificationLockParams{TenantID: p.TenantID, ID: id}); err != nil {
			return err
		}
		if v, m, err = s.settleVerification(r.Context(), q, v); err != nil || act == nil || v.Status != "pending" {
			return err
		}
		v, err = act(q, v)
		return err
	})
	if db.IsNotFound(err) {
		return errNoVerification
	}
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, verificationView(v, m))
	return nil
}

// settleVerification records on a locked pending verification what has
// happened since it was last looked at: its message could not be
// delivered (opted out, bounced, invalid number, gave up), or its time ran
// out. It returns the verification and its message.
func (s *Server) settleVerification(ctx context.Context, q *db.Queries, v db.Verification) (db.Verification, *db.Message, error) {
	var msg *db.Message
	if v.MessageID != nil {
		m, err := q.MessageGet(ctx, db.MessageGetParams{TenantID: v.TenantID, ID: *v.MessageID})
		if err == nil {
			msg = &m
		} else if !db.IsNotFound(err) {
			return v, nil, err
		}
	}
	if v.Status != "pending" {
		return v, msg, nil
	}
	now := s.Clock.Now()
	if reason, failed := undelivered(msg); failed {
		f, err := q.VerificationFail(ctx, db.VerificationFailParams{Reason: reason, Now: now, TenantID: v.TenantID, ID: v.ID})
		return f, msg, err
	}
	if !now.Before(v.ExpiresAt) {
		e, err := q.VerificationExpire(ctx, db.VerificationExpireParams{Now: now, TenantID: v.TenantID, ID: v.ID})
		return e, msg, err
	}
	return v, msg, nil
}

// undelivered says whether a verification's message ended without reaching
// its recipient, and why, in words the tenant can pass on.
func undelivered(m *db.Message) (string, bool) {
	if m == nil {
		return "the code's message no longer exists", true
	}
	why := func(fallback string) string {
		if m.Error != nil && *m.Error != "" {
			return *m.Error
		}
		return fallback
	}
	switch m.Status {
	case "suppressed":
		return "the code could not be delivered: " + why("the address is suppressed"), true
	case "failed":
		return "the code could not be delivered: " + why("the provider refused it"), true
	case "undelivered":
		return "the code could not be delivered: " + why("the carrier could not deliver it"), true
	case "cancelled":
		return "the code's message was cancelled", true
	}
	return "", false
}
