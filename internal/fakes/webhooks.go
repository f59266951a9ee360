package fakes

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Webhooks as the providers send them, signed the way they sign them. The
// signatures are computed here from the providers' documentation, not with
// the SDKs' validators, so a test that sends them checks those validators
// against an independent implementation.

// SignTwilio is the X-Twilio-Signature of a form POSTed to fullURL:
// base64(HMAC-SHA1(auth token, URL + each parameter name and value, sorted
// by name)).
func SignTwilio(authToken, fullURL string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		b.WriteString(k)
		b.WriteString(form.Get(k))
	}
	m := hmac.New(sha1.New, []byte(authToken))
	m.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// PostTwilioForm POSTs form to target signed with authToken, and returns
// the response status.
func PostTwilioForm(target, authToken string, form url.Values) (int, error) {
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", SignTwilio(authToken, target, form))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Report sends the delivery status callback of an accepted message to the
// StatusCallback URL it was sent with, as Twilio does: status is queued,
// sent, delivered, undelivered or failed; errorCode 0 means none. It
// returns the webhook's HTTP status.
func (f *Twilio) Report(sid, status string, errorCode int) (int, error) {
	var msg *TwilioMessage
	for _, m := range f.Messages() {
		if m.SID == sid {
			msg = &m
			break
		}
	}
	if msg == nil || msg.StatusCallback == "" {
		return 0, fmt.Errorf("fake twilio: no message %s with a status callback", sid)
	}
	form := url.Values{"MessageSid": {sid}, "SmsSid": {sid}, "AccountSid": {f.AccountSID}, "From": {msg.From},
		"To": {msg.To}, "MessageStatus": {status}, "SmsStatus": {status}, "ApiVersion": {twilioAPIVersion}}
	if errorCode != 0 {
		form.Set("ErrorCode", strconv.Itoa(errorCode))
	}
	return PostTwilioForm(msg.StatusCallback, f.AuthToken, form)
}

// Inbound sends target the webhook of a text from `from` to `to` saying
// body, as Twilio does for a message to one of our numbers. It returns the
// webhook's HTTP status.
func (f *Twilio) Inbound(target, from, to, body string) (int, error) {
	sid := "SM" + randomHex(16)
	form := url.Values{"MessageSid": {sid}, "SmsSid": {sid}, "AccountSid": {f.AccountSID}, "From": {from},
		"To": {to}, "Body": {body}, "NumMedia": {"0"}, "ApiVersion": {twilioAPIVersion}}
	return PostTwilioForm(target, f.AuthToken, form)
}

// NewSvixSecret returns a fresh webhook signing secret in Svix's format,
// "whsec_" and base64 of 24 random bytes (what Resend hands out).
func NewSvixSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// SignSvix returns the headers Svix sends with payload: svix-id,
// svix-timestamp (Unix seconds) and svix-signature, "v1," and
// base64(HMAC-SHA256(secret, id.timestamp.payload)).
func SignSvix(secret, id string, at time.Time, payload []byte) http.Header {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	ts := strconv.FormatInt(at.Unix(), 10)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "."))
	m.Write(payload)
	h := http.Header{}
	h.Set("svix-id", id)
	h.Set("svix-timestamp", ts)
	h.Set("svix-signature", "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	return h
}

// ResendEvent is the body of a Resend webhook event about one email.
func ResendEvent(eventType, emailID, to string, at time.Time) []byte {
	b, _ := json.Marshal(map[string]any{
		"type":       eventType,
		"created_at": at.UTC().Format(time.RFC3339Nano),
		"data": map[string]any{
			"email_id":   emailID,
			"created_at": at.UTC().Format(time.RFC3339Nano),
			"from":       "Errand <noreply@example.com>",
			"to":         []string{to},
			"subject":    "(subject)",
		},
	})
	return b
}

// PostSvix POSTs payload to target with the given headers and returns the
// response status.
func PostSvix(target string, headers http.Header, payload []byte) (int, error) {
	req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(payload))
	if err != nil {
		return 0, err
	}
	req.Header = headers.Clone()
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// NewSvixID returns a delivery ID in Svix's format.
func NewSvixID() string { return "msg_" + randomHex(12) }
