package provider_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/internal/provider"
)

func newFakeTwilio(t *testing.T) *fakes.Twilio {
	t.Helper()
	f := fakes.NewTwilio()
	t.Cleanup(f.Close)
	return f
}

func twilioFor(f *fakes.Twilio) provider.TwilioConfig {
	return provider.TwilioConfig{
		AccountSID: f.AccountSID,
		AuthToken:  f.AuthToken,
		From:       testFrom,
		BaseURL:    f.URL,
		Timeout:    5 * time.Second,
	}
}

func TestTwilioSendSMSReturnsTheFakesSID(t *testing.T) {
	f := newFakeTwilio(t)
	tw := provider.NewTwilio(twilioFor(f))

	r, err := tw.SendSMS(t.Context(), provider.SMS{To: testPhone, Body: testBody, StatusCallback: "https://errand.example/cb/1"})
	require.NoError(t, err)

	msgs := f.Messages()
	require.Len(t, msgs, 1)
	require.Equal(t, msgs[0].SID, r.ProviderID)
	require.Regexp(t, `^SM[0-9a-f]{32}$`, r.ProviderID)
	require.Equal(t, testPhone, msgs[0].To)
	require.Equal(t, testFrom, msgs[0].From)
	require.Equal(t, testBody, msgs[0].Body)
	require.Equal(t, "https://errand.example/cb/1", msgs[0].StatusCallback)
}

func TestTwilioSendSMSClassifiesFaults(t *testing.T) {
	cases := []struct {
		name         string
		fault        fakes.Fault
		kind         provider.Kind
		code         string
		status       int
		retryAfter   time.Duration
		message      string
		wantRecorded int
	}{
		{"server error", fakes.Fault{Status: 500}, provider.Transient, "20500", 500, 0, "server error", 0},
		{"bad gateway html", fakes.Fault{Status: 502, Body: "<html>502 Bad Gateway</html>"}, provider.Transient, "http_502", 502, 0, "server error", 0},
		{"unavailable with retry-after", fakes.Fault{Status: 503, RetryAfter: "3"}, provider.Transient, "20503", 503, 3 * time.Second, "server error", 0},
		{"rate limited", fakes.Fault{Status: 429, RetryAfter: "7"}, provider.Transient, "20429", 429, 7 * time.Second, "rate limited", 0},
		{"forbidden", fakes.Fault{Status: 403}, provider.Credentials, "20003", 403, 0, "provider rejected credentials", 0},
		{"unauthorized", fakes.Fault{Status: 401}, provider.Credentials, "20003", 401, 0, "provider rejected credentials", 0},
		{"unauthorized with retry-after", fakes.Fault{Status: 401, RetryAfter: "30"}, provider.Credentials, "20003", 401, 0, "provider rejected credentials", 0},
		{"opted out", fakes.Fault{Code: 21610}, provider.OptedOut, "21610", 400, 0, "opted out", 0},
		{"invalid number", fakes.Fault{Code: 21211}, provider.Permanent, "21211", 400, 0, "invalid destination number", 0},
		{"not mobile", fakes.Fault{Code: 21614}, provider.Permanent, "21614", 400, 0, "not a mobile number", 0},
		{"unreachable", fakes.Fault{Code: 21612}, provider.Permanent, "21612", 400, 0, "not reachable", 0},
		{"region disabled", fakes.Fault{Code: 21408}, provider.Permanent, "21408", 400, 0, "region", 0},
		{"sender cannot reach", fakes.Fault{Code: 21606}, provider.Permanent, "21606", 400, 0, "sender number", 0},
		{"invalid looking number", fakes.Fault{Code: 21217}, provider.Permanent, "21217", 400, 0, "does not appear to be valid", 0},
		{"other 4xx", fakes.Fault{Status: 404}, provider.Permanent, "20404", 404, 0, "request rejected", 0},
		{"sender queue full", fakes.Fault{Code: 21611}, provider.Transient, "21611", 400, 0, "queue", 0},
		{"lost response", fakes.Fault{AcceptThenFail: true}, provider.Transient, "20500", 500, 0, "server error", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeTwilio(t)
			f.FailNext(1, tc.fault)
			tw := provider.NewTwilio(twilioFor(f))

			_, err := tw.SendSMS(t.Context(), provider.SMS{To: testPhone, Body: testBody})

			perr := requireProviderError(t, err, tc.kind, testPhone, testFrom, testBody)
			require.Equal(t, tc.code, perr.Code)
			require.Equal(t, tc.status, perr.Status)
			require.Equal(t, tc.retryAfter, perr.RetryAfter)
			require.Contains(t, perr.Message, tc.message)
			require.Equal(t, tc.wantRecorded, f.Count())
		})
	}
}

