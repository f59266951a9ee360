package fakes

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Fault describes how the fake answers one send request (Twilio message
// create or Resend email send). Listing requests are never faulted.
//
// With only Delay set the request succeeds late. With Status (or, for
// Twilio, Code) set it fails with the provider's JSON error without
// recording anything. AcceptThenFail and Hang record the message first.
type Fault struct {
	// Status is the HTTP status to answer with. If 0: 400 when Code is set,
	// 500 with AcceptThenFail, otherwise the request is not failed.
	Status int
	// Code is the Twilio error code in the body (e.g. 21610); 0 picks one
	// from Status. Resend ignores it.
	Code int
	// Name is the Resend error name in the body (e.g. "validation_error");
	// "" picks one from Status. Twilio ignores it.
	Name string
	// RetryAfter, if set, is sent verbatim as the Retry-After header.
	RetryAfter string
	// Body, if set, replaces the JSON error body (e.g. an HTML page from a
	// load balancer); it is sent as text/html.
	Body string
	// Delay waits this long before handling the request, or until the
	// client gives up.
	Delay time.Duration
	// Hold, if set, makes the request wait until it is closed (or the
	// client gives up) before it is handled: a delay the test ends when
	// it chooses.
	Hold <-chan struct{}
	// AcceptThenFail records the message as accepted (and runs the OnAccept
	// hook), then answers with the error: a lost response.
	AcceptThenFail bool
	// Hang records the message as accepted (and runs the OnAccept hook),
	// then never answers; it returns when the client gives up or the server
	// closes.
	Hang bool
}

// fails reports whether the fault ends in an error response.
func (f Fault) fails() bool {
	return f.Status != 0 || f.Code != 0 || f.AcceptThenFail
}

// faultQueue hands out injected faults in order, one per send request.
type faultQueue struct {
	mu    sync.Mutex
	queue []queuedFault
}

type queuedFault struct {
	left  int
	fault Fault
}

func (q *faultQueue) add(n int, f Fault) {
	if n <= 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queue = append(q.queue, queuedFault{left: n, fault: f})
}

func (q *faultQueue) next() (Fault, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.queue) == 0 {
		return Fault{}, false
	}
	f := q.queue[0].fault
	q.queue[0].left--
	if q.queue[0].left == 0 {
		q.queue = q.queue[1:]
	}
	return f, true
}

func (q *faultQueue) reset() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queue = nil
}

// pause waits d, or until hold is closed when it is set. If the client
// gives up (ctx) or the server closes first, it drops the connection
// without a response.
func pause(ctx context.Context, closing <-chan struct{}, d time.Duration, hold <-chan struct{}) {
	var timer <-chan time.Time
	if hold == nil {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-timer:
	case <-hold:
	case <-ctx.Done():
		panic(http.ErrAbortHandler)
	case <-closing:
		panic(http.ErrAbortHandler)
	}
}

// hang blocks until the client gives up (ctx) or the server closes, then
// drops the connection: returning normally would send an empty 200.
func hang(ctx context.Context, closing <-chan struct{}) {
	select {
	case <-ctx.Done():
	case <-closing:
	}
	panic(http.ErrAbortHandler)
}
