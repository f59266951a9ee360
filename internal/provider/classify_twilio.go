package provider

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	twclient "github.com/twilio/twilio-go/client"
)

// classifyTwilio classifies an error from the Twilio SDK. ex holds the
// response the transport saw, if any; without it the status and code come
// from the SDK's error alone.
func classifyTwilio(err error, ex *exchange) *Error {
	var perr *Error
	if errors.As(err, &perr) {
		return perr
	}
	status, retryAfter, _, code := ex.snapshot()
	var twErr *twclient.TwilioRestError
	var twV1 *twclient.RestErrorV1
	switch {
	case errors.As(err, &twErr):
		if twErr.Code != 0 {
			code = strconv.Itoa(twErr.Code)
		}
		if status == 0 {
			status = twErr.Status // errors the SDK makes up without a request
		}
	case errors.As(err, &twV1):
		if twV1.Code != 0 {
			code = strconv.Itoa(twV1.Code)
		}
		if status == 0 {
			status = twV1.HttpStatusCode
		}
	}
	if status < 400 {
		// No error response: the request never completed, or a 2xx body
		// could not be read. Either way the outcome is unknown.
		if status != 0 && !isTransportError(err) {
			return &Error{Kind: Transient, Code: "bad_response", Status: status,
				Message: "twilio: unreadable response", Err: err}
		}
		return classifyTransport(err, "twilio")
	}
	e := &Error{Status: status, Code: code, Err: err}
	if e.Code == "" {
		e.Code = "http_" + strconv.Itoa(status)
	}
	n, _ := strconv.Atoi(code)
	switch {
	case n == 21610:
		e.Kind, e.Message = OptedOut, "twilio: recipient has opted out of sms"
	case n == 20003 || n == 21222 || n == 21224 || status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Kind, e.Message = Credentials, "twilio: provider rejected credentials"
	case status == http.StatusTooManyRequests || n == 20429:
		e.Kind, e.Message = Transient, "twilio: rate limited"
	case status >= 500:
		e.Kind, e.Message = Transient, "twilio: server error"
	case n == 21611:
		e.Kind, e.Message = Transient, "twilio: sender queue is full"
	case status == http.StatusRequestTimeout:
		e.Kind, e.Message = Transient, "twilio: request timed out"
	default:
		e.Kind, e.Message = Permanent, twilioPermanentMessage(n)
	}
	if e.Kind == Transient {
		e.RetryAfter = parseRetryAfter(retryAfter, time.Now())
	}
	return e
}

// twilioPermanentMessage describes a Twilio error code that retrying cannot
// fix. See https://www.twilio.com/docs/api/errors.
func twilioPermanentMessage(code int) string {
	switch code {
	case 21211:
		return "twilio: invalid destination number"
	case 21217:
		return "twilio: destination number does not appear to be valid"
	case 21408:
		return "twilio: sms is not enabled for the destination region"
	case 21606:
		return "twilio: sender number cannot send to this destination"
	case 21612:
		return "twilio: destination is not reachable by sms"
	case 21614:
		return "twilio: destination is not a mobile number"
	case 21602:
		return "twilio: message body is required"
	case 21603, 21659, 21660:
		return "twilio: sender number is missing or not usable"
	case 21617:
		return "twilio: message body is too long"
	case 21604:
		return "twilio: destination number is required"
	default:
		return "twilio: request rejected"
	}
}
