package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
)

// Ref points at one job row that should have a task in Redis.
type Ref struct {
	TenantID uuid.UUID
	ID       uuid.UUID
	DueAt    time.Time
	Variant  string // kind-specific routing, e.g. a message's kind picks its queue
}

// A Dispatchable is a table of job rows the Dispatcher keeps in step with
// Redis. PostgreSQL holds the truth (the row and its state); Redis holds a
// task with a deterministic ID per live row, within the horizon.
type Dispatchable interface {
	// Name names the table in logs and metrics.
	Name() string
	// Job describes the row's task: deterministic ID, queue and options.
	Job(ref Ref) (Job, error)
	// Undispatched lists live rows due by until that have no task in Redis.
	Undispatched(ctx context.Context, q *db.Queries, until time.Time, limit int32) ([]Ref, error)
	// Stalled lists rows whose task should have finished by now but whose
	// row never moved on: the task was lost, or its worker died.
	Stalled(ctx context.Context, q *db.Queries, now time.Time, limit int32) ([]Ref, error)
	// MarkEnqueued records that these rows have a task in Redis.
	MarkEnqueued(ctx context.Context, q *db.Queries, ids []uuid.UUID, now time.Time) error
	// ForgetEnqueued hands every live, not-yet-running row back to the
	// due-scan after Redis lost its data.
	ForgetEnqueued(ctx context.Context, q *db.Queries) (int64, error)
}

// Refs turns the rows of a due or stalled scan into Refs.
func Refs[T any](rows []T, err error, ref func(T) Ref) ([]Ref, error) {
	if err != nil {
		return nil, err
	}
	out := make([]Ref, len(rows))
	for i, r := range rows {
		out[i] = ref(r)
	}
	return out, nil
}

// epochKey marks a Redis that still holds what Errand put in it. When it is
// gone, Redis was flushed or restarted without persistence, and every task
// it held must be enqueued again from PostgreSQL. There is one per queue,
// under the queue's hash tag, so in a Redis Cluster it lives on the node
// that holds that queue's tasks and vanishes with them.
func epochKey(queue string) string { return "errand:dispatch:epoch:{" + queue + "}" }

// queues are the queues Errand's tasks use.
var queues = []string{QueueCritical, QueueErasure, QueueNotifications, QueueBulk, QueueMaintenance}

// Dispatcher puts job rows into Redis as asynq tasks and repairs the
// difference when Redis loses them. It is safe to run in any number of
// processes at once: task IDs are deterministic, so a second enqueue of the
// same row is refused by asynq and costs nothing.
type Dispatcher struct {
	Store     *db.Store
	Client    *asynq.Client
	Inspector *asynq.Inspector
	Redis     redis.UniversalClient
	Clock     clock.Clock
	Logger    *slog.Logger
	// Horizon is how far ahead of its due time a row gets its task. Rows due
	// later wait in PostgreSQL, so a million future reminders are not a
	// million Redis entries.
	Horizon time.Duration
	// Grace is how late a task may be before the reconciler assumes Redis
	// lost it.
	Grace time.Duration
	// Batch bounds each scan.
	Batch int32
	Kinds []Dispatchable

	mu        sync.Mutex
	replID    string                                // the master's replication ID at the last scan
	recheckAt time.Time                             // when to re-offer once more after a failover
	reoffer   bool                                  // a re-offer after a failover failed midway
	readRepl  func(context.Context) (string, error) // tests replace it; nil reads INFO
}

// Within reports whether a row due at due is inside the horizon, so it
// should be enqueued now rather than left to the due-scan.
func (d *Dispatcher) Within(due time.Time) bool {
	return !due.After(d.Clock.Now().Add(d.Horizon))
}

// Enqueue puts one freshly committed row into Redis. The row was written
// with enqueued_at set; when Redis refuses, undo calls back to clear it so
// the due-scan retries (and if that fails too, the stalled scan will).
func (d *Dispatcher) Enqueue(ctx context.Context, k Dispatchable, ref Ref) error {
	if err := d.enqueue(ctx, k, ref); err != nil {
		return fmt.Errorf("enqueue %s %s: %w", k.Name(), ref.ID, err)
	}
	return nil
}

func (d *Dispatcher) enqueue(ctx context.Context, k Dispatchable, ref Ref) error {
	job, err := k.Job(ref)
	if err != nil {
		return err
	}
	wait := ref.DueAt.Sub(d.Clock.Now())
	if wait < 0 {
		wait = 0
	}
	_, err = d.Client.EnqueueContext(ctx, job.Task(), asynq.ProcessIn(wait))
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return nil // already there: enqueueing twice is harmless by design
	}
	return err
}

// ScanResult counts what one Scan did.
type ScanResult struct {
	RedisLost bool
	// MasterChanged: another server answers as master than at the last
	// scan (a Sentinel or Cluster failover), and live rows were re-offered.
	MasterChanged bool
	Forgotten     int64
	Enqueued      int
	// Checked counts overdue rows whose task was looked up in Redis;
	// Rekicked those whose task was missing (enqueued again) or stuck
	// (run now).
	Checked  int
	Rekicked int
	Failed   int
}

