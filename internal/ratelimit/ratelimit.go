// Package ratelimit is the Redis-backed limiter every process shares (GCRA
// via redis_rate), so a limit holds however many api or worker processes
// run. Keys name what is limited ("apikey:<prefix>", "sms:+1312…" hashed by
// the caller when it is personal data); they must never hold raw personal
// data, because Redis keys are visible to ops.
package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Limit is a rate with a burst.
type Limit struct {
	Rate   int
	Burst  int
	Period time.Duration
}

// PerSecond is rate events per second with the given burst.
func PerSecond(rate, burst int) Limit { return Limit{Rate: rate, Burst: burst, Period: time.Second} }

// Per is rate events per period with the given burst.
func Per(rate int, period time.Duration, burst int) Limit {
	return Limit{Rate: rate, Burst: burst, Period: period}
}

// Limiter checks and consumes allowances.
type Limiter struct {
	l *redis_rate.Limiter
}

// New returns a limiter over rdb.
func New(rdb redis.UniversalClient) *Limiter { return &Limiter{l: redis_rate.NewLimiter(rdb)} }

// Allow consumes one event for key. When the limit is exceeded it returns
// false and how long until an event would be allowed.
func (l *Limiter) Allow(ctx context.Context, key string, lim Limit) (bool, time.Duration, error) {
	if lim.Rate <= 0 {
		return true, 0, nil
	}
	burst := lim.Burst
	if burst < 1 {
		burst = lim.Rate
	}
	res, err := l.l.Allow(ctx, "errand:rl:"+key, redis_rate.Limit{Rate: lim.Rate, Burst: burst, Period: lim.Period})
	if err != nil {
		return false, 0, fmt.Errorf("rate limit: %w", err)
	}
	if res.Allowed > 0 {
		return true, 0, nil
	}
	return false, res.RetryAfter, nil
}
