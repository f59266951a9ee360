package fakes

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// TwilioMessage is a message the fake Twilio accepted.
type TwilioMessage struct {
	SID            string
	AccountSID     string
	To             string
	From           string
	Body           string
	StatusCallback string
	Created        time.Time
}

// Twilio is a fake of Twilio's Messages API (2010-04-01):
//
//	POST /2010-04-01/Accounts/{AccountSid}/Messages.json  create
//	GET  /2010-04-01/Accounts/{AccountSid}/Messages.json  list
//
// Requests must use HTTP Basic auth AccountSID:AuthToken. It is safe for
// concurrent use.
type Twilio struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:41234.
	URL        string
	AccountSID string
	AuthToken  string

	srv       *httptest.Server
	closing   chan struct{}
	closeOnce sync.Once
	requests  atomic.Int64
	faults    faultQueue

	mu       sync.Mutex
	messages []TwilioMessage
	optedOut map[string]bool
	onAccept func(TwilioMessage)
	rewrite  func(string) string
	now      func() time.Time
}

// NewTwilio starts a fake Twilio with fresh random credentials. Call Close
// when done.
func NewTwilio() *Twilio {
	f := &Twilio{
		AccountSID: "AC" + randomHex(16),
		AuthToken:  randomHex(16),
		closing:    make(chan struct{}),
		optedOut:   make(map[string]bool),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2010-04-01/Accounts/{AccountSid}/Messages.json", f.createMessage)
	mux.HandleFunc("GET /2010-04-01/Accounts/{AccountSid}/Messages.json", f.listMessages)
	mux.HandleFunc("/", f.notFound)
	f.srv = httptest.NewServer(mux)
	f.URL = f.srv.URL
	return f
}

// Close releases hanging requests and shuts the server down. Later requests
// are refused.
func (f *Twilio) Close() {
	f.closeOnce.Do(func() {
		close(f.closing)
		f.srv.Close()
	})
}

// FailNext makes the next n message-create requests (after authentication)
// behave as fault describes. Calls queue up in order.
func (f *Twilio) FailNext(n int, fault Fault) { f.faults.add(n, fault) }

// OnAccept sets a hook run synchronously after a message is recorded and
// before the response is written; nil removes it.
func (f *Twilio) OnAccept(hook func(TwilioMessage)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onAccept = hook
}

// Rewrite sets a function applied to the body of each message accepted
// from now on before it is recorded, as Twilio's Smart Encoding or a
// Messaging Service's opt-out footer rewrite what was sent (the listing
// then shows the rewritten body); nil removes it.
func (f *Twilio) Rewrite(fn func(string) string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rewrite = fn
}

// SetClock makes the fake date the messages it accepts by now (a test's
// fake clock) instead of the real time; nil restores the real time.
func (f *Twilio) SetClock(now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = now
}

// stamp returns the creation time and stored body of a message accepted now.
func (f *Twilio) stamp(body string) (time.Time, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if f.now != nil {
		now = f.now()
	}
	if f.rewrite != nil {
		body = f.rewrite(body)
	}
	return now.UTC(), body
}

// OptOut makes sends to `to` fail with error 21610, as after the recipient
// replied STOP.
func (f *Twilio) OptOut(to string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.optedOut[to] = true
}

// Messages returns the accepted messages, oldest first.
func (f *Twilio) Messages() []TwilioMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.messages)
}

// Count returns how many messages were accepted.
func (f *Twilio) Count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.messages)
}

// Requests returns how many HTTP requests reached the server, including
// rejected and listing ones.
func (f *Twilio) Requests() int { return int(f.requests.Load()) }

// Reset forgets messages, opt-outs, pending faults, the OnAccept hook, the
// body rewrite and the request count.
func (f *Twilio) Reset() {
	f.faults.reset()
	f.requests.Store(0)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.messages = nil
	f.optedOut = make(map[string]bool)
	f.onAccept = nil
	f.rewrite = nil
}

// accept records m and runs the hook.
func (f *Twilio) accept(m TwilioMessage) {
	f.mu.Lock()
	f.messages = append(f.messages, m)
	hook := f.onAccept
	f.mu.Unlock()
	if hook != nil {
		hook(m)
	}
}

func (f *Twilio) isOptedOut(to string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.optedOut[to]
}

func (f *Twilio) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	return ok && user == f.AccountSID && pass == f.AuthToken && r.PathValue("AccountSid") == f.AccountSID
}
