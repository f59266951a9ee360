package provider

import (
	"context"
	"errors"
	"net"
	"syscall"
)

// classifyTransport classifies failures without a provider response. All are
// Transient: the request may not have arrived, or may have been accepted
// with the answer lost (jobs recover the latter with ListSMS or an
// idempotency key).
func classifyTransport(err error, provider string) *Error {
	e := &Error{Kind: Transient, Err: err}
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		e.Code, e.Message = "canceled", provider+": request canceled"
	case errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		e.Code, e.Message = "timeout", provider+": request timed out"
	case errors.Is(err, syscall.ECONNREFUSED):
		e.Code, e.Message = "connection_refused", provider+": connection refused"
	case isTransportError(err):
		e.Code, e.Message = "network", provider+": network error"
	default:
		e.Code, e.Message = "unknown", provider+": call failed"
	}
	return e
}

// isTransportError reports whether err came from the HTTP transport rather
// than from decoding a response.
func isTransportError(err error) bool {
	var netErr net.Error // *url.Error and *net.OpError both implement it
	return errors.As(err, &netErr) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
