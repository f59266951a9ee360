package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/logging"
	"github.com/errandhq/errand/internal/notify"
	"github.com/errandhq/errand/internal/provider"
	"github.com/errandhq/errand/internal/pseudonym"
)

// TypeMessageSend delivers one message row to its provider.
const TypeMessageSend = "message:send"

// MessageSendPayload names the message; the body and destination stay in
// PostgreSQL.
type MessageSendPayload struct {
	TenantID  uuid.UUID `json:"tenant_id"`
	MessageID uuid.UUID `json:"message_id"`
}

// Message send limits. A claim older than claimTimeout belongs to a worker
// that died: the provider call (10 s timeout) and the task (30 s timeout)
// have both given up by then.
const (
	messageTimeout     = 30 * time.Second
	messageMaxRetry    = 12
	claimTimeout       = 60 * time.Second
	earlyTolerance     = 2 * time.Second
	stallGrace         = time.Minute // overdue this long, the row's task is looked up in Redis
	stallRecheck       = time.Minute // a row found in Redis is not looked up again for this long
	maxMessageAttempts = messageMaxRetry + 3
)

// MessageQueue picks the queue for a message by its kind. Bulk texts and
// account notices go to the bulk queue, so a large batch never stands
// between a customer and their appointment reminder.
func MessageQueue(kind string) string {
	switch kind {
	case "verification":
		return QueueCritical
	case "bulk", "notice":
		return QueueBulk
	default:
		return QueueNotifications
	}
}

// NewMessageSendJob describes the task of one message.
func NewMessageSendJob(tenantID, messageID uuid.UUID, kind string) Job {
	payload, _ := json.Marshal(MessageSendPayload{TenantID: tenantID, MessageID: messageID})
	return Job{
		ID:      "message:" + messageID.String(),
		Queue:   MessageQueue(kind),
		Type:    TypeMessageSend,
		Payload: payload,
		Opts:    []asynq.Option{asynq.MaxRetry(messageMaxRetry), asynq.Timeout(messageTimeout)},
	}
}

// MessageSend sends a message at most once.
//
// The row is the ledger: it is claimed ('sending', claimed_at, attempts+1)
// in a committed transaction before the provider is called, and marked
// 'sent' after. A task that finds a fresh claim backs off (another worker
// holds it). Any earlier claim means an earlier attempt may have reached
// the provider (the worker died mid-call, or the provider accepted and then
// failed or timed out), so before sending again the task asks the provider
// whether the message went out: Twilio by listing our messages to that
// number since the message was first claimed, Resend by reusing the
// message's idempotency key.
type MessageSend struct {
	Store             *db.Store
	Clock             clock.Clock
	Logger            *slog.Logger
	SMS               SMSSender
	Email             EmailSender
	Retry             RetryPolicy
	Pseudonyms        *pseudonym.Hasher
	Renderers         map[string]Renderer
	StatusCallbackURL string
	// Limits are the providers' rate limits (nil: none).
	Limits *SendLimits
	// Dispatcher admits the next bulk messages when one finishes.
	Dispatcher *Dispatcher
}

// NewMessageSend builds the handler from the shared dependencies. The
// appointment kinds' renderers are built in; d.Renderers adds to them.
func NewMessageSend(d Deps) *MessageSend {
	renderers := appointmentRenderers(d.Clock)
	for kind, r := range d.Renderers {
		renderers[kind] = r
	}
	return &MessageSend{Store: d.Store, Clock: d.Clock, Logger: d.Logger, SMS: d.SMS, Email: d.Email,
		Retry: d.Retry, Pseudonyms: d.Pseudonyms, Renderers: renderers, StatusCallbackURL: d.StatusCallbackURL,
		Limits: d.Limits, Dispatcher: d.Dispatcher}
}