func TestTwilioErrorsNeverQuoteTheNumberTwilioEchoes(t *testing.T) {
	f := newFakeTwilio(t)
	tw := provider.NewTwilio(twilioFor(f))
	const badNumber = "+0123"

	_, err := tw.SendSMS(t.Context(), provider.SMS{To: badNumber, Body: testBody})

	perr := requireProviderError(t, err, provider.Permanent, badNumber, testBody)
	require.Equal(t, "21211", perr.Code)
	// The wrapped SDK error does quote it, so the check above is meaningful.
	require.Contains(t, perr.Unwrap().Error(), badNumber)
}

func TestTwilioOptedOutRecipient(t *testing.T) {
	f := newFakeTwilio(t)
	f.OptOut(testPhone)
	tw := provider.NewTwilio(twilioFor(f))

	_, err := tw.SendSMS(t.Context(), provider.SMS{To: testPhone, Body: testBody})

	perr := requireProviderError(t, err, provider.OptedOut, testPhone, testBody)
	require.Equal(t, "21610", perr.Code)
	require.Zero(t, f.Count())
}

// Rejected credentials are a configuration fault every call shares: final
// for the message (the job fails it at once and says so loudly), never a
// retry.
func TestTwilioRejectedCredentialsAreFinal(t *testing.T) {
	cases := []struct {
		name         string
		token        string
		wantStatus   int
		wantRequests int
	}{
		{"wrong token", "0123456789abcdef0123456789abcdef", 401, 1},
		// The SDK refuses non-alphanumeric credentials without a request.
		{"malformed token", "not-a-token!", 400, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeTwilio(t)
			cfg := twilioFor(f)
			cfg.AuthToken = tc.token
			tw := provider.NewTwilio(cfg)

			_, err := tw.SendSMS(t.Context(), provider.SMS{To: testPhone, Body: testBody})

			perr := requireProviderError(t, err, provider.Credentials, testPhone, testBody, tc.token)
			require.Contains(t, perr.Message, "provider rejected credentials")
			require.Equal(t, tc.wantStatus, perr.Status)
			require.Equal(t, tc.wantRequests, f.Requests())
			require.Zero(t, f.Count())
		})
	}
}

func TestTwilioTimeoutsAreTransient(t *testing.T) {
	cases := []struct {
		name         string
		fault        fakes.Fault
		timeout      time.Duration
		ctxTimeout   time.Duration
		wantRecorded int
	}{
		{"hang beyond client timeout", fakes.Fault{Hang: true}, 200 * time.Millisecond, 0, 1},
		{"delay beyond client timeout", fakes.Fault{Delay: 5 * time.Second}, 200 * time.Millisecond, 0, 0},
		{"hang beyond caller deadline", fakes.Fault{Hang: true}, 10 * time.Second, 200 * time.Millisecond, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeTwilio(t)
			f.FailNext(1, tc.fault)
			cfg := twilioFor(f)
			cfg.Timeout = tc.timeout
			tw := provider.NewTwilio(cfg)
			ctx := t.Context()
			if tc.ctxTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctxTimeout)
				defer cancel()
			}

			start := time.Now()
			_, err := tw.SendSMS(ctx, provider.SMS{To: testPhone, Body: testBody})

			require.Less(t, time.Since(start), 3*time.Second)
			perr := requireProviderError(t, err, provider.Transient, testPhone, testBody)
			require.Equal(t, "timeout", perr.Code)
			require.True(t, errors.Is(err, context.DeadlineExceeded), "%v", perr.Unwrap())
			require.Equal(t, tc.wantRecorded, f.Count())
		})
	}
}

func TestTwilioCanceledContextIsTransient(t *testing.T) {
	f := newFakeTwilio(t)
	tw := provider.NewTwilio(twilioFor(f))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	_, err := tw.SendSMS(ctx, provider.SMS{To: testPhone, Body: testBody})

	perr := requireProviderError(t, err, provider.Transient, testPhone, testBody)
	require.Equal(t, "canceled", perr.Code)
	require.Zero(t, f.Requests())
}

func TestTwilioConnectionRefusedIsTransient(t *testing.T) {
	f := fakes.NewTwilio()
	cfg := twilioFor(f)
	f.Close()
	tw := provider.NewTwilio(cfg)

	_, err := tw.SendSMS(t.Context(), provider.SMS{To: testPhone, Body: testBody})

	perr := requireProviderError(t, err, provider.Transient, testPhone, testBody)
	require.Equal(t, "connection_refused", perr.Code)
	require.Zero(t, perr.Status)
}

