// Package fault names the ways a request can be refused. Handlers return
// these; the intake maps each code to an HTTP status in exactly one place.
// A fault's message is shown to API callers: it must never carry another
// tenant's data or a secret.
package fault

import (
	"errors"
	"fmt"
	"sort"
)

// Code classifies a fault.
type Code string

// The codes, each with one HTTP status in the intake.
const (
	Malformed        Code = "malformed_request"      // 400
	Unauthenticated  Code = "unauthenticated"        // 401
	Forbidden        Code = "forbidden"              // 403
	TenantCancelled  Code = "tenant_cancelled"       // 403
	NotFound         Code = "not_found"              // 404
	MethodNotAllowed Code = "method_not_allowed"     // 405
	Conflict         Code = "conflict"               // 409
	TooLarge         Code = "payload_too_large"      // 413
	UnsupportedType  Code = "unsupported_media_type" // 415
	Invalid          Code = "invalid_fields"         // 422
	RateLimited      Code = "rate_limited"           // 429
	Unavailable      Code = "unavailable"            // 503
)

// Error is a refusal with a code, a message for people and optional
// details (for Invalid: field name → problem).
type Error struct {
	Code       Code
	Message    string
	Details    any
	RetryAfter int // seconds, for RateLimited and Unavailable
	// Subcode overrides Code in the response body when a more specific
	// snake_case name helps callers (e.g. "idempotency_key_reused").
	Subcode string
}

// Error is the code and message, and for invalid fields each field's
// problem (field problems never repeat the input, so this is safe to log).
func (e *Error) Error() string {
	s := string(e.Code) + ": " + e.Message
	if fields, ok := e.Details.(map[string]string); ok && len(fields) > 0 {
		names := make([]string, 0, len(fields))
		for k := range fields {
			names = append(names, k)
		}
		sort.Strings(names)
		for i, k := range names {
			sep := "; "
			if i == 0 {
				sep = " ("
			}
			s += sep + k + ": " + fields[k]
		}
		s += ")"
	}
	return s
}

// New returns a fault with a formatted message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Fields returns an Invalid fault naming each bad field.
func Fields(problems map[string]string) *Error {
	return &Error{Code: Invalid, Message: "some fields are invalid", Details: problems}
}

// As extracts a fault from err's chain.
func As(err error) (*Error, bool) {
	var f *Error
	ok := errors.As(err, &f)
	return f, ok
}
