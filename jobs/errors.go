package jobs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
)

// retryError is a transient failure that knows when to try again: the
// handler has already written that time on its row, so asynq must use the
// same one (see RetryDelay).
type retryError struct {
	err   error
	after time.Duration
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// Retry marks err as transient: the task runs again after d.
func Retry(err error, d time.Duration) error {
	if d < 0 {
		d = 0
	}
	return &retryError{err: err, after: d}
}

// Permanent marks err as final: asynq archives the task without retrying,
// and the row already says why.
func Permanent(err error) error {
	return fmt.Errorf("%w (%w)", err, asynq.SkipRetry)
}

// RetryPolicy is exponential backoff with jitter: Base, 2·Base, 4·Base, …
// up to Cap, each ±20%.
type RetryPolicy struct {
	Base time.Duration
	Cap  time.Duration
}

// DefaultRetry starts at 5 seconds and never waits more than 5 minutes:
// three provider 500s in a row delay a text by about 35 seconds.
var DefaultRetry = RetryPolicy{Base: 5 * time.Second, Cap: 5 * time.Minute}

// Delay is the wait before attempt n+1, after n failures (n ≥ 1).
func (p RetryPolicy) Delay(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	d := p.Base
	for i := 1; i < n && d < p.Cap; i++ {
		d *= 2
	}
	if d > p.Cap {
		d = p.Cap
	}
	jitter := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * jitter)
}

// RetryDelay is the asynq server's RetryDelayFunc: the delay a handler
// chose (and recorded) wins; otherwise the policy's backoff applies.
func (p RetryPolicy) RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var r *retryError
	if errors.As(err, &r) {
		return r.after
	}
	return p.Delay(n + 1)
}

// notSentError ends a message without sending it: a renderer found that
// its event or channel is switched off, or that what it is about is gone.
type notSentError struct {
	status string // suppressed or cancelled
	reason string
}

func (e *notSentError) Error() string { return e.status + ": " + e.reason }

// Suppressed ends a message as suppressed (opted out, switched off, no
// address) with a reason a person can read.
func Suppressed(reason string) error { return &notSentError{status: "suppressed", reason: reason} }

// Cancelled ends a message as cancelled (what it was about no longer
// calls for it) with a reason a person can read.
func Cancelled(reason string) error { return &notSentError{status: "cancelled", reason: reason} }
