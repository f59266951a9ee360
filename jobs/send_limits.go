package jobs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/errandhq/errand/internal/ratelimit"
)

// ErrRateLimited is a send held back by a provider rate limit. It is not a
// failure: asynq runs the task again shortly without counting a retry
// (the worker's IsFailure), and the message row is not touched.
var ErrRateLimited = errors.New("provider rate limit reached; trying again shortly")

// SendLimits are the providers' rate limits, kept in Redis (GCRA) so every
// worker process on every host shares them: one for the whole Twilio
// account, one per sending number, one for Resend. A zero Limit is no
// limit.
//
// Bulk texts and notices may only use half of each burst: when a big
// batch keeps a limit busy, an appointment message still finds room at
// once. (GCRA's state is one "theoretical arrival time" per key; a caller
// with a smaller burst is refused while the key is more than that far
// ahead, so two callers with different bursts share one rate with
// different priorities.)
type SendLimits struct {
	Limiter   *ratelimit.Limiter
	SMS       ratelimit.Limit // whole Twilio account
	SMSNumber ratelimit.Limit // each sending number
	SMSFrom   string          // the sending number (the business's, not personal data)
	Email     ratelimit.Limit
}

// Allow takes one send from each limit that applies, or says how long to
// wait (ErrRateLimited, as a Retry). A nil SendLimits allows everything.
func (l *SendLimits) Allow(ctx context.Context, channel, kind string) error {
	if l == nil || l.Limiter == nil {
		return nil
	}
	type check struct {
		key string
		lim ratelimit.Limit
	}
	var checks []check
	switch channel {
	case "sms":
		checks = []check{{"provider:twilio", l.SMS}, {"provider:twilio:from:" + l.SMSFrom, l.SMSNumber}}
	case "email":
		checks = []check{{"provider:resend", l.Email}}
	}
	background := kind == "bulk" || kind == "notice"
	for _, c := range checks {
		lim := c.lim
		if lim.Rate <= 0 {
			continue
		}
		if background {
			lim = backgroundShare(lim)
		}
		ok, wait, err := l.Limiter.Allow(ctx, c.key, lim)
		if err != nil {
			// Redis is the transport too: without it nothing runs anyway.
			return Retry(fmt.Errorf("check provider rate limit: %w", err), time.Second)
		}
		if !ok {
			// Spread the waiters so they do not all come back at once.
			wait += time.Duration(rand.Int64N(int64(wait) + int64(10*time.Millisecond)))
			return Retry(ErrRateLimited, wait)
		}
	}
	return nil
}

// backgroundShare is lim with half its burst (at least one).
func backgroundShare(lim ratelimit.Limit) ratelimit.Limit {
	burst := lim.Burst
	if burst < 1 {
		burst = lim.Rate
	}
	lim.Burst = max(burst/2, 1)
	return lim
}

// isFailure tells asynq which errors count as a failed attempt: a rate
// limit is not one, so it never uses up a message's retries.
func isFailure(err error) bool { return err != nil && !errors.Is(err, ErrRateLimited) }
