package provider_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/internal/provider"
)

const testSender = "Errand <no-reply@errand.example>"

func newFakeResend(t *testing.T) *fakes.Resend {
	t.Helper()
	f := fakes.NewResend()
	t.Cleanup(f.Close)
	return f
}

func resendFor(f *fakes.Resend) provider.ResendConfig {
	return provider.ResendConfig{APIKey: f.APIKey, From: testSender, BaseURL: f.URL, Timeout: 5 * time.Second}
}

func testMail(key string) provider.Email {
	return provider.Email{To: testEmail, Subject: testSubject, Text: testText, IdempotencyKey: key}
}

func TestResendSendEmailReturnsTheFakesID(t *testing.T) {
	f := newFakeResend(t)
	rs := provider.NewResend(resendFor(f))

	r, err := rs.SendEmail(t.Context(), testMail("job-1"))
	require.NoError(t, err)

	emails := f.Emails()
	require.Len(t, emails, 1)
	require.Equal(t, emails[0].ID, r.ProviderID)
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, r.ProviderID)
	require.Equal(t, []string{testEmail}, emails[0].To)
	require.Equal(t, testSender, emails[0].From)
	require.Equal(t, testSubject, emails[0].Subject)
	require.Equal(t, testText, emails[0].Text)
	require.Equal(t, "job-1", emails[0].IdempotencyKey)
}

func TestResendSameIdempotencyKeySendsOnce(t *testing.T) {
	f := newFakeResend(t)
	rs := provider.NewResend(resendFor(f))

	first, err := rs.SendEmail(t.Context(), testMail("job-7"))
	require.NoError(t, err)
	second, err := rs.SendEmail(t.Context(), testMail("job-7"))
	require.NoError(t, err)

	require.Equal(t, first, second)
	require.Equal(t, 1, f.Count())
	require.Equal(t, 2, f.Requests())
}

func TestResendRetryAfterLostResponseReturnsTheFirstID(t *testing.T) {
	cases := []struct {
		name  string
		fault fakes.Fault
		code  string
	}{
		{"accepted then 500", fakes.Fault{AcceptThenFail: true}, "internal_server_error"},
		{"accepted then hung", fakes.Fault{Hang: true}, "timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeResend(t)
			cfg := resendFor(f)
			cfg.Timeout = 300 * time.Millisecond
			rs := provider.NewResend(cfg)
			f.FailNext(1, tc.fault)

			_, err := rs.SendEmail(t.Context(), testMail("job-9"))
			perr := requireProviderError(t, err, provider.Transient, testEmail, testSubject, testText)
			require.Equal(t, tc.code, perr.Code)

			r, err := rs.SendEmail(t.Context(), testMail("job-9"))
			require.NoError(t, err)
			require.Equal(t, 1, f.Count())
			require.Equal(t, f.Emails()[0].ID, r.ProviderID)
		})
	}
}

func TestResendKeyReusedForDifferentEmailIsPermanent(t *testing.T) {
	f := newFakeResend(t)
	rs := provider.NewResend(resendFor(f))
	_, err := rs.SendEmail(t.Context(), testMail("job-3"))
	require.NoError(t, err)

	other := testMail("job-3")
	other.Text = "a different text"
	_, err = rs.SendEmail(t.Context(), other)

	perr := requireProviderError(t, err, provider.Permanent, testEmail, testSubject, other.Text)
	require.Equal(t, "invalid_idempotent_request", perr.Code)
	require.Equal(t, 409, perr.Status)
	require.Equal(t, 1, f.Count())
}

func TestResendConcurrentRequestWithSameKeyIsTransient(t *testing.T) {
	f := newFakeResend(t)
	rs := provider.NewResend(resendFor(f))
	entered, release := make(chan struct{}), make(chan struct{})
	f.OnAccept(func(fakes.ResendEmail) {
		close(entered)
		<-release
	})
	firstDone := make(chan error, 1)
	go func() {
		_, err := rs.SendEmail(context.Background(), testMail("job-5"))
		firstDone <- err
	}()
	<-entered

	_, err := rs.SendEmail(t.Context(), testMail("job-5"))
	close(release)

	perr := requireProviderError(t, err, provider.Transient, testEmail, testSubject, testText)
	require.Equal(t, "concurrent_idempotent_requests", perr.Code)
	require.Equal(t, 409, perr.Status)
	require.NoError(t, <-firstDone)
	require.Equal(t, 1, f.Count())
}

