package provider

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/resend/resend-go/v2"
)

// classifyResend classifies an error from the Resend SDK, which keeps the
// status code only for 429; ex supplies it for everything else.
func classifyResend(err error, ex *exchange) *Error {
	var perr *Error
	if errors.As(err, &perr) {
		return perr
	}
	status, retryAfter, rateReset, code := ex.snapshot()
	var rl *resend.RateLimitError
	if errors.As(err, &rl) {
		if status == 0 {
			status = http.StatusTooManyRequests
		}
		if retryAfter == "" {
			retryAfter = rl.RetryAfter
		}
		if rateReset == "" {
			rateReset = rl.Reset
		}
	}
	if status < 400 {
		if status != 0 && !isTransportError(err) {
			return &Error{Kind: Transient, Code: "bad_response", Status: status,
				Message: "resend: unreadable response", Err: err}
		}
		return classifyTransport(err, "resend")
	}
	e := &Error{Status: status, Code: code, Err: err}
	if e.Code == "" {
		e.Code = "http_" + strconv.Itoa(status)
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Kind, e.Message = Credentials, "resend: provider rejected credentials"
	case status == http.StatusTooManyRequests:
		e.Kind, e.Message = Transient, "resend: rate limited"
		if retryAfter == "" {
			retryAfter = rateReset
		}
	case status >= 500:
		e.Kind, e.Message = Transient, "resend: server error"
	case status == http.StatusConflict && code == "invalid_idempotent_request":
		e.Kind, e.Message = Permanent, "resend: idempotency key reused for a different email"
	case status == http.StatusConflict:
		e.Kind, e.Message = Transient, "resend: request with this idempotency key still in progress"
	case status == http.StatusRequestTimeout:
		e.Kind, e.Message = Transient, "resend: request timed out"
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		e.Kind, e.Message = Permanent, "resend: email rejected as invalid"
	default:
		e.Kind, e.Message = Permanent, "resend: request rejected"
	}
	if e.Kind == Transient {
		e.RetryAfter = parseRetryAfter(retryAfter, time.Now())
	}
	return e
}