// A Renderer writes the text of a message at send time, inside the claim
// transaction: for kinds whose text must never be stored (verification
// codes) or depends on data that may change until then (an appointment's
// time in the recipient's zone). It must be deterministic for a given
// message, because a retry compares its output with what the provider
// may already have accepted. An error it wraps with Permanent fails the
// message with that reason; Suppressed and Cancelled end it with that
// status and reason; others are retried.
type Renderer interface {
	Render(ctx context.Context, q *db.Queries, m db.Message) (Rendered, error)
}

// Rendered is a message's text, and optionally its destination.
type Rendered struct {
	Subject string
	Body    string
	// To, when set, is where the message goes instead of its contact or
	// owner (a verification code goes to the address given with the
	// request). It is still checked against the suppression list.
	To string
	// Record keeps the text on the message (with its claim) for the
	// message log. Never set it for text that must not be stored (codes).
	Record bool
}

// sendPlan is what the claim transaction decided.
type sendPlan struct {
	msg        db.Message
	tenantName string
	to         string
	text       Rendered
	recovering bool // an earlier attempt may have reached the provider
	done       bool // nothing to send: finished, deferred or already sent
	// verdict, when set, is a decision not to send (cancelled, suppressed,
	// failed) taken while an earlier attempt may have reached the
	// provider: it is recorded only once the provider says it has no such
	// message, never over a text the customer may already have.
	verdict *notSentError
}

// ProcessTask implements asynq.Handler.
func (h *MessageSend) ProcessTask(ctx context.Context, t *asynq.Task) (err error) {
	var p MessageSendPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	ctx = logging.With(ctx, slog.String("tenant_id", p.TenantID.String()), slog.String("message_id", p.MessageID.String()))
	plan, err := h.claim(ctx, p)
	if plan.msg.Kind == "bulk" {
		defer func() { h.admitNext(ctx, p.TenantID, err) }()
	}
	if err != nil || plan.done {
		return err
	}
	if plan.recovering && plan.msg.Channel == "sms" {
		receipt, found, err := h.findSent(ctx, plan)
		if err != nil {
			return h.outcome(ctx, plan, provider.Receipt{}, err)
		}
		if found {
			h.Logger.InfoContext(ctx, "message was accepted by an earlier attempt; recorded, not resent")
			return h.outcome(ctx, plan, receipt, nil)
		}
	}
	if v := plan.verdict; v != nil {
		return h.finishWith(ctx, plan.msg, v.status, v.reason, nil)
	}
	receipt, err := h.send(ctx, plan)
	return h.outcome(ctx, plan, receipt, err)
}