func TestResendSendEmailClassifiesFaults(t *testing.T) {
	cases := []struct {
		name       string
		fault      fakes.Fault
		kind       provider.Kind
		code       string
		status     int
		retryAfter time.Duration
		message    string
	}{
		{"bad request", fakes.Fault{Status: 400}, provider.Permanent, "validation_error", 400, 0, "invalid"},
		{"unprocessable", fakes.Fault{Status: 422}, provider.Permanent, "validation_error", 422, 0, "invalid"},
		{"not found", fakes.Fault{Status: 404}, provider.Permanent, "not_found", 404, 0, "rejected"},
		{"server error", fakes.Fault{Status: 500}, provider.Transient, "internal_server_error", 500, 0, "server error"},
		{"unavailable html", fakes.Fault{Status: 503, Body: "<html>down</html>"}, provider.Transient, "http_503", 503, 0, "server error"},
		{"rate limited", fakes.Fault{Status: 429, RetryAfter: "7"}, provider.Transient, "rate_limit_exceeded", 429, 7 * time.Second, "rate limited"},
		{"rate limited, reset header only", fakes.Fault{Status: 429}, provider.Transient, "rate_limit_exceeded", 429, time.Second, "rate limited"},
		{"in progress", fakes.Fault{Status: 409}, provider.Transient, "concurrent_idempotent_requests", 409, 0, "in progress"},
		{"key reused", fakes.Fault{Status: 409, Name: "invalid_idempotent_request"}, provider.Permanent, "invalid_idempotent_request", 409, 0, "reused"},
		{"forbidden", fakes.Fault{Status: 403}, provider.Credentials, "invalid_api_key", 403, 0, "provider rejected credentials"},
		{"unauthorized", fakes.Fault{Status: 401}, provider.Credentials, "missing_api_key", 401, 0, "provider rejected credentials"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeResend(t)
			f.FailNext(1, tc.fault)
			rs := provider.NewResend(resendFor(f))

			_, err := rs.SendEmail(t.Context(), testMail(""))

			perr := requireProviderError(t, err, tc.kind, testEmail, testSubject, testText)
			require.Equal(t, tc.code, perr.Code)
			require.Equal(t, tc.status, perr.Status)
			require.Equal(t, tc.retryAfter, perr.RetryAfter)
			require.Contains(t, perr.Message, tc.message)
			require.Zero(t, f.Count())
		})
	}
}

func TestResendInvalidAddressIsPermanentAndNotQuoted(t *testing.T) {
	f := newFakeResend(t)
	rs := provider.NewResend(resendFor(f))
	const bad = "ada.lovelace-at-example.com"

	_, err := rs.SendEmail(t.Context(), provider.Email{To: bad, Subject: testSubject, Text: testText})

	perr := requireProviderError(t, err, provider.Permanent, bad, testSubject, testText)
	require.Equal(t, 422, perr.Status)
	// Resend's message (kept only in the wrapped error) does quote it.
	require.Contains(t, perr.Unwrap().Error(), bad)
}

// Rejected credentials are final for the message, like Twilio's.
func TestResendRejectedCredentialsAreFinal(t *testing.T) {
	cases := []struct {
		name   string
		key    string
		status int
	}{
		{"wrong key", "re_wrong", 403},
		{"missing key", "", 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeResend(t)
			cfg := resendFor(f)
			cfg.APIKey = tc.key
			rs := provider.NewResend(cfg)

			_, err := rs.SendEmail(t.Context(), testMail(""))

			perr := requireProviderError(t, err, provider.Credentials, testEmail, testSubject, testText)
			require.Contains(t, perr.Message, "provider rejected credentials")
			require.Equal(t, tc.status, perr.Status)
			require.Zero(t, f.Count())
		})
	}
}

func TestResendTimeoutIsTransient(t *testing.T) {
	f := newFakeResend(t)
	f.FailNext(1, fakes.Fault{Delay: 5 * time.Second})
	cfg := resendFor(f)
	cfg.Timeout = 200 * time.Millisecond
	rs := provider.NewResend(cfg)

	start := time.Now()
	_, err := rs.SendEmail(t.Context(), testMail("job-2"))

	require.Less(t, time.Since(start), 3*time.Second)
	perr := requireProviderError(t, err, provider.Transient, testEmail, testSubject, testText)
	require.Equal(t, "timeout", perr.Code)
	require.Zero(t, f.Count())
}

func TestResendConnectionRefusedIsTransient(t *testing.T) {
	f := fakes.NewResend()
	cfg := resendFor(f)
	f.Close()
	rs := provider.NewResend(cfg)

	_, err := rs.SendEmail(t.Context(), testMail("job-4"))

	perr := requireProviderError(t, err, provider.Transient, testEmail, testSubject, testText)
	require.Equal(t, "connection_refused", perr.Code)
}

func TestResendBaseURLWithPathPrefix(t *testing.T) {
	f := newFakeResend(t)
	target, err := url.Parse(f.URL)
	require.NoError(t, err)
	proxy := httptest.NewServer(http.StripPrefix("/resend", httputil.NewSingleHostReverseProxy(target)))
	t.Cleanup(proxy.Close)
	cfg := resendFor(f)
	cfg.BaseURL = proxy.URL + "/resend" // no trailing slash on purpose

	r, err := provider.NewResend(cfg).SendEmail(t.Context(), testMail(""))

	require.NoError(t, err)
	require.Equal(t, f.Emails()[0].ID, r.ProviderID)
}

func TestResendBadConfigIsTransient(t *testing.T) {
	f := newFakeResend(t)
	cases := []struct {
		name   string
		mutate func(*provider.ResendConfig)
	}{
		{"base url without scheme", func(c *provider.ResendConfig) { c.BaseURL = "localhost:1234" }},
		{"no sender", func(c *provider.ResendConfig) { c.From = "" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := resendFor(f)
			tc.mutate(&cfg)

			_, err := provider.NewResend(cfg).SendEmail(t.Context(), testMail(""))

			perr := requireProviderError(t, err, provider.Transient, testEmail, testSubject, testText)
			require.Equal(t, "config", perr.Code)
		})
	}
	require.Zero(t, f.Requests())
}