// Scan is the periodic pass: detect a Redis that lost its data, re-kick
// stalled rows, and enqueue rows that came within the horizon. Its cost is
// proportional to what is due, not to what exists.
func (d *Dispatcher) Scan(ctx context.Context) (ScanResult, error) {
	var res ScanResult
	lost, err := d.checkEpoch(ctx)
	if err != nil {
		return res, err
	}
	res.MasterChanged = d.checkMaster(ctx)
	if lost || res.MasterChanged {
		res.RedisLost = lost
		if err := d.registerQueues(ctx); err != nil {
			return res, err
		}
		for _, k := range d.Kinds {
			var n int64
			err := d.Store.AsSystem(ctx, func(q *db.Queries) error {
				n, err = k.ForgetEnqueued(ctx, q)
				return err
			})
			if err != nil {
				if res.MasterChanged {
					d.reofferAgain()
				}
				return res, fmt.Errorf("forget enqueued %s: %w", k.Name(), err)
			}
			res.Forgotten += n
		}
		switch {
		case lost && res.Forgotten == 0:
			// A new Redis (or a new queue), or an empty one that held
			// nothing of ours: nothing to recover, nothing to warn about.
			d.Logger.InfoContext(ctx, "redis holds no epoch yet; recorded (no enqueued rows to recover)")
		case lost:
			d.Logger.WarnContext(ctx, "redis lost its tasks; re-enqueueing from postgres", "rows", res.Forgotten)
		default:
			d.Logger.WarnContext(ctx, "redis master changed (failover); re-offering live rows from postgres", "rows", res.Forgotten)
		}
	}
	for _, k := range d.Kinds {
		if err := d.rekickStalled(ctx, k, &res); err != nil {
			return res, err
		}
		if err := d.enqueueDue(ctx, k, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// checkEpoch reports whether Redis lost its data since the last scan. The
// first scan against an empty Redis also says so, which merely re-offers
// rows asynq already holds (and refuses by ID).
func (d *Dispatcher) checkEpoch(ctx context.Context) (bool, error) {
	lost := false
	for _, q := range queues {
		set, err := d.Redis.SetNX(ctx, epochKey(q), d.Clock.Now().Format(time.RFC3339), 0).Result()
		if err != nil {
			return false, fmt.Errorf("check redis epoch: %w", err)
		}
		lost = lost || set
	}
	return lost, nil
}

// failoverSettle is how long after a failover the live rows are re-offered
// once more: a client that had not yet heard of the new master may have
// written to the old one until Sentinel turned it into a replica.
const failoverSettle = 30 * time.Second

// checkMaster reports whether Redis's master changed since the last scan in
// this process, or a failover settled since: then every live row is
// offered again. Redis replicates asynchronously, so writes the old master
// acknowledged just before a failover can be missing on the new one, and
// without this they would wait for the stalled scan. A promoted replica
// (and a restarted server) has a new replication ID; the first scan only
// records it. A Redis that refuses INFO is not checked.
func (d *Dispatcher) checkMaster(ctx context.Context) bool {
	read := d.readRepl
	if read == nil {
		read = func(ctx context.Context) (string, error) { return replicationID(ctx, d.Redis) }
	}
	id, err := read(ctx)
	if err != nil || id == "" {
		return false
	}
	now := d.Clock.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.replID == "":
		d.replID = id
		return false
	case d.reoffer:
		d.reoffer = false
		d.replID = id
		return true
	case id != d.replID:
		d.replID, d.recheckAt = id, now.Add(failoverSettle)
		return true
	case !d.recheckAt.IsZero() && !now.Before(d.recheckAt):
		d.recheckAt = time.Time{}
		return true
	}
	return false
}

// reofferAgain makes the next scan re-offer the live rows: this one failed
// before it had.
func (d *Dispatcher) reofferAgain() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reoffer = true
}

// replicationID is the master_replid of the master (of every master, for
// a Cluster).
func replicationID(ctx context.Context, rc redis.UniversalClient) (string, error) {
	cc, ok := rc.(*redis.ClusterClient)
	if !ok {
		return replIDOf(ctx, rc)
	}
	var mu sync.Mutex
	var ids []string
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		id, err := replIDOf(ctx, c)
		mu.Lock()
		ids = append(ids, id)
		mu.Unlock()
		return err
	})
	sort.Strings(ids)
	return strings.Join(ids, ","), err
}

func replIDOf(ctx context.Context, c redis.Cmdable) (string, error) {
	s, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "master_replid:"); ok {
			return v, nil
		}
	}
	return "", nil
}

