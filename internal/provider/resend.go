package provider

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/resend/resend-go/v2"
)

// ResendConfig configures NewResend.
type ResendConfig struct {
	APIKey string
	// From is the sender of every email, e.g. "Errand <no-reply@example.com>".
	From string
	// BaseURL replaces https://api.resend.com/; "" means the real API.
	BaseURL string
	// Timeout bounds each call; 0 means HTTPClient.Timeout if set, else 10s.
	Timeout time.Duration
	// HTTPClient optionally supplies the transport. Its Timeout is used only
	// as the default for Timeout.
	HTTPClient *http.Client
}

// Resend sends email through Resend's API using the official SDK.
// It is safe for concurrent use.
type Resend struct {
	client    *resend.Client
	from      string
	timeout   time.Duration
	configErr error
}

// NewResend returns a Resend client. A malformed BaseURL or a missing From
// is reported as a Transient *Error (code "config") by every call.
func NewResend(cfg ResendConfig) *Resend {
	hc := &http.Client{Transport: captureTransport{next: baseTransport(cfg.HTTPClient)}}
	r := &Resend{
		client:  resend.NewCustomClient(hc, strings.TrimSpace(cfg.APIKey)),
		from:    cfg.From,
		timeout: callTimeout(cfg.Timeout, cfg.HTTPClient),
	}
	base := cfg.BaseURL
	if base == "" {
		base = "https://api.resend.com/"
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.configErr = &Error{Kind: Transient, Code: "config", Message: "resend: invalid base url", Err: err}
		return r
	}
	// The SDK resolves "emails" against BaseURL: without the trailing slash
	// a path prefix would be replaced instead of extended.
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	r.client.BaseURL = u
	return r
}

// SendEmail asks Resend to send m from the configured sender, passing
// m.IdempotencyKey through. Errors are *Error.
func (r *Resend) SendEmail(ctx context.Context, m Email) (Receipt, error) {
	if r.configErr != nil {
		return Receipt{}, r.configErr
	}
	if r.from == "" {
		return Receipt{}, &Error{Kind: Transient, Code: "config", Message: "resend: no sender configured"}
	}
	ex := &exchange{}
	ctx, cancel := context.WithTimeout(withExchange(ctx, ex), r.timeout)
	defer cancel()

	req := &resend.SendEmailRequest{
		From:    r.from,
		To:      []string{m.To},
		Subject: m.Subject,
		Text:    m.Text,
	}
	// Always a non-nil pointer: the SDK calls a value method on it, which
	// panics on a nil *SendEmailOptions. An empty key sends no header.
	opts := &resend.SendEmailOptions{IdempotencyKey: m.IdempotencyKey}
	sent, err := r.client.Emails.SendWithOptions(ctx, req, opts)
	if err != nil {
		return Receipt{}, classifyResend(err, ex)
	}
	if sent.Id == "" {
		return Receipt{}, &Error{Kind: Transient, Code: "bad_response",
			Message: "resend: accepted response has no email id"}
	}
	return Receipt{ProviderID: sent.Id}, nil
}