// claim decides, under the row lock, whether and where to send, and
// records the attempt before any provider is called. Decisions not to send
// (finish, defer) commit with it.
func (h *MessageSend) claim(ctx context.Context, p MessageSendPayload) (sendPlan, error) {
	var plan sendPlan
	// Pipelined: BEGIN travels with the lock, and the claim (or the
	// decision not to send) with the COMMIT; the claim is still committed
	// before this returns, so before any provider call.
	err := h.Store.InTenantPipelined(ctx, p.TenantID, func(q *db.Queries) error {
		row, err := q.MessageLock(ctx, db.MessageLockParams{TenantID: p.TenantID, ID: p.MessageID})
		if db.IsNotFound(err) {
			h.Logger.InfoContext(ctx, "message no longer exists; nothing to send")
			plan.done = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock message: %w", err)
		}
		m, now := row.Message, h.Clock.Now()
		plan.msg, plan.tenantName = m, row.TenantName
		finish := func(status, reason string) error {
			if m.ClaimedAt != nil && m.Destination != nil {
				if m.Channel == "sms" {
					// Ask Twilio first (ProcessTask); the check claim makes
					// any other run of this task back off meanwhile.
					plan.verdict, plan.recovering, plan.to = &notSentError{status: status, reason: reason}, true, *m.Destination
					return q.MessageClaimCheck(ctx, db.MessageClaimCheckParams{TenantID: m.TenantID, ID: m.ID, Now: now})
				}
				// Resend can only be asked by sending again (with the same
				// idempotency key), which would send it if the earlier
				// attempt had not: record the decision, and say so.
				reason += "; an earlier attempt's outcome at the provider is unknown"
			}
			if err := q.MessageFinish(ctx, db.MessageFinishParams{TenantID: m.TenantID, ID: m.ID, Status: status, Error: &reason, Now: now}); err != nil {
				return err
			}
			h.Logger.InfoContext(ctx, "message not sent", "status", status, "reason", reason)
			plan.done = true
			return nil
		}
		switch m.Status {
		case "scheduled", "queued":
			if m.CancelRequestedAt != nil {
				// Cancelled after an attempt whose outcome is unknown:
				// settled with the provider (finish), never sent.
				return finish("cancelled", "cancelled before it was sent")
			}
			if m.DueAt.After(now.Add(earlyTolerance)) {
				// Early (a clock disagreed, or someone ran it by hand): the
				// dispatcher enqueues it again when it is due.
				plan.done = true
				return q.MessageDefer(ctx, db.MessageDeferParams{TenantID: m.TenantID, ID: m.ID, Now: now})
			}
		case "sending":
			if m.ClaimedAt != nil && now.Sub(*m.ClaimedAt) < claimTimeout {
				wait := claimTimeout - now.Sub(*m.ClaimedAt)
				return Retry(errors.New("another worker is sending this message"), wait)
			}
		default:
			plan.done = true // sent, delivered, failed, suppressed, cancelled
			return nil
		}
		plan.recovering = m.ClaimedAt != nil
		if m.Attempts >= maxMessageAttempts {
			return finish("failed", fmt.Sprintf("gave up after %d attempts", m.Attempts))
		}
		if until, quiet := h.quietUntil(row, now); quiet {
			// Held until the recipient's quiet hours end: the dispatcher
			// enqueues it again then. Verification codes never wait.
			plan.done = true
			h.Logger.InfoContext(ctx, "message held for the recipient's quiet hours", "until", until)
			return q.MessageHold(ctx, db.MessageHoldParams{TenantID: m.TenantID, ID: m.ID, DueAt: until, Now: now})
		}
		plan.text = Rendered{Body: m.Body}
		if m.Subject != nil {
			plan.text.Subject = *m.Subject
		}
		if r, ok := h.Renderers[m.Kind]; ok {
			plan.text, err = r.Render(ctx, q, m)
			var ns *notSentError
			if errors.As(err, &ns) {
				return finish(ns.status, ns.reason)
			}
			if errors.Is(err, asynq.SkipRetry) {
				return finish("failed", strings.TrimSuffix(err.Error(), " ("+asynq.SkipRetry.Error()+")"))
			}
			if err != nil {
				return fmt.Errorf("render %s message: %w", m.Kind, err)
			}
		}
		switch {
		case plan.text.To != "":
			plan.to = plan.text.To
		case m.ContactID == nil && m.Channel == "email":
			// Messages to the business itself (notices, warnings, deadlines).
			if row.TenantOwnerEmail == nil {
				return finish("suppressed", "the tenant has no owner email address")
			}
			plan.to = *row.TenantOwnerEmail
		case m.ContactID == nil:
			return finish("suppressed", "no recipient")
		case m.Channel == "sms":
			if row.ContactPhone == nil {
				return finish("suppressed", "contact has no phone number")
			}
			plan.to = *row.ContactPhone
		default:
			if row.ContactEmail == nil {
				return finish("suppressed", "contact has no email address")
			}
			plan.to = *row.ContactEmail
		}
		sup, err := q.SuppressionGet(ctx, db.SuppressionGetParams{TenantID: m.TenantID, Channel: m.Channel,
			AddressHash: h.Pseudonyms.Address(m.Channel, plan.to)})
		if err == nil {
			return finish("suppressed", SuppressionReason(sup.Reason))
		}
		if !db.IsNotFound(err) {
			return fmt.Errorf("check suppression: %w", err)
		}
		if err := h.Limits.Allow(ctx, m.Channel, m.Kind); err != nil {
			return err // rate limited: nothing claimed, asynq tries again shortly
		}
		claim := db.MessageClaimParams{TenantID: m.TenantID, ID: m.ID, Destination: &plan.to, Now: now}
		if plan.text.Record {
			claim.RecordText, claim.Body = true, plan.text.Body
			if plan.text.Subject != "" {
				claim.Subject = &plan.text.Subject
			}
		}
		return q.MessageClaim(ctx, claim)
	})
	return plan, err
}

