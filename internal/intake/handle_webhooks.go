package intake

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/resend/resend-go/v2"
	twclient "github.com/twilio/twilio-go/client"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/fault"
	"github.com/errandhq/errand/internal/seclog"
	"github.com/errandhq/errand/jobs"
)

// Webhooks. Providers call these without an API key; each request is
// authenticated by its signature, computed over ERRAND_PUBLIC_URL plus the
// path (Twilio) or over the body with a timestamp (Resend, via Svix). A
// forged or stale request answers 403 and is written to the security log.
// Each delivery is processed once: its ID is recorded in the same
// transaction as its effect, and a replay is acknowledged and ignored.
//
// A webhook names a phone number, an email address or a provider message
// ID, not a tenant. Finding the tenant is the one thing done in system
// scope here (a lookup by unique ID or by number, never a scan); the
// effect is then written in that tenant's scope.

// webhookForged is the security-log kind of a webhook whose signature did
// not verify.
const webhookForged = "webhook_signature_invalid"

// Svix refuses a timestamp more than this far from now.
const svixTolerance = 5 * time.Minute

var (
	errForged = &fault.Error{Code: fault.Forbidden, Subcode: "invalid_signature",
		Message: "the webhook signature does not verify"}
	errNoTenant = fault.New(fault.NotFound, "no such tenant")
	errStale    = &fault.Error{Code: fault.Forbidden, Subcode: "stale_signature",
		Message: "the webhook timestamp is more than 5 minutes from now"}
)

func (s *Server) forged(r *http.Request, source, reason string) {
	s.SecLog.Record(r.Context(), seclog.Event{Kind: webhookForged, Actor: source, RemoteAddr: r.RemoteAddr,
		RequestID: requestID(r.Context()), Detail: map[string]any{"reason": reason}})
}

// twilioForm reads a Twilio webhook's form and checks X-Twilio-Signature
// against ERRAND_PUBLIC_URL + the request's path and query, with the
// twilio-go SDK's own validator.
func (s *Server) twilioForm(r *http.Request, source string) (url.Values, error) {
	if s.TwilioAuthToken == "" {
		return nil, fault.New(fault.Unavailable, "Twilio webhooks are not configured (TWILIO_AUTH_TOKEN)")
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return nil, fault.New(fault.UnsupportedType, "Twilio webhooks are application/x-www-form-urlencoded")
	}
	if err := r.ParseForm(); err != nil {
		if tooLarge(err) {
			return nil, decodeFault(err)
		}
		return nil, fault.New(fault.Malformed, "the form could not be read")
	}
	if !validTwilioSignature(s.TwilioAuthToken, s.PublicURL+r.URL.RequestURI(), r.PostForm, r.Header.Get("X-Twilio-Signature")) {
		s.forged(r, source, "X-Twilio-Signature does not match")
		return nil, errForged
	}
	return r.PostForm, nil
}

// validTwilioSignature checks X-Twilio-Signature over the full URL and
// the form's first value per key, with the twilio-go SDK's validator.
func validTwilioSignature(authToken, fullURL string, form url.Values, signature string) bool {
	params := make(map[string]string, len(form))
	for k, v := range form {
		if len(v) > 0 {
			params[k] = v[0]
		}
	}
	v := twclient.NewRequestValidator(authToken)
	return v.Validate(fullURL, params, signature)
}

// Keywords of Twilio's standard opt-out handling. Twilio answers them
// itself (and blocks the number pair); Errand keeps the record and stops
// sending.
var (
	optOutWords = map[string]bool{"STOP": true, "STOPALL": true, "UNSUBSCRIBE": true, "CANCEL": true, "END": true, "QUIT": true}
	optInWords  = map[string]bool{"START": true, "UNSTOP": true, "YES": true}
	helpWords   = map[string]bool{"HELP": true, "INFO": true}
)

// inboundAction classifies an inbound text: opt_out, opt_in, help or "".
// Twilio's Advanced Opt-Out names its decision in OptOutType.
func inboundAction(body, optOutType string) (action, keyword string) {
	keyword = strings.ToUpper(strings.TrimSpace(body))
	switch {
	case optOutWords[keyword] || optOutType == "STOP":
		return "opt_out", keyword
	case optInWords[keyword] || optOutType == "START":
		return "opt_in", keyword
	case helpWords[keyword] || optOutType == "HELP":
		return "help", keyword
	}
	return "", ""
}

