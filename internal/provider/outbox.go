package provider

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"sync"
	"time"
)

// Outbox stands in for Twilio and Resend when no credentials are configured:
// it logs that a message would have been sent and returns a receipt. It
// mirrors the providers' recovery behaviour (idempotency keys, ListSMS) in
// memory so the same code paths work in development. It never logs a
// destination, subject or body. It is safe for concurrent use.
type Outbox struct {
	logger *slog.Logger

	mu   sync.Mutex
	keys map[string]outboxKeyed  // email idempotency key → first send
	sms  map[string][]outboxSent // to → sends, oldest first
}

type outboxKeyed struct {
	fingerprint [sha256.Size]byte
	receipt     Receipt
}

type outboxSent struct {
	at      time.Time
	body    string
	receipt Receipt
}

// NewOutbox returns an Outbox logging to logger (slog.Default() if nil).
func NewOutbox(logger *slog.Logger) *Outbox {
	if logger == nil {
		logger = slog.Default()
	}
	return &Outbox{
		logger: logger,
		keys:   make(map[string]outboxKeyed),
		sms:    make(map[string][]outboxSent),
	}
}

// SendSMS records m and logs that it would have been sent.
func (o *Outbox) SendSMS(ctx context.Context, m SMS) (Receipt, error) {
	if err := ctx.Err(); err != nil {
		return Receipt{}, classifyTransport(err, "outbox")
	}
	r := Receipt{ProviderID: outboxID()}
	o.mu.Lock()
	o.sms[m.To] = append(o.sms[m.To], outboxSent{at: time.Now(), body: m.Body, receipt: r})
	o.mu.Unlock()
	o.log(ctx, "sms", r, len(m.Body))
	return r, nil
}

// ListSMS lists what SendSMS recorded to `to` at or after since, newest
// first, as Twilio's ListSMS does.
func (o *Outbox) ListSMS(ctx context.Context, to string, since time.Time) ([]SentSMS, error) {
	if err := ctx.Err(); err != nil {
		return nil, classifyTransport(err, "outbox")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []SentSMS
	sent := o.sms[to]
	for i := len(sent) - 1; i >= 0; i-- {
		if !sent[i].at.Before(since) {
			out = append(out, SentSMS{ProviderID: sent[i].receipt.ProviderID, Body: sent[i].body, Created: sent[i].at})
		}
	}
	return out, nil
}

// SendEmail logs that m would have been sent. Like Resend, a repeated
// idempotency key returns the first receipt, and reusing a key for a
// different email is a Permanent error.
func (o *Outbox) SendEmail(ctx context.Context, m Email) (Receipt, error) {
	if err := ctx.Err(); err != nil {
		return Receipt{}, classifyTransport(err, "outbox")
	}
	if m.IdempotencyKey == "" {
		r := Receipt{ProviderID: outboxID()}
		o.log(ctx, "email", r, len(m.Text))
		return r, nil
	}
	fp := sha256.Sum256([]byte(m.To + "\x00" + m.Subject + "\x00" + m.Text))
	o.mu.Lock()
	prev, seen := o.keys[m.IdempotencyKey]
	if !seen {
		prev = outboxKeyed{fingerprint: fp, receipt: Receipt{ProviderID: outboxID()}}
		o.keys[m.IdempotencyKey] = prev
	}
	o.mu.Unlock()
	if seen && prev.fingerprint != fp {
		return Receipt{}, &Error{Kind: Permanent, Code: "invalid_idempotent_request",
			Status: 409, Message: "outbox: idempotency key reused for a different email"}
	}
	if !seen {
		o.log(ctx, "email", prev.receipt, len(m.Text))
	}
	return prev.receipt, nil
}

func (o *Outbox) log(ctx context.Context, channel string, r Receipt, bodyLen int) {
	o.logger.InfoContext(ctx, "dev outbox: message would have been sent",
		slog.String("channel", channel), slog.String("provider_id", r.ProviderID))
	o.logger.DebugContext(ctx, "dev outbox: message details",
		slog.String("channel", channel), slog.String("provider_id", r.ProviderID),
		slog.Int("body_length", bodyLen))
}

// outboxID returns "outbox-" and 16 random hex digits.
func outboxID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "outbox-" + hex.EncodeToString(b[:])
}