// quietUntil says whether a message falls in its recipient's quiet hours
// and when they end. The recipient's zone is the contact's, else the
// location's, else the tenant's; quiet hours are the location's, else the
// default 21:00–08:00. Quiet hours protect a business's customers, so
// only messages to a contact wait: verification codes (someone is looking
// at a login screen) and notices to the tenant's owner (credential expiry,
// privacy-request deadlines, policy changes) go at once.
func (h *MessageSend) quietUntil(row db.MessageLockRow, now time.Time) (time.Time, bool) {
	m := row.Message
	if m.Kind == MessageKindVerification || m.ContactID == nil {
		return time.Time{}, false
	}
	quiet := notify.DefaultQuietHours
	if row.LocationSettings != nil {
		quiet = notify.ParseSettings(row.LocationSettings).QuietHours
	}
	zone := notify.Zone(deref(row.ContactTimezone), deref(row.LocationTimezone), row.TenantTimezone)
	at := now
	if m.DueAt.After(now) {
		at = m.DueAt // a task that started a moment early is judged at its due time
	}
	return quiet.Until(at, zone)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// admitNext lets the next of a tenant's bulk messages into Redis once this
// one has left it (finished, held, or given up), keeping the tenant's
// window full. The due-scan does the same periodically, should this fail.
func (h *MessageSend) admitNext(ctx context.Context, tenantID uuid.UUID, result error) {
	if h.Dispatcher == nil || (result != nil && !errors.Is(result, asynq.SkipRetry)) {
		return // still in Redis: it will run again
	}
	if _, err := h.Dispatcher.AdmitBulk(context.WithoutCancel(ctx), tenantID); err != nil {
		h.Logger.WarnContext(ctx, "could not admit more bulk messages; the due-scan will", "err", err)
	}
}

// statusCallback is where Twilio reports this message's delivery: the
// configured URL naming the tenant and message, so the report finds its
// row even before the worker recorded Twilio's ID. Twilio signs the URL
// with its query, so the names cannot be forged.
func (h *MessageSend) statusCallback(m db.Message) string {
	if h.StatusCallbackURL == "" {
		return ""
	}
	v := url.Values{"tenant_id": {m.TenantID.String()}, "message_id": {m.ID.String()}}
	sep := "?"
	if strings.Contains(h.StatusCallbackURL, "?") {
		sep = "&"
	}
	return h.StatusCallbackURL + sep + v.Encode()
}

// claimSkew is how far Twilio's clock may be behind ours: a text accepted
// just after our claim may carry a creation time just before it.
const claimSkew = 30 * time.Second

// findSent asks Twilio for this message among what it accepted from us to
// the number the earlier attempt sent to, since that attempt's first
// claim (less claimSkew). A row claimed before first_claimed_at existed
// searches from its creation. Texts recorded on another message, of any
// tenant (the sending number is shared), are someone else's. Twilio may
// have rewritten the text (provider.MatchSMS); and a message written at
// send time may read differently now than when the earlier attempt sent
// it (its appointment moved), so the text that attempt recorded on the
// row is looked for too.
func (h *MessageSend) findSent(ctx context.Context, plan sendPlan) (provider.Receipt, bool, error) {
	m := plan.msg
	var bodies []string
	for _, b := range []string{plan.text.Body, m.Body} {
		if b != "" && !slices.Contains(bodies, b) {
			bodies = append(bodies, b)
		}
	}
	to := plan.to
	if m.Destination != nil {
		to = *m.Destination // where the earlier attempt sent it
	}
	since := m.CreatedAt.Add(-time.Minute)
	if m.FirstClaimedAt != nil {
		since = m.FirstClaimedAt.Add(-claimSkew)
	}
	sent, err := h.SMS.ListSMS(ctx, to, since)
	if err != nil || len(sent) == 0 {
		return provider.Receipt{}, false, err
	}
	ids := make([]string, len(sent))
	for i, s := range sent {
		ids[i] = s.ProviderID
	}
	var taken []string
	err = h.Store.AsSystem(ctx, func(q *db.Queries) (err error) {
		taken, err = q.MessageProviderIDsTaken(ctx, db.MessageProviderIDsTakenParams{ProviderMessageIds: ids, ID: m.ID})
		return err
	})
	if err != nil {
		return provider.Receipt{}, false, err
	}
	sent = slices.DeleteFunc(sent, func(s provider.SentSMS) bool { return slices.Contains(taken, s.ProviderID) })
	match, found := provider.MatchSMS(sent, bodies...)
	return provider.Receipt{ProviderID: match.ProviderID}, found, nil
}

func (h *MessageSend) send(ctx context.Context, plan sendPlan) (provider.Receipt, error) {
	m := plan.msg
	switch m.Channel {
	case "sms":
		return h.SMS.SendSMS(ctx, provider.SMS{To: plan.to, Body: plan.text.Body, StatusCallback: h.statusCallback(m)})
	case "email":
		subject := plan.text.Subject
		if subject == "" {
			subject = "A message from " + plan.tenantName
		}
		return h.Email.SendEmail(ctx, provider.Email{To: plan.to, Subject: subject, Text: plan.text.Body,
			IdempotencyKey: "message-" + m.ID.String()})
	}
	return provider.Receipt{}, fmt.Errorf("unknown channel %q", m.Channel)
}

// outcome records what the provider said and tells asynq what to do next.
func (h *MessageSend) outcome(ctx context.Context, plan sendPlan, receipt provider.Receipt, sendErr error) error {
	m := plan.msg
	now := h.Clock.Now()
	if sendErr == nil {
		// Unsynced: if a crash loses this record, the row still says
		// 'sending' and the next attempt finds the message at the provider.
		// Pipelined: one round trip.
		err := h.Store.InTenantPipelinedUnsynced(ctx, m.TenantID, func(q *db.Queries) error {
			return q.MessageMarkSent(ctx, db.MessageMarkSentParams{TenantID: m.TenantID, ID: m.ID,
				ProviderMessageID: &receipt.ProviderID, Now: now})
		})
		if err != nil {
			// The provider has it; the next attempt finds it there instead of sending again.
			return Retry(fmt.Errorf("record sent message: %w", err), h.Retry.Delay(1))
		}
		h.Logger.InfoContext(ctx, "message sent", "channel", m.Channel, "provider_message_id", receipt.ProviderID)
		return nil
	}

	perr := provider.Classify(sendErr)
	reason := describe(perr)
	switch perr.Kind {
	case provider.OptedOut:
		h.suppress(ctx, plan, "carrier_opt_out", "twilio_"+perr.Code)
		return h.finishWith(ctx, m, "suppressed", SuppressionReason("carrier_opt_out"), nil)
	case provider.Permanent:
		return h.finishWith(ctx, m, "failed", reason, Permanent(perr))
	case provider.Credentials:
		// Every message on this channel fails the same way until an
		// operator fixes the configuration: fail this one at once with the
		// reason (retrying each message for half an hour helps nobody),
		// and say so where operators look.
		h.Logger.ErrorContext(ctx, "provider rejected Errand's credentials; every message on this channel fails until the provider configuration is fixed",
			"channel", m.Channel, "code", perr.Code, "status", perr.Status)
		return h.finishWith(ctx, m, "failed", reason, Permanent(perr))
	}
	delay := h.Retry.Delay(int(m.Attempts) + 1)
	if perr.RetryAfter > delay {
		// The provider's own wait, within the policy's maximum: a
		// Retry-After of a day must not park a reminder for a day.
		delay = perr.RetryAfter
		if h.Retry.Cap > 0 && delay > h.Retry.Cap {
			delay = h.Retry.Cap
		}
	}
	err := h.Store.InTenant(ctx, m.TenantID, func(q *db.Queries) error {
		return q.MessageRetryLater(ctx, db.MessageRetryLaterParams{TenantID: m.TenantID, ID: m.ID,
			DueAt: now.Add(delay), Error: &reason, Now: now})
	})
	if err != nil {
		h.Logger.ErrorContext(ctx, "could not record retry", "err", err)
	}
	return Retry(perr, delay)
}

func (h *MessageSend) finishWith(ctx context.Context, m db.Message, status, reason string, ret error) error {
	err := h.Store.InTenant(ctx, m.TenantID, func(q *db.Queries) error {
		return q.MessageFinish(ctx, db.MessageFinishParams{TenantID: m.TenantID, ID: m.ID, Status: status,
			Error: &reason, Now: h.Clock.Now()})
	})
	if err != nil {
		return Retry(fmt.Errorf("record %s message: %w", status, err), h.Retry.Delay(1))
	}
	h.Logger.InfoContext(ctx, "message not sent", "status", status, "reason", reason)
	return ret
}

// suppress adds the message's address to its tenant's suppression list, with
// a record of why, when the provider says the recipient opted out.
func (h *MessageSend) suppress(ctx context.Context, plan sendPlan, reason, source string) {
	m := plan.msg
	hash := h.Pseudonyms.Address(m.Channel, plan.to)
	now := h.Clock.Now()
	err := h.Store.InTenant(ctx, m.TenantID, func(q *db.Queries) error {
		if err := q.SuppressionAdd(ctx, db.SuppressionAddParams{TenantID: m.TenantID, Channel: m.Channel,
			AddressHash: hash, Reason: reason, Source: source, Now: now}); err != nil {
			return err
		}
		return q.SuppressionEventRecord(ctx, db.SuppressionEventRecordParams{TenantID: m.TenantID, Channel: m.Channel,
			AddressHash: hash, Action: "opt_out", Source: source, Reference: "message:" + m.ID.String(), OccurredAt: now})
	})
	if err != nil {
		h.Logger.ErrorContext(ctx, "could not record opt-out", "err", err)
	}
}

// SuppressionReason says why a suppressed address gets nothing, as the
// message's reason.
func SuppressionReason(reason string) string {
	switch reason {
	case "opted_out":
		return "recipient opted out"
	case "carrier_opt_out":
		return "recipient opted out (the carrier refused: unsubscribed)"
	case "bounced":
		return "email address bounced"
	case "complained":
		return "recipient marked an earlier email as spam"
	}
	return "recipient is on the suppression list (" + reason + ")"
}

// describe is a provider failure as a person reads it on the message: what
// happened and the provider's own code. It carries no number or address.
func describe(e *provider.Error) string {
	s := e.Message
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d", e.Status)
		if e.Code != "" && e.Code != fmt.Sprintf("http_%d", e.Status) {
			s += ", code " + e.Code
		}
		return s + ")"
	}
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	return s
}

