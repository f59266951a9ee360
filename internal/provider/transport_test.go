package provider

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// roundTripFunc adapts a function to http.RoundTripper.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestRewriteTransport(t *testing.T) {
	cases := []struct {
		name string
		base string
		in   string
		want string
	}{
		{"host only", "http://127.0.0.1:9000", "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?To=%2B1",
			"http://127.0.0.1:9000/2010-04-01/Accounts/AC1/Messages.json?To=%2B1"},
		{"path prefix", "https://gw.example/twilio/", "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
			"https://gw.example/twilio/2010-04-01/Accounts/AC1/Messages.json"},
		{"edge host from environment", "http://fake:1", "https://api.sydney.au1.twilio.com/2010-04-01/x.json",
			"http://fake:1/2010-04-01/x.json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got *http.Request
			rt, err := newRewriteTransport(tc.base, roundTripFunc(func(r *http.Request) (*http.Response, error) {
				got = r
				return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
			}))
			require.NoError(t, err)
			req, err := http.NewRequest(http.MethodGet, tc.in, nil)
			require.NoError(t, err)

			_, err = rt.RoundTrip(req)

			require.NoError(t, err)
			require.Equal(t, tc.want, got.URL.String())
			require.Equal(t, tc.in, req.URL.String(), "the caller's request must not be modified")
		})
	}
}

func TestNewRewriteTransportRejectsRelativeURLs(t *testing.T) {
	for _, base := range []string{"127.0.0.1:8080", "/twilio", "ftp://x", "http://"} {
		_, err := newRewriteTransport(base, http.DefaultTransport)
		require.Error(t, err, base)
	}
}

func TestCaptureTransportRecordsErrorResponses(t *testing.T) {
	const body = `{"statusCode":409,"name":"concurrent_idempotent_requests","message":"x"}`
	closed := false
	rt := captureTransport{next: roundTripFunc(func(*http.Request) (*http.Response, error) {
		h := http.Header{}
		h.Set("Retry-After", "4")
		return &http.Response{StatusCode: 409, Header: h, Body: closeRecorder{strings.NewReader(body), &closed}}, nil
	})}
	ex := &exchange{}
	req, err := http.NewRequestWithContext(withExchange(t.Context(), ex), http.MethodPost, "http://x/emails", nil)
	require.NoError(t, err)

	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)

	status, retryAfter, _, code := ex.snapshot()
	require.Equal(t, 409, status)
	require.Equal(t, "4", retryAfter)
	require.Equal(t, "concurrent_idempotent_requests", code)
	require.True(t, closed, "the original body is closed so the connection can be reused")
	rest, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, body, string(rest), "the SDK still gets the body")
}

func TestErrorCodeFromBody(t *testing.T) {
	cases := []struct{ body, want string }{
		{`{"code": 21610, "message": "x", "status": 400}`, "21610"},
		{`{"statusCode": 422, "name": "validation_error"}`, "validation_error"},
		{`{"name": "Invalid <ada@example.com>"}`, ""},
		{`<html>502</html>`, ""},
		{``, ""},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, errorCodeFromBody([]byte(tc.body)), tc.body)
	}
}

type closeRecorder struct {
	io.Reader
	closed *bool
}

func (c closeRecorder) Close() error { *c.closed = true; return nil }
