package fakes

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ResendEmail is an email the fake Resend accepted.
type ResendEmail struct {
	ID             string
	From           string
	To             []string
	Subject        string
	Text           string
	HTML           string
	IdempotencyKey string
	Created        time.Time
}

// Resend is a fake of Resend's send-email endpoint, POST /emails, including
// its Idempotency-Key semantics. Requests must carry
// "Authorization: Bearer <APIKey>". It is safe for concurrent use.
type Resend struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:41234.
	URL    string
	APIKey string

	srv       *httptest.Server
	closing   chan struct{}
	closeOnce sync.Once
	requests  atomic.Int64
	faults    faultQueue

	mu       sync.Mutex
	emails   []ResendEmail
	keys     map[string]*idempotentRequest
	onAccept func(ResendEmail)
}

// NewResend starts a fake Resend with a fresh random API key. Call Close
// when done.
func NewResend() *Resend {
	f := &Resend{
		APIKey:  "re_" + randomHex(16),
		closing: make(chan struct{}),
		keys:    make(map[string]*idempotentRequest),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /emails", f.sendEmail)
	mux.HandleFunc("/", f.notFound)
	f.srv = httptest.NewServer(mux)
	f.URL = f.srv.URL
	return f
}

// Close releases hanging requests and shuts the server down. Later requests
// are refused.
func (f *Resend) Close() {
	f.closeOnce.Do(func() {
		close(f.closing)
		f.srv.Close()
	})
}

// FailNext makes the next n send requests (after authentication and the
// idempotency check) behave as fault describes. Calls queue up in order.
func (f *Resend) FailNext(n int, fault Fault) { f.faults.add(n, fault) }

// OnAccept sets a hook run synchronously after an email is recorded and
// before its idempotency key completes and the response is written; nil
// removes it. While the hook runs, a request reusing the key gets 409
// concurrent_idempotent_requests.
func (f *Resend) OnAccept(hook func(ResendEmail)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onAccept = hook
}

// Emails returns the accepted emails, oldest first.
func (f *Resend) Emails() []ResendEmail {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Clone(f.emails)
	for i := range out {
		out[i].To = slices.Clone(out[i].To)
	}
	return out
}

// Count returns how many emails were accepted.
func (f *Resend) Count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.emails)
}

// Requests returns how many HTTP requests reached the server, including
// rejected and replayed ones.
func (f *Resend) Requests() int { return int(f.requests.Load()) }

// Reset forgets emails, idempotency keys, pending faults, the OnAccept hook
// and the request count.
func (f *Resend) Reset() {
	f.faults.reset()
	f.requests.Store(0)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.emails = nil
	f.keys = make(map[string]*idempotentRequest)
	f.onAccept = nil
}

// accept records e and runs the hook.
func (f *Resend) accept(e ResendEmail) {
	f.mu.Lock()
	f.emails = append(f.emails, e)
	hook := f.onAccept
	f.mu.Unlock()
	if hook != nil {
		hook(e)
	}
}