// GiveUp marks the message failed when asynq stops retrying it.
func (h *MessageSend) GiveUp(ctx context.Context, payload []byte, cause error) error {
	var p MessageSendPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil // nothing to point at
	}
	reason := "gave up: " + cause.Error()
	var perr *provider.Error
	if errors.As(cause, &perr) {
		reason = "gave up: " + describe(perr)
	}
	return h.Store.InTenant(ctx, p.TenantID, func(q *db.Queries) error {
		return q.MessageFinish(ctx, db.MessageFinishParams{TenantID: p.TenantID, ID: p.MessageID,
			Status: "failed", Error: &reason, Now: h.Clock.Now()})
	})
}

// Messages is the messages table as the dispatcher sees it.
type Messages struct{}

// Name implements Dispatchable.
func (Messages) Name() string { return "message" }

// Job implements Dispatchable.
func (Messages) Job(ref Ref) (Job, error) {
	return NewMessageSendJob(ref.TenantID, ref.ID, ref.Variant), nil
}

// Undispatched implements Dispatchable.
func (Messages) Undispatched(ctx context.Context, q *db.Queries, until time.Time, limit int32) ([]Ref, error) {
	rows, err := q.MessageListUndispatched(ctx, db.MessageListUndispatchedParams{Until: until, MaxRows: limit})
	return Refs(rows, err, messageRef)
}

