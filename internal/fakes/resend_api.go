package fakes

import (
	"encoding/json"
	"io"
	"net/http"
	"net/mail"
	"strings"
	"time"
)

// maxResendBody bounds a send request's body.
const maxResendBody = 1 << 20

// resendSendJSON is the request body of POST /emails. Resend accepts "to"
// as a string or a list of strings.
type resendSendJSON struct {
	From    string          `json:"from"`
	To      json.RawMessage `json:"to"`
	Subject string          `json:"subject"`
	Text    string          `json:"text"`
	HTML    string          `json:"html"`
}

// resendErrorJSON is Resend's error body.
type resendErrorJSON struct {
	StatusCode int    `json:"statusCode"`
	Name       string `json:"name"`
	Message    string `json:"message"`
}

func (f *Resend) sendEmail(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	auth := r.Header.Get("Authorization")
	token, hasBearer := strings.CutPrefix(auth, "Bearer ")
	switch {
	case !hasBearer || token == "":
		writeResendError(w, http.StatusUnauthorized, "missing_api_key",
			"Missing API key in the authorization header. Include the following header in the request: Authorization: Bearer YOUR_API_KEY")
		return
	case token != f.APIKey:
		writeResendError(w, http.StatusForbidden, "invalid_api_key", "API key is invalid")
		return
	}
	payload, err := io.ReadAll(io.LimitReader(r.Body, maxResendBody))
	if err != nil {
		return // the client went away
	}

	key := r.Header.Get("Idempotency-Key")
	if len(key) > maxIdempotencyKey {
		writeResendError(w, http.StatusBadRequest, "invalid_idempotency_key",
			"The key must be between 1-256 chars.")
		return
	}
	if key != "" {
		outcome, id := f.beginIdempotent(key, payload)
		switch outcome {
		case idempotencyReplay:
			writeJSON(w, http.StatusOK, map[string]string{"id": id})
			return
		case idempotencyInProgress:
			writeResendError(w, http.StatusConflict, "concurrent_idempotent_requests",
				"Same idempotency key used while original request is still in progress. Try the request again later.")
			return
		case idempotencyMismatch:
			writeResendError(w, http.StatusConflict, "invalid_idempotent_request",
				"Same idempotency key used with a different request payload. Change your idempotency key or payload.")
			return
		}
	}
	accepted := false
	defer func() {
		if key != "" && !accepted {
			f.abortIdempotent(key)
		}
	}()

	fault, faulted := f.faults.next()
	if faulted && (fault.Delay > 0 || fault.Hold != nil) {
		pause(r.Context(), f.closing, fault.Delay, fault.Hold)
	}
	if faulted && fault.fails() && !fault.AcceptThenFail && !fault.Hang {
		writeResendFault(w, fault)
		return
	}
	email, status, name, msg := parseResendEmail(payload)
	if status != 0 {
		writeResendError(w, status, name, msg)
		return
	}
	email.ID = newUUID()
	email.IdempotencyKey = key
	email.Created = time.Now().UTC()
	f.accept(email)
	accepted = true
	if key != "" {
		f.completeIdempotent(key, email.ID)
	}
	switch {
	case faulted && fault.Hang:
		hang(r.Context(), f.closing)
	case faulted && fault.AcceptThenFail:
		writeResendFault(w, fault)
	default:
		writeJSON(w, http.StatusOK, map[string]string{"id": email.ID})
	}
}

// parseResendEmail validates a send request like Resend does; on failure it
// returns the error status, name and message. Like the real API, address
// errors quote the address.
func parseResendEmail(payload []byte) (ResendEmail, int, string, string) {
	var in resendSendJSON
	if err := json.Unmarshal(payload, &in); err != nil {
		return ResendEmail{}, http.StatusUnprocessableEntity, "validation_error", "Invalid JSON body."
	}
	var to []string
	if len(in.To) > 0 {
		var one string
		if json.Unmarshal(in.To, &one) == nil {
			to = []string{one}
		} else if json.Unmarshal(in.To, &to) != nil {
			return ResendEmail{}, http.StatusUnprocessableEntity, "validation_error", "Invalid `to` field."
		}
	}
	switch {
	case in.From == "":
		return ResendEmail{}, http.StatusUnprocessableEntity, "missing_required_field", "Missing `from` field."
	case len(to) == 0:
		return ResendEmail{}, http.StatusUnprocessableEntity, "missing_required_field", "Missing `to` field."
	case len(to) > 50:
		return ResendEmail{}, http.StatusUnprocessableEntity, "validation_error", "Too many recipients in `to` field (max 50)."
	case in.Subject == "":
		return ResendEmail{}, http.StatusUnprocessableEntity, "missing_required_field", "Missing `subject` field."
	case in.Text == "" && in.HTML == "":
		return ResendEmail{}, http.StatusUnprocessableEntity, "missing_required_field", "Missing `html` or `text` field."
	}
	if _, err := mail.ParseAddress(in.From); err != nil {
		return ResendEmail{}, http.StatusUnprocessableEntity, "validation_error",
			"Invalid `from` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format."
	}
	for _, addr := range to {
		if _, err := mail.ParseAddress(addr); err != nil {
			return ResendEmail{}, http.StatusUnprocessableEntity, "validation_error",
				"Invalid `to` field: " + addr + ". The email address needs to follow the `email@example.com` or `Name <email@example.com>` format."
		}
	}
	return ResendEmail{From: in.From, To: to, Subject: in.Subject, Text: in.Text, HTML: in.HTML}, 0, "", ""
}

func (f *Resend) notFound(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	writeResendError(w, http.StatusNotFound, "not_found", "The requested endpoint does not exist.")
}

func writeResendFault(w http.ResponseWriter, f Fault) {
	status := f.Status
	if status == 0 {
		status = http.StatusInternalServerError
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	if status == http.StatusTooManyRequests {
		w.Header().Set("Ratelimit-Limit", "2")
		w.Header().Set("Ratelimit-Remaining", "0")
		w.Header().Set("Ratelimit-Reset", firstNonEmpty(f.RetryAfter, "1"))
	}
	if f.Body != "" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(f.Body))
		return
	}
	name := f.Name
	if name == "" {
		name = resendNameForStatus(status)
	}
	writeResendError(w, status, name, http.StatusText(status))
}

func resendNameForStatus(status int) string {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return "validation_error"
	case http.StatusUnauthorized:
		return "missing_api_key"
	case http.StatusForbidden:
		return "invalid_api_key"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusConflict:
		return "concurrent_idempotent_requests"
	case http.StatusTooManyRequests:
		return "rate_limit_exceeded"
	default:
		return "internal_server_error"
	}
}

func writeResendError(w http.ResponseWriter, status int, name, message string) {
	writeJSON(w, status, resendErrorJSON{StatusCode: status, Name: name, Message: message})
}