// allQueuesKey is asynq's set of known queues (its base.AllQueues). An
// asynq client remembers which queues it has added there and never adds
// them again, so after Redis lost its data the inspector, and asynqmon,
// would not see queues whose tasks the workers still run.
const allQueuesKey = "asynq:queues"

func (d *Dispatcher) registerQueues(ctx context.Context) error {
	names := make([]any, len(queues))
	for i, q := range queues {
		names[i] = q
	}
	if err := d.Redis.SAdd(ctx, allQueuesKey, names...).Err(); err != nil {
		return fmt.Errorf("register queues: %w", err)
	}
	return nil
}

func (d *Dispatcher) enqueueDue(ctx context.Context, k Dispatchable, res *ScanResult) error {
	for {
		var refs []Ref
		err := d.Store.AsSystem(ctx, func(q *db.Queries) (err error) {
			refs, err = k.Undispatched(ctx, q, d.Clock.Now().Add(d.Horizon), d.Batch)
			return err
		})
		if err != nil {
			return fmt.Errorf("due-scan %s: %w", k.Name(), err)
		}
		if len(refs) == 0 {
			return nil
		}
		done := make([]uuid.UUID, 0, len(refs))
		for _, ref := range refs {
			if err := d.enqueue(ctx, k, ref); err != nil {
				res.Failed++
				d.Logger.ErrorContext(ctx, "enqueue failed", "kind", k.Name(), "id", ref.ID, "err", err)
				continue
			}
			done = append(done, ref.ID)
		}
		if len(done) > 0 {
			err = d.Store.AsSystem(ctx, func(q *db.Queries) error {
				return k.MarkEnqueued(ctx, q, done, d.Clock.Now())
			})
			if err != nil {
				return fmt.Errorf("mark enqueued %s: %w", k.Name(), err)
			}
		}
		res.Enqueued += len(done)
		if len(done) < len(refs) || len(refs) < int(d.Batch) {
			return nil // Redis is refusing, or the scan is drained
		}
	}
}

// rekickStalled is the reconciler of single lost tasks. A row overdue by
// stallGrace whose task was not looked up for stallRecheck (enqueued_at
// doubles as "last checked") has its task looked up in Redis: a missing
// task is enqueued again, one asynq holds as scheduled (a clock that
// disagrees), retrying or archived is run now, and a pending or active one
// is left alone. One batch per scan, oldest first, each row at most once a
// minute: the cost follows what is overdue, not what exists.
func (d *Dispatcher) rekickStalled(ctx context.Context, k Dispatchable, res *ScanResult) error {
	var refs []Ref
	err := d.Store.AsSystem(ctx, func(q *db.Queries) (err error) {
		refs, err = k.Stalled(ctx, q, d.Clock.Now(), d.Batch)
		return err
	})
	if err != nil {
		return fmt.Errorf("stalled scan %s: %w", k.Name(), err)
	}
	checked := make([]uuid.UUID, 0, len(refs))
	defer func() {
		if len(checked) == 0 {
			return
		}
		err := d.Store.AsSystem(ctx, func(q *db.Queries) error { return k.MarkEnqueued(ctx, q, checked, d.Clock.Now()) })
		if err != nil {
			d.Logger.ErrorContext(ctx, "mark checked failed", "kind", k.Name(), "err", err)
		}
	}()
	for _, ref := range refs {
		job, err := k.Job(ref)
		if err != nil {
			return err
		}
		info, err := d.Inspector.GetTaskInfo(job.Queue, job.ID)
		switch {
		case errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound):
			_, err := d.Client.EnqueueContext(ctx, job.Task())
			switch {
			case err == nil:
				res.Rekicked++
				d.Logger.WarnContext(ctx, "re-enqueued a lost task", "kind", k.Name(), "task_id", job.ID)
			case errors.Is(err, asynq.ErrTaskIDConflict): // a worker's retry put it back meanwhile
			default:
				res.Failed++
				d.Logger.ErrorContext(ctx, "re-enqueue failed", "kind", k.Name(), "id", ref.ID, "err", err)
				continue // not checked: the next scan tries again
			}
		case err != nil:
			res.Failed++
			d.Logger.ErrorContext(ctx, "look up task failed", "kind", k.Name(), "id", ref.ID, "err", err)
			continue
		default:
			if d.runNow(ctx, job, info.State) {
				res.Rekicked++
			}
		}
		res.Checked++
		checked = append(checked, ref.ID)
	}
	return nil
}

// runNow moves a task asynq holds as scheduled, retry or archived to
// pending. A task that is pending or active is left alone.
func (d *Dispatcher) runNow(ctx context.Context, job Job, state asynq.TaskState) bool {
	id, queue := job.ID, job.Queue
	switch state {
	case asynq.TaskStateScheduled, asynq.TaskStateRetry, asynq.TaskStateArchived:
		if err := d.Inspector.RunTask(queue, id); err != nil {
			d.Logger.WarnContext(ctx, "could not run stalled task", "task_id", id, "err", err)
			return false
		}
		return true
	}
	return false
}