func messageRef(r db.MessageListUndispatchedRow) Ref {
	return Ref{TenantID: r.TenantID, ID: r.ID, DueAt: r.DueAt, Variant: r.Kind}
}

// Stalled implements Dispatchable: due more than a grace period ago and not
// started, or claimed longer ago than any send can take.
func (Messages) Stalled(ctx context.Context, q *db.Queries, now time.Time, limit int32) ([]Ref, error) {
	rows, err := q.MessageListStalled(ctx, db.MessageListStalledParams{
		OverdueBefore: now.Add(-stallGrace), CheckedBefore: now.Add(-stallRecheck),
		ClaimedBefore: now.Add(-claimTimeout), MaxRows: limit})
	return Refs(rows, err, func(r db.MessageListStalledRow) Ref { return messageRef(db.MessageListUndispatchedRow(r)) })
}

// MarkEnqueued implements Dispatchable.
func (Messages) MarkEnqueued(ctx context.Context, q *db.Queries, ids []uuid.UUID, now time.Time) error {
	return q.MessageMarkEnqueued(ctx, db.MessageMarkEnqueuedParams{Ids: ids, Now: now})
}

// ForgetEnqueued implements Dispatchable.
func (Messages) ForgetEnqueued(ctx context.Context, q *db.Queries) (int64, error) {
	return q.MessageForgetEnqueued(ctx)
}

