package intake

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/errandhq/errand/internal/fault"
)

// FuzzDecode: whatever a client sends, decoding never panics and either
// yields a request or a fault the API maps to 400, 413, 415 or 422.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"name":"Pat","phone":"(312) 555-0142"}`,
		`{"contact_id":"c1","channel":"sms","body":"hi","send_at":"2026-05-01T15:04:05Z"}`,
		`{"name":5}`, `{"NAME":"x"}`, `{"name":"x"} {}`, `[]`, `null`, `{"name":"\u0000"}`, ``, `{`,
		`{"name":{"nested":[1,2,{"x":null}]}}`, `{"subject":"s","extra":{"a":1}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, decodeAs := range []func(*http.Request) error{
			func(r *http.Request) error { _, err := decode[contactRequest](r); return err },
			func(r *http.Request) error { _, err := decode[messageRequest](r); return err },
			func(r *http.Request) error { _, err := decode[tenantCreateRequest](r); return err },
		} {
			r := httptest.NewRequest("POST", "/", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			r.Body = http.MaxBytesReader(rec, r.Body, 4096)
			err := decodeAs(r)
			if err == nil {
				continue
			}
			f, ok := fault.As(err)
			if !ok {
				t.Fatalf("decode returned a non-fault error %v for %q", err, body)
			}
			switch status(f.Code) {
			case 400, 413, 415, 422:
			default:
				t.Fatalf("decode fault %s maps to %d for %q", f.Code, status(f.Code), body)
			}
		}
	})
}
