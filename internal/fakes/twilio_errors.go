package fakes

import (
	"fmt"
	"net/http"
	"strconv"
)

// twilioErrorJSON is Twilio's error body, decoded by the SDK into
// client.TwilioRestError.
type twilioErrorJSON struct {
	Code     int    `json:"code,omitempty"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info,omitempty"`
	Status   int    `json:"status"`
}

func writeTwilioFault(w http.ResponseWriter, f Fault, to string) {
	status := f.Status
	if status == 0 {
		status = http.StatusInternalServerError
		if f.Code != 0 {
			status = http.StatusBadRequest
		}
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	if f.Body != "" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(f.Body))
		return
	}
	code := f.Code
	if code == 0 {
		code = twilioCodeForStatus(status)
	}
	writeTwilioError(w, status, code, "", to)
}

// writeTwilioError writes Twilio's JSON error. Like the real API, some
// messages quote the destination number.
func writeTwilioError(w http.ResponseWriter, status, code int, message, to string) {
	if message == "" {
		message = twilioErrorMessage(code, status, to)
	}
	body := twilioErrorJSON{Code: code, Message: message, Status: status}
	if code != 0 {
		body.MoreInfo = "https://www.twilio.com/docs/errors/" + strconv.Itoa(code)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
	}
	writeJSON(w, status, body)
}

func twilioCodeForStatus(status int) int {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return 20003
	case status == http.StatusNotFound:
		return 20404
	case status == http.StatusTooManyRequests:
		return 20429
	case status == http.StatusServiceUnavailable:
		return 20503
	case status >= 500:
		return 20500
	default:
		return 0
	}
}

func twilioErrorMessage(code, status int, to string) string {
	switch code {
	case 20003:
		return "Authenticate"
	case 20429:
		return "Too Many Requests"
	case 21211:
		return fmt.Sprintf("The 'To' number %s is not a valid phone number.", to)
	case 21217:
		return fmt.Sprintf("Phone number %s does not appear to be valid", to)
	case 21408:
		return fmt.Sprintf("Permission to send an SMS has not been enabled for the region indicated by the 'To' number: %s", to)
	case 21602:
		return "Message body is required."
	case 21603:
		return "A 'From' phone number is required."
	case 21604:
		return "A 'To' phone number is required."
	case 21606:
		return "The 'From' phone number provided is not a valid message-capable Twilio phone number for this destination."
	case 21610:
		return "Attempt to send to unsubscribed recipient"
	case 21611:
		return "This 'From' number has exceeded the maximum number of queued messages"
	case 21612:
		return fmt.Sprintf("The 'To' phone number: %s, is not currently reachable using the 'From' phone number via SMS.", to)
	case 21614:
		return fmt.Sprintf("'To' number %s is not a valid mobile number", to)
	case 21617:
		return "The concatenated message body exceeds the 1600 character limit."
	default:
		return http.StatusText(status)
	}
}