// NewMessage is a message to create.
type NewMessage struct {
	TenantID uuid.UUID
	// ContactID is the recipient; uuid.Nil addresses the tenant's owner
	// (email only).
	ContactID uuid.UUID
	Kind      string // manual, confirmation, reminder, on_the_way, follow_up, bulk, verification, notice
	Channel   string // sms, email
	Subject   *string
	Body      string
	SendAt    time.Time
	// AppointmentID and LocationID say what the message is about (its
	// renderer and quiet hours read them); Slot is its place in the
	// appointment's plan (see AppointmentCancelPending).
	AppointmentID *uuid.UUID
	LocationID    *uuid.UUID
	Slot          *string
	// Suppressed, when set, records a message that will not be sent and
	// why (its event or channel is switched off): ops see why nothing
	// went out.
	Suppressed string
}

// InsertMessage writes a message row inside the caller's transaction. When
// it is due within the horizon the row is marked enqueued; the caller then
// hands it to EnqueueMessages after the transaction commits. Bulk messages
// are never marked here: they reach Redis through AdmitBulk.
func (d *Dispatcher) InsertMessage(ctx context.Context, q *db.Queries, m NewMessage) (db.Message, error) {
	now, status, reason, enqueued := d.newMessageState(m)
	var contact *uuid.UUID
	if m.ContactID != uuid.Nil {
		contact = &m.ContactID
	}
	return q.MessageCreate(ctx, db.MessageCreateParams{
		TenantID: m.TenantID, ContactID: contact, Kind: m.Kind, Channel: m.Channel, Subject: m.Subject,
		Body: m.Body, Status: status, SendAt: m.SendAt, DueAt: m.SendAt, EnqueuedAt: enqueued,
		AppointmentID: m.AppointmentID, LocationID: m.LocationID, Slot: m.Slot, Error: reason, Now: now})
}

