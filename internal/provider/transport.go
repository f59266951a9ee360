package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// maxErrorBody bounds how much of an error response is buffered.
const maxErrorBody = 64 << 10

// exchange records the last HTTP response of one provider call. The SDKs
// hide the status code and headers of failed calls (Resend drops them for
// everything but 429, Twilio loses them when the body is not its JSON), so
// captureTransport fills an exchange carried by the request context.
type exchange struct {
	mu         sync.Mutex
	status     int
	retryAfter string
	rateReset  string
	code       string // provider error code from the body: Twilio "code" or Resend "name"
}

type exchangeKey struct{}

func withExchange(ctx context.Context, ex *exchange) context.Context {
	return context.WithValue(ctx, exchangeKey{}, ex)
}

func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

func (ex *exchange) record(resp *http.Response, body []byte) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	ex.status = resp.StatusCode
	ex.retryAfter = resp.Header.Get("Retry-After")
	ex.rateReset = resp.Header.Get("Ratelimit-Reset")
	ex.code = errorCodeFromBody(body)
}

// snapshot returns what was recorded; a nil exchange reads as "no response".
func (ex *exchange) snapshot() (status int, retryAfter, rateReset, code string) {
	if ex == nil {
		return 0, "", "", ""
	}
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return ex.status, ex.retryAfter, ex.rateReset, ex.code
}

// errorCodeFromBody extracts Twilio's numeric "code" or Resend's "name" from
// an error body. Only short identifier-like values are kept, so the result is
// safe to put into Error.Code.
func errorCodeFromBody(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	var shape struct {
		Code json.RawMessage `json:"code"`
		Name string          `json:"name"`
	}
	if json.Unmarshal(body, &shape) != nil {
		return ""
	}
	if n, err := strconv.Atoi(string(shape.Code)); err == nil && n > 0 {
		return strconv.Itoa(n)
	}
	if isIdentifier(shape.Name) {
		return shape.Name
	}
	return ""
}

func isIdentifier(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return true
}

// captureTransport records every response into the exchange found in the
// request context, and buffers error bodies so the connection goes back to
// the pool even though Twilio's SDK never closes them.
type captureTransport struct {
	next http.RoundTripper
}

func (t captureTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	var body []byte
	if resp.StatusCode >= 400 {
		body, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
	}
	if ex := exchangeFrom(req.Context()); ex != nil {
		ex.record(resp, body)
	}
	return resp, nil
}

// rewriteTransport sends every request to base instead of the host the SDK
// hard-codes, keeping the path (prefixed by base's path) and the query.
type rewriteTransport struct {
	base *url.URL
	next http.RoundTripper
}

func newRewriteTransport(rawBase string, next http.RoundTripper) (http.RoundTripper, error) {
	base, err := url.Parse(rawBase)
	if err != nil {
		return nil, fmt.Errorf("parse base url: %w", err)
	}
	if base.Scheme != "http" && base.Scheme != "https" || base.Host == "" {
		return nil, fmt.Errorf("base url must be an absolute http or https url")
	}
	return rewriteTransport{base: base, next: next}, nil
}

func (t rewriteTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	u := *req.URL
	u.Scheme = t.base.Scheme
	u.Host = t.base.Host
	u.User = nil
	if prefix := strings.TrimSuffix(t.base.Path, "/"); prefix != "" {
		u.Path = prefix + u.Path
		if u.RawPath != "" {
			u.RawPath = strings.TrimSuffix(t.base.EscapedPath(), "/") + u.RawPath
		}
	}
	out := req.Clone(req.Context())
	out.URL = &u
	out.Host = ""
	return t.next.RoundTrip(out)
}

// contextTransport gives requests made by an SDK without context support
// (Twilio's) the context of the call that made them: its deadline, its
// cancellation and its exchange.
type contextTransport struct {
	ctx  context.Context
	next http.RoundTripper
}

func (t contextTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.next.RoundTrip(req.WithContext(t.ctx))
}

// baseTransport returns the caller's transport, or a pooled one sized for
// many concurrent workers (http.DefaultTransport keeps only 2 idle
// connections per host).
func baseTransport(hc *http.Client) http.RoundTripper {
	if hc != nil && hc.Transport != nil {
		return hc.Transport
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return t
}
