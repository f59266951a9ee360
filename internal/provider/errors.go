package provider

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/resend/resend-go/v2"
	twclient "github.com/twilio/twilio-go/client"
)

// Kind says what a job should do about a failed provider call.
type Kind int

const (
	// Transient failures may succeed later: retry, honouring RetryAfter.
	// The zero Kind is Transient so an unclassified failure never loses a
	// message.
	Transient Kind = iota
	// Permanent failures will fail the same way every time: give up.
	Permanent
	// OptedOut means the recipient unsubscribed (Twilio 21610): give up and
	// do not message them again on this channel.
	OptedOut
	// Credentials means the provider refused our credentials (401, 403,
	// Twilio 20003): a fault of the configuration, not of the message, and
	// every call fails the same way until an operator fixes it. It is
	// permanent for the message (retrying each message for half an hour
	// against a wrong key helps nobody and hammers the provider), and the
	// job says so loudly.
	Credentials
)

// String returns the kind's name as used in logs and metrics.
func (k Kind) String() string {
	switch k {
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	case OptedOut:
		return "opted_out"
	case Credentials:
		return "credentials"
	default:
		return fmt.Sprintf("kind(%d)", int(k))
	}
}

// Error is a classified provider failure. Jobs decide retry/skip from Kind
// only.
type Error struct {
	Kind Kind
	// Code is the provider's error code ("21610", "validation_error") or,
	// without one, "http_<status>" or a transport code such as "timeout",
	// "canceled", "connection_refused" or "network".
	Code string
	// Status is the HTTP status of the provider's response, 0 if none came.
	Status int
	// RetryAfter is how long the provider asked us to wait, 0 if it did not.
	RetryAfter time.Duration
	// Message is safe for logs: it never contains a phone number, an email
	// address, a subject or a body.
	Message string
	// Err is the underlying SDK or transport error. Its text may contain
	// personal data (providers echo numbers and addresses back), so it is
	// never part of Error() and must not be logged.
	Err error
}

// Error describes the failure without any personal data.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.String())
	b.WriteString(" provider error")
	if e.Code != "" {
		b.WriteString(" ")
		b.WriteString(e.Code)
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, " (status %d)", e.Status)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Unwrap returns the underlying SDK or transport error.
func (e *Error) Unwrap() error { return e.Err }

// Classify turns any error from a provider call into an *Error. It returns
// nil for nil and the *Error itself if err already is or wraps one. SDK
// errors are classified by their provider code and status; anything else
// (network failures, timeouts, context cancellation, unknown errors) is
// Transient, because retrying is always safer than losing a message.
//
// SendSMS, ListSMS and SendEmail already return classified errors, using the
// HTTP status and headers their transport recorded. Classify on a raw SDK
// error sees only what that error carries: Resend's SDK keeps the status of
// a 429 only, so its other errors classify as Transient "unknown".
func Classify(err error) *Error {
	if err == nil {
		return nil
	}
	var perr *Error
	if errors.As(err, &perr) {
		return perr
	}
	var twErr *twclient.TwilioRestError
	if errors.As(err, &twErr) {
		return classifyTwilio(err, nil)
	}
	var twV1 *twclient.RestErrorV1
	if errors.As(err, &twV1) {
		return classifyTwilio(err, nil)
	}
	var rl *resend.RateLimitError
	if errors.As(err, &rl) {
		return classifyResend(err, nil)
	}
	return classifyTransport(err, "provider")
}
