// Package periodic enqueues Errand's recurring tasks (the dispatcher's
// scan, retention sweeps, expiry watches) once per period, however many
// scheduler processes run: each period's task has the ID
// "periodic:<name>:<period start>", and asynq keeps a finished task (and so
// its ID) for two periods, so a second scheduler's enqueue of the same
// period is refused.
//
// asynq's own Scheduler fixes task options at registration, so it cannot
// give each period its own ID; two of them would enqueue every run twice.
package periodic

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/errandhq/errand/internal/clock"
)

// Entry is one recurring task.
type Entry struct {
	Name    string        // stable, e.g. "dispatch"
	Every   time.Duration // period; runs are aligned to multiples of it since the epoch
	Type    string        // asynq task type
	Queue   string
	Timeout time.Duration
}

// Payload is what every periodic task carries: the start of its period.
type Payload struct {
	Period time.Time `json:"period"`
}

// Scheduler ticks and enqueues each entry at most once per period.
type Scheduler struct {
	Client  *asynq.Client
	Clock   clock.Clock
	Logger  *slog.Logger
	Entries []Entry
	// Tick is how often the clock is read (default one second).
	Tick time.Duration

	last map[string]time.Time
}

// TaskID is the ID of an entry's task for the period containing t.
func TaskID(name string, period time.Time) string {
	return "periodic:" + name + ":" + period.UTC().Format("20060102T150405Z")
}

// Run enqueues due entries until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	tick := s.Tick
	if tick <= 0 {
		tick = time.Second
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		s.Enqueue(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Enqueue enqueues every entry whose current period has not been enqueued
// by this scheduler yet, and returns how many asynq accepted (the others
// were already enqueued by another scheduler, or failed and are retried on
// the next tick).
func (s *Scheduler) Enqueue(ctx context.Context) int {
	if s.last == nil {
		s.last = map[string]time.Time{}
	}
	now := s.Clock.Now()
	n := 0
	for _, e := range s.Entries {
		period := now.Truncate(e.Every)
		if s.last[e.Name].Equal(period) {
			continue
		}
		payload, _ := json.Marshal(Payload{Period: period})
		opts := []asynq.Option{
			asynq.TaskID(TaskID(e.Name, period)), asynq.Queue(e.Queue), asynq.MaxRetry(0),
			asynq.Retention(2 * e.Every),
		}
		if e.Timeout > 0 {
			opts = append(opts, asynq.Timeout(e.Timeout))
		}
		_, err := s.Client.EnqueueContext(ctx, asynq.NewTask(e.Type, payload, opts...))
		switch {
		case err == nil:
			n++
			s.last[e.Name] = period
		case errors.Is(err, asynq.ErrTaskIDConflict):
			s.last[e.Name] = period
		default:
			s.Logger.ErrorContext(ctx, "periodic enqueue failed", "entry", e.Name, "err", err)
		}
	}
	return n
}