// InsertMessageForContact is InsertMessage for a message to the contact
// whose external ID is externalID (m.ContactID is ignored), looked up in
// the same statement; db.IsNotFound when the tenant has no such contact.
// Messages about an appointment or a location, or suppressed at creation,
// go through InsertMessage.
func (d *Dispatcher) InsertMessageForContact(ctx context.Context, q *db.Queries, externalID string, m NewMessage) (db.Message, error) {
	if m.AppointmentID != nil || m.LocationID != nil || m.Slot != nil || m.Suppressed != "" {
		return db.Message{}, errors.New("InsertMessageForContact: only plain messages")
	}
	now, status, _, enqueued := d.newMessageState(m)
	return q.MessageCreateForContact(ctx, db.MessageCreateForContactParams{
		TenantID: m.TenantID, ExternalID: externalID, Kind: m.Kind, Channel: m.Channel, Subject: m.Subject,
		Body: m.Body, Status: status, SendAt: m.SendAt, DueAt: m.SendAt, EnqueuedAt: enqueued, Now: now})
}

// newMessageState is a new message's status, and whether it is marked
// enqueued: when it is due within the horizon, and not bulk.
func (d *Dispatcher) newMessageState(m NewMessage) (now time.Time, status string, reason *string, enqueued *time.Time) {
	now = d.Clock.Now()
	status = "queued"
	if m.SendAt.After(now) {
		status = "scheduled"
	}
	switch {
	case m.Suppressed != "":
		status, reason = "suppressed", &m.Suppressed
	case m.Kind != "bulk" && d.Within(m.SendAt):
		enqueued = &now
	}
	return now, status, reason, enqueued
}

// EnqueueMessages puts freshly committed messages that InsertMessage marked
// enqueued into Redis. When Redis refuses, the mark is cleared so the
// due-scan picks the message up; the request that created it still
// succeeds, because PostgreSQL has it.
//
// One EnqueueContext (one round trip, asynq's Lua script) per message, in
// turn: asynq has no batch enqueue, and its client hides the connection,
// so no pipelining. Measured (local Redis, 2 loaded cores): 100 messages
// take 17 ms in turn, 9 ms across 8 goroutines. The most ever enqueued
// here at once is one bulk window (BulkWindow, 100: when a batch is
// posted, next to a 50,000-row insert that takes seconds); a window
// refills 10 or more at a time as its texts finish (about 0.2 ms a text,
// after the text is sent, against a provider rate of tens a second). So
// concurrency would buy nothing a sender notices, and in-order enqueues
// keep a window's texts in due order in the bulk queue.
func (d *Dispatcher) EnqueueMessages(ctx context.Context, msgs ...db.Message) {
	for _, m := range msgs {
		if m.EnqueuedAt == nil {
			continue
		}
		ref := Ref{TenantID: m.TenantID, ID: m.ID, DueAt: m.DueAt, Variant: m.Kind}
		if err := d.Enqueue(ctx, Messages{}, ref); err != nil {
			d.Logger.WarnContext(ctx, "enqueue deferred to the due-scan", "message_id", m.ID, "err", err)
			uerr := d.Store.InTenant(ctx, m.TenantID, func(q *db.Queries) error {
				return q.MessageUnmarkEnqueued(ctx, db.MessageUnmarkEnqueuedParams{TenantID: m.TenantID, ID: m.ID})
			})
			if uerr != nil {
				d.Logger.ErrorContext(ctx, "could not unmark message; the stalled scan will recover it", "message_id", m.ID, "err", uerr)
			}
		}
	}
}

// ForgetMessage removes a cancelled message's task from Redis, if asynq
// still holds it waiting. A task already running finds the row cancelled.
func (d *Dispatcher) ForgetMessage(m db.Message) {
	job := NewMessageSendJob(m.TenantID, m.ID, m.Kind)
	d.Inspector.DeleteTask(job.Queue, job.ID) //nolint:errcheck // not found or active: nothing to remove
}