// handleTwilioInbound records opt-outs, opt-ins and help requests texted
// to our number. The tenant is the one named in the webhook URL
// (?tenant_id=, for a number of its own), else every tenant that has the
// sender among its contacts: a shared number is one number pair at
// Twilio, which blocks it for all of them alike. A keyword texted to the
// shared number is also kept for the number itself (db.SharedNumberTenant),
// known to a tenant or not: a tenant that adds the sender later (an import,
// a PUT, a contact erased and added again) finds it before texting.
func (s *Server) handleTwilioInbound(w http.ResponseWriter, r *http.Request) error {
	form, err := s.twilioForm(r, "twilio_inbound")
	if err != nil {
		return err
	}
	action, keyword := inboundAction(form.Get("Body"), strings.ToUpper(form.Get("OptOutType")))
	from, sid := strings.TrimSpace(form.Get("From")), form.Get("MessageSid")
	if action == "" || from == "" || sid == "" {
		writeTwiML(w) // an ordinary reply: not ours to handle
		return nil
	}
	var tenants []uuid.UUID
	shared := false
	if t := r.URL.Query().Get("tenant_id"); t != "" {
		id, err := uuid.Parse(t)
		if err != nil {
			return errNoTenant
		}
		if _, err := s.Store.Q().TenantGet(r.Context(), id); db.IsNotFound(err) {
			return errNoTenant
		} else if err != nil {
			return err
		}
		tenants = []uuid.UUID{id}
	} else {
		shared = true
		err = s.Store.AsSystem(r.Context(), func(q *db.Queries) (err error) {
			tenants, err = q.ContactTenantsByPhone(r.Context(), &from)
			return err
		})
		if err != nil {
			return err
		}
	}
	hash := s.Pseudonyms.Address("sms", from)
	now := s.Clock.Now()
	record := func(q *db.Queries, tenant uuid.UUID) error {
		if first, err := recordReceipt(r, q, "twilio_inbound", sid+":"+tenant.String(), now); err != nil || !first {
			return err
		}
		switch action {
		case "opt_out":
			if err := q.SuppressionAdd(r.Context(), db.SuppressionAddParams{TenantID: tenant, Channel: "sms",
				AddressHash: hash, Reason: "opted_out", Source: "twilio_inbound", Now: now}); err != nil {
				return err
			}
		case "opt_in":
			if _, err := q.SuppressionRemove(r.Context(), db.SuppressionRemoveParams{TenantID: tenant, Channel: "sms",
				AddressHash: hash}); err != nil {
				return err
			}
		}
		return q.SuppressionEventRecord(r.Context(), db.SuppressionEventRecordParams{TenantID: tenant, Channel: "sms",
			AddressHash: hash, Action: action, Keyword: keyword, Source: "twilio_inbound", Reference: sid, OccurredAt: now})
	}
	if shared {
		if err := s.Store.AsSystem(r.Context(), func(q *db.Queries) error { return record(q, db.SharedNumberTenant) }); err != nil {
			return err
		}
	}
	for _, tenant := range tenants {
		if err := s.Store.InTenant(r.Context(), tenant, func(q *db.Queries) error { return record(q, tenant) }); err != nil {
			return err
		}
	}
	s.logger.InfoContext(r.Context(), "inbound keyword recorded", "action", action, "tenants", len(tenants), "shared_number", shared)
	writeTwiML(w)
	return nil
}