func TestTwilioListSMSFindsALostAcceptance(t *testing.T) {
	f := newFakeTwilio(t)
	tw := provider.NewTwilio(twilioFor(f))
	since := time.Now() // sub-second; Twilio's date_created is whole seconds
	f.FailNext(1, fakes.Fault{AcceptThenFail: true})

	_, err := tw.SendSMS(t.Context(), provider.SMS{To: testPhone, Body: testBody})
	requireProviderError(t, err, provider.Transient)
	require.Equal(t, 1, f.Count())

	sent, err := tw.ListSMS(t.Context(), testPhone, since)
	require.NoError(t, err)
	require.Len(t, sent, 1)
	require.Equal(t, f.Messages()[0].SID, sent[0].ProviderID)
	require.Equal(t, testBody, sent[0].Body)
	require.Equal(t, f.Messages()[0].Created.Truncate(time.Second), sent[0].Created.UTC())

	sent, err = tw.ListSMS(t.Context(), "+15005550009", since)
	require.NoError(t, err)
	require.Empty(t, sent, "different recipient")

	sent, err = tw.ListSMS(t.Context(), testPhone, time.Now().Add(2*time.Second))
	require.NoError(t, err)
	require.Empty(t, sent, "accepted before since")
}

// Twilio lists newest first; a body Twilio rewrote (Smart Encoding, an
// opt-out footer) is listed as Twilio stored it, and MatchSMS still finds it.
func TestTwilioListSMSShowsRewrittenBodies(t *testing.T) {
	f := newFakeTwilio(t)
	f.Rewrite(func(b string) string {
		return strings.NewReplacer("’", "'", "—", "-").Replace(b) + "\nReply STOP to unsubscribe"
	})
	tw := provider.NewTwilio(twilioFor(f))
	since := time.Now()
	var want provider.Receipt
	ours := "Pat’s visit — Tuesday at 9:00, tech Sam"
	for i, body := range []string{"first", ours, "third"} {
		r, err := tw.SendSMS(t.Context(), provider.SMS{To: testPhone, Body: body})
		require.NoError(t, err)
		if i == 1 {
			want = r
		}
	}

	sent, err := tw.ListSMS(t.Context(), testPhone, since)
	require.NoError(t, err)
	require.Len(t, sent, 3)
	require.True(t, strings.HasPrefix(sent[0].Body, "third"), "newest first")
	got, found := provider.MatchSMS(sent, ours)
	require.True(t, found)
	require.Equal(t, want.ProviderID, got.ProviderID)
}

func TestTwilioListSMSErrorsAreClassified(t *testing.T) {
	f := newFakeTwilio(t)
	cfg := twilioFor(f)
	cfg.AuthToken = "0123456789abcdef0123456789abcdef"
	tw := provider.NewTwilio(cfg)

	sent, err := tw.ListSMS(t.Context(), testPhone, time.Now())

	require.Empty(t, sent)
	perr := requireProviderError(t, err, provider.Credentials, testPhone, testBody)
	require.Contains(t, perr.Message, "provider rejected credentials")
}

func TestTwilioBaseURLWithPathPrefixAndEdgeEnvironment(t *testing.T) {
	// The SDK would rewrite api.twilio.com to api.sydney.au1.twilio.com.
	t.Setenv("TWILIO_EDGE", "sydney")
	t.Setenv("TWILIO_REGION", "au1")
	f := newFakeTwilio(t)
	target, err := url.Parse(f.URL)
	require.NoError(t, err)
	proxy := httptest.NewServer(http.StripPrefix("/twilio", httputil.NewSingleHostReverseProxy(target)))
	t.Cleanup(proxy.Close)
	cfg := twilioFor(f)
	cfg.BaseURL = proxy.URL + "/twilio/"
	tw := provider.NewTwilio(cfg)

	r, err := tw.SendSMS(t.Context(), provider.SMS{To: testPhone, Body: testBody})
	require.NoError(t, err)
	require.Equal(t, f.Messages()[0].SID, r.ProviderID)

	sent, err := tw.ListSMS(t.Context(), testPhone, time.Now().Add(-time.Minute))
	require.NoError(t, err)
	require.Len(t, sent, 1)
	require.Equal(t, r.ProviderID, sent[0].ProviderID)
}

func TestTwilioBadConfigIsTransient(t *testing.T) {
	f := newFakeTwilio(t)
	cases := []struct {
		name   string
		mutate func(*provider.TwilioConfig)
	}{
		{"base url without scheme", func(c *provider.TwilioConfig) { c.BaseURL = "127.0.0.1:8080" }},
		{"no sender", func(c *provider.TwilioConfig) { c.From = "" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := twilioFor(f)
			tc.mutate(&cfg)

			_, err := provider.NewTwilio(cfg).SendSMS(t.Context(), provider.SMS{To: testPhone, Body: testBody})

			perr := requireProviderError(t, err, provider.Transient, testPhone, testBody)
			require.Equal(t, "config", perr.Code)
		})
	}
	require.Zero(t, f.Requests())
}