// writeTwiML answers with an empty TwiML response: Twilio sends its own
// replies to STOP, START and HELP.
func writeTwiML(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Response></Response>`) //nolint:errcheck
}

// recordReceipt remembers a webhook delivery in the caller's transaction;
// it reports false for a replay.
func recordReceipt(r *http.Request, q *db.Queries, source, id string, now time.Time) (bool, error) {
	_, err := q.WebhookReceiptRecord(r.Context(), db.WebhookReceiptRecordParams{Source: source, EventID: id, Now: now})
	if db.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// twilioStatuses maps Twilio's message statuses to ours; the rest
// (accepted, queued, sending, scheduled, canceled) change nothing.
var twilioStatuses = map[string]string{"sent": "sent", "delivered": "delivered", "read": "delivered",
	"undelivered": "undelivered", "failed": "failed"}

// handleTwilioStatus applies a delivery report. The callback URL the
// worker gave Twilio names the tenant and message, and is covered by the
// signature. Reports arrive late, twice and out of order; a message only
// moves forward (MessageApplyDeliveryStatus).
func (s *Server) handleTwilioStatus(w http.ResponseWriter, r *http.Request) error {
	form, err := s.twilioForm(r, "twilio_status")
	if err != nil {
		return err
	}
	status, known := twilioStatuses[strings.ToLower(form.Get("MessageStatus"))]
	tenantID, terr := uuid.Parse(r.URL.Query().Get("tenant_id"))
	messageID, merr := uuid.Parse(r.URL.Query().Get("message_id"))
	sid := form.Get("MessageSid")
	if !known || terr != nil || merr != nil || sid == "" {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	var reason *string
	code := form.Get("ErrorCode")
	if status == "undelivered" || status == "failed" {
		text := "the carrier did not deliver it"
		if code != "" {
			text += " (twilio error " + code + ")"
		}
		if code == "21610" {
			// Not delivered because the recipient opted out: suppressed,
			// as when Twilio refuses the send for the same reason.
			status, text = "suppressed", jobs.SuppressionReason("carrier_opt_out")
		}
		reason = &text
	}
	now := s.Clock.Now()
	err = s.Store.InTenant(r.Context(), tenantID, func(q *db.Queries) error {
		m, err := q.MessageApplyDeliveryStatus(r.Context(), db.MessageApplyDeliveryStatusParams{TenantID: tenantID,
			ID: messageID, Status: status, ProviderMessageID: &sid, Error: reason, Now: now})
		if db.IsNotFound(err) {
			return nil // already further along, or not ours
		}
		if err != nil {
			return err
		}
		if code == "21610" && m.Destination != nil {
			// The recipient had opted out at the carrier: never again.
			return suppress(r, q, tenantID, "sms", *m.Destination, s.Pseudonyms.Address, "carrier_opt_out",
				"twilio_21610", "message:"+m.ID.String(), now)
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// suppress adds an address to a tenant's suppression list with a record.
func suppress(r *http.Request, q *db.Queries, tenant uuid.UUID, channel, address string, hasher func(string, string) []byte,
	reason, source, reference string, now time.Time) error {
	hash := hasher(channel, address)
	if err := q.SuppressionAdd(r.Context(), db.SuppressionAddParams{TenantID: tenant, Channel: channel,
		AddressHash: hash, Reason: reason, Source: source, Now: now}); err != nil {
		return err
	}
	return q.SuppressionEventRecord(r.Context(), db.SuppressionEventRecordParams{TenantID: tenant, Channel: channel,
		AddressHash: hash, Action: "opt_out", Keyword: reason, Source: source, Reference: reference, OccurredAt: now})
}

// resendEvent is the part of a Resend webhook event Errand reads.
type resendEvent struct {
	Type string `json:"type"`
	Data struct {
		EmailID string   `json:"email_id"`
		To      []string `json:"to"`
	} `json:"data"`
}

// maxWebhookBody bounds a Resend event.
const maxWebhookBody = 256 << 10

// handleResend applies Resend's events: delivery reports, and bounces and
// complaints, which suppress the address for the tenant that sent to it.
// The Svix signature is checked by resend-go's own verifier after Errand
// checks the timestamp against its clock; each svix-id is processed once.
// verifySvix checks a Svix-signed delivery: its headers are present, its
// timestamp within svixTolerance of now, and its signature (with the
// resend-go SDK's verifier) over id, timestamp and body. On failure it
// says why, for the security log, and returns the fault to answer.
func verifySvix(secret string, now time.Time, h http.Header, body []byte) (reason string, err error) {
	id, ts, sig := h.Get("svix-id"), h.Get("svix-timestamp"), h.Get("svix-signature")
	sec, perr := strconv.ParseInt(ts, 10, 64)
	if perr != nil || id == "" || sig == "" {
		return "missing svix headers", errForged
	}
	if strconv.FormatInt(sec, 10) != ts {
		// "+1777636800" or "01777636800" parse to the same second but are
		// signed as written: Svix never sends them, so they are refused
		// rather than checked as a different string than the one meant.
		return "svix-timestamp is not a plain number", errForged
	}
	if d := now.Sub(time.Unix(sec, 0)); d > svixTolerance || d < -svixTolerance {
		return "timestamp outside tolerance", errStale
	}
	// The SDK compares whatever follows the comma of every entry, whatever
	// its version; only v1 entries are HMAC-SHA256 signatures (v1a is an
	// Ed25519 one), so only they are given to it.
	var v1 []string
	for _, e := range strings.Split(sig, " ") {
		if strings.HasPrefix(e, "v1,") {
			v1 = append(v1, e)
		}
	}
	if len(v1) == 0 {
		return "svix-signature has no v1 signature", errForged
	}
	verifier := &resend.WebhooksSvcImpl{}
	if err := verifier.Verify(&resend.VerifyWebhookOptions{Payload: string(body), WebhookSecret: secret,
		Headers: resend.WebhookHeaders{Id: id, Timestamp: ts, Signature: strings.Join(v1, " ")}}); err != nil {
		return "svix-signature does not match", errForged
	}
	return "", nil
}

func (s *Server) handleResend(w http.ResponseWriter, r *http.Request) error {
	if s.ResendWebhookSecret == "" {
		return fault.New(fault.Unavailable, "Resend webhooks are not configured (RESEND_WEBHOOK_SECRET)")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxWebhookBody+1))
	if err != nil {
		if tooLarge(err) {
			return decodeFault(err)
		}
		return fault.New(fault.Malformed, "the body could not be read")
	}
	if len(body) > maxWebhookBody {
		return fault.New(fault.TooLarge, "the event is larger than %d bytes", maxWebhookBody)
	}
	if reason, err := verifySvix(s.ResendWebhookSecret, s.Clock.Now(), r.Header, body); err != nil {
		s.forged(r, "resend", reason)
		return err
	}
	id := r.Header.Get("svix-id")
	var ev resendEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return fault.New(fault.Malformed, "the event is not JSON")
	}
	now := s.Clock.Now()
	var msg db.MessageFindByProviderRow
	found := false
	if ev.Data.EmailID != "" {
		err = s.Store.AsSystem(r.Context(), func(q *db.Queries) error {
			m, err := q.MessageFindByProvider(r.Context(), &ev.Data.EmailID)
			if db.IsNotFound(err) {
				return nil
			}
			msg, found = m, err == nil
			return err
		})
		if err != nil {
			return err
		}
	}
	if !found {
		// Not an email of ours (or one erased since): remember the delivery only.
		if _, err := recordReceipt(r, s.Store.Q(), "resend", id, now); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	err = s.Store.InTenant(r.Context(), msg.TenantID, func(q *db.Queries) error {
		if first, err := recordReceipt(r, q, "resend", id, now); err != nil || !first {
			return err
		}
		return s.applyResendEvent(r, q, ev, msg, now)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) applyResendEvent(r *http.Request, q *db.Queries, ev resendEvent, m db.MessageFindByProviderRow, now time.Time) error {
	address := ""
	if m.Destination != nil {
		address = *m.Destination
	} else if len(ev.Data.To) > 0 {
		address = ev.Data.To[0]
	}
	status, suppressAs := "", ""
	var reason *string
	switch ev.Type {
	case resend.EventEmailSent:
		status = "sent"
	case resend.EventEmailDelivered:
		status = "delivered"
	case resend.EventEmailBounced:
		text := "email address bounced"
		status, reason, suppressAs = "undelivered", &text, "bounced"
	case resend.EventEmailFailed:
		text := "the email provider could not send it"
		status, reason = "failed", &text
	case resend.EventEmailComplained:
		suppressAs = "complained"
	default:
		return nil
	}
	if status != "" {
		_, err := q.MessageApplyDeliveryStatus(r.Context(), db.MessageApplyDeliveryStatusParams{TenantID: m.TenantID,
			ID: m.ID, Status: status, ProviderMessageID: &ev.Data.EmailID, Error: reason, Now: now})
		if err != nil && !db.IsNotFound(err) {
			return err
		}
	}
	if suppressAs == "" || address == "" {
		return nil
	}
	if err := suppress(r, q, m.TenantID, "email", address, s.Pseudonyms.Address, suppressAs, "resend_webhook",
		"message:"+m.ID.String(), now); err != nil {
		return fmt.Errorf("suppress email address: %w", err)
	}
	return nil
}
