// Package jobs is every kind of background work Errand does, one file per
// kind: the task type name, an IDs-only payload, a constructor and the
// handler. This file is the one place kinds meet handlers (Register) and
// where the queues, retry policy and failure bookkeeping every kind shares
// are set.
//
// Handlers must be idempotent under at-least-once delivery, classify their
// errors (Retry for transient, Permanent for final), and keep personal data
// out of payloads and log lines: asynqmon shows payloads to ops.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/filestore"
	"github.com/errandhq/errand/internal/logging"
	"github.com/errandhq/errand/internal/metrics"
	"github.com/errandhq/errand/internal/periodic"
	"github.com/errandhq/errand/internal/provider"
	"github.com/errandhq/errand/internal/pseudonym"
)

// Queues. Verification codes ride alone in critical, served by workers of
// their own so nothing else can hold them up; the rest share the main pool
// by weight. A child's erasure ("minor") rides in erasure, the heaviest
// queue of the main pool: taken first whenever one waits, without taking
// a code's place.
const (
	QueueCritical      = "critical"
	QueueErasure       = "erasure"
	QueueNotifications = "notifications"
	QueueBulk          = "bulk"
	QueueMaintenance   = "maintenance"
)

// MainQueues are the weighted queues of the main worker pool.
var MainQueues = map[string]int{QueueErasure: 10, QueueNotifications: 6, QueueBulk: 3, QueueMaintenance: 1}

// Job is a task to enqueue together with the identity asynq knows it by.
type Job struct {
	ID      string // deterministic: derived from the row, so enqueueing twice is harmless
	Queue   string
	Type    string
	Payload []byte
	Opts    []asynq.Option
}

// Task builds the asynq task.
func (j Job) Task() *asynq.Task {
	opts := append([]asynq.Option{asynq.TaskID(j.ID), asynq.Queue(j.Queue)}, j.Opts...)
	return asynq.NewTask(j.Type, j.Payload, opts...)
}

// SMSSender sends text messages (Twilio, or the development outbox).
type SMSSender interface {
	SendSMS(ctx context.Context, m provider.SMS) (provider.Receipt, error)
	// ListSMS lists the texts the provider accepted from us to `to` since
	// a time, newest first, to find one we never recorded.
	ListSMS(ctx context.Context, to string, since time.Time) ([]provider.SentSMS, error)
}

// EmailSender sends email (Resend, or the development outbox).
type EmailSender interface {
	SendEmail(ctx context.Context, m provider.Email) (provider.Receipt, error)
}

// Deps are what handlers need; main wires them.
type Deps struct {
	Store      *db.Store
	Clock      clock.Clock
	Logger     *slog.Logger
	Metrics    *metrics.Metrics
	Dispatcher *Dispatcher
	SMS        SMSSender
	Email      EmailSender
	Retry      RetryPolicy
	Files      filestore.Store
	Pseudonyms *pseudonym.Hasher
	// Renderers write the text of messages of some kinds at send time
	// (kind → renderer); other kinds send their stored body.
	Renderers map[string]Renderer
	// StatusCallbackURL is where Twilio reports delivery status ("" = none).
	StatusCallbackURL string
	// ExportTTL is how long export files are kept (ERRAND_EXPORT_TTL; 0 = 7 days).
	ExportTTL time.Duration
	// Limits are the providers' rate limits, shared through Redis (nil = none).
	Limits *SendLimits
	// DeletionGrace is a cancelled tenant's grace period before its purge
	// (ERRAND_DELETION_GRACE; 0 = 90 days).
	DeletionGrace time.Duration
	// PurgeBatch is the rows per transaction of purges, erasures and the
	// retention sweep (ERRAND_PURGE_BATCH; 0 = 2000).
	PurgeBatch int
	// ArchivedTaskRetention is how long asynq's archived (given-up) tasks
	// are kept (ERRAND_ARCHIVED_TASK_RETENTION; 0 = 30 days).
	ArchivedTaskRetention time.Duration
}

// kind is one task type's handler and what to do when asynq gives up on it.
type kind struct {
	handler asynq.Handler
	// giveUp records on the row that the task will not run again (retries
	// exhausted or a permanent error), so nobody has to read Redis to know.
	giveUp func(ctx context.Context, payload []byte, err error) error
}

// kinds is the table of every task type Errand runs.
func kinds(d Deps) map[string]kind {
	send := NewMessageSend(d)
	credentialVerify := NewCredentialVerify(d)
	exportRun := NewExportRun(d)
	deletions := NewDeletions(d)
	importContacts := NewImportContacts(d)
	return map[string]kind{
		TypeMessageSend:  {handler: send, giveUp: send.GiveUp},
		TypeDispatchScan: {handler: &DispatchScan{Dispatcher: d.Dispatcher, Metrics: d.Metrics}},
		TypeWebhookPrune: {handler: &WebhookPrune{Store: d.Store, Clock: d.Clock}},
		// Verification checks.
		TypeCredentialVerify:      {handler: credentialVerify, giveUp: credentialVerify.GiveUp},
		TypeCredentialExpiryWatch: {handler: NewCredentialExpiryWatch(d)},
		// Exports and privacy requests.
		TypeExportRun:        {handler: exportRun, giveUp: exportRun.GiveUp},
		TypeExportExpire:     {handler: NewExportExpire(d)},
		TypePrivacyDeadlines: {handler: NewPrivacyDeadlines(d)},
		// Deletions and retention.
		TypeDeletionRun:    {handler: deletions},
		TypeDeletionScan:   {handler: deletionScan{deletions}},
		TypeRetentionSweep: {handler: NewRetentionSweep(d)},
		// Imports of client lists.
		TypeImportContacts: {handler: importContacts, giveUp: importContacts.GiveUp},
		TypeImportExpire:   {handler: NewImportExpire(d)},
	}
}

// Dispatchables lists the tables whose rows the dispatcher keeps in Redis.
func Dispatchables() []Dispatchable {
	return []Dispatchable{Messages{}, BulkMessages{}, Credentials{}, Exports{}, Imports{}}
}

// Register wires every kind into mux, wrapped with logging and metrics.
func Register(mux *asynq.ServeMux, d Deps) {
	mux.Use(observe(d))
	for typ, k := range kinds(d) {
		mux.Handle(typ, k.handler)
	}
}

// observe gives every run a logger context (task ID and type) and records
// its outcome and duration.
func observe(d Deps) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			id, _ := asynq.GetTaskID(ctx)
			ctx = logging.With(ctx, slog.String("job_id", id), slog.String("job_type", t.Type()))
			start := time.Now()
			err := next.ProcessTask(ctx, t)
			outcome := "succeeded"
			switch {
			case err == nil:
			case errors.Is(err, asynq.RevokeTask):
				outcome = "revoked"
			case errors.Is(err, ErrRateLimited):
				outcome = "rate_limited"
			case errors.Is(err, asynq.SkipRetry):
				outcome = "failed"
			default:
				outcome = "retry"
			}
			if d.Metrics != nil {
				d.Metrics.JobOutcomes.WithLabelValues(t.Type(), outcome).Inc()
				d.Metrics.JobDuration.WithLabelValues(t.Type()).Observe(time.Since(start).Seconds())
			}
			if err != nil && outcome != "rate_limited" {
				d.Logger.WarnContext(ctx, "job did not succeed", "outcome", outcome, "err", err)
			}
			return err
		})
	}
}

// errorHandler runs after every failed attempt; when asynq will not try
// again it lets the kind write the final state on its row.
func errorHandler(d Deps, ks map[string]kind) asynq.ErrorHandlerFunc {
	return func(ctx context.Context, t *asynq.Task, err error) {
		retried, _ := asynq.GetRetryCount(ctx)
		maxRetry, _ := asynq.GetMaxRetry(ctx)
		if errors.Is(err, asynq.RevokeTask) || (retried < maxRetry && !errors.Is(err, asynq.SkipRetry)) {
			return
		}
		id, _ := asynq.GetTaskID(ctx)
		ctx = logging.With(context.WithoutCancel(ctx), slog.String("job_id", id), slog.String("job_type", t.Type()))
		if d.Metrics != nil && !errors.Is(err, asynq.SkipRetry) {
			d.Metrics.JobOutcomes.WithLabelValues(t.Type(), "gave_up").Inc()
		}
		k, ok := ks[t.Type()]
		if !ok || k.giveUp == nil {
			return
		}
		if gerr := k.giveUp(ctx, t.Payload(), err); gerr != nil {
			d.Logger.ErrorContext(ctx, "could not record that a job gave up", "err", gerr)
		}
	}
}

// WorkerConfig sizes a worker process.
type WorkerConfig struct {
	Concurrency     int
	ShutdownTimeout time.Duration
	// TaskCheckInterval is how often idle workers poll Redis; lower means
	// lower enqueue→start latency for more Redis commands.
	TaskCheckInterval time.Duration
	// DelayedTaskCheckInterval is how often scheduled and retrying tasks
	// are moved to their queue when due (default one second).
	DelayedTaskCheckInterval time.Duration
}

// Worker is a worker process's task servers: a small one that serves only
// the critical queue and the main weighted one.
type Worker struct {
	servers []*asynq.Server
	mux     *asynq.ServeMux
	logger  *slog.Logger
	timeout time.Duration
}

// NewWorker builds the worker's servers on redis.
func NewWorker(redis asynq.RedisConnOpt, cfg WorkerConfig, d Deps) *Worker {
	ks := kinds(d)
	mux := asynq.NewServeMux()
	Register(mux, d)
	if cfg.DelayedTaskCheckInterval <= 0 {
		cfg.DelayedTaskCheckInterval = time.Second
	}
	critical := cfg.Concurrency / 5
	if critical < 2 {
		critical = 2
	}
	base := asynq.Config{
		ShutdownTimeout:          cfg.ShutdownTimeout,
		RetryDelayFunc:           d.Retry.RetryDelay,
		IsFailure:                isFailure,
		ErrorHandler:             errorHandler(d, ks),
		Logger:                   asynqLogger{d.Logger},
		LogLevel:                 asynq.WarnLevel,
		TaskCheckInterval:        cfg.TaskCheckInterval,
		DelayedTaskCheckInterval: cfg.DelayedTaskCheckInterval,
		BaseContext:              context.Background,
	}
	mainCfg := base
	mainCfg.Concurrency = cfg.Concurrency
	mainCfg.Queues = MainQueues
	critCfg := base
	critCfg.Concurrency = critical
	critCfg.Queues = map[string]int{QueueCritical: 1}
	return &Worker{servers: []*asynq.Server{
		asynq.NewServer(redis, critCfg),
		asynq.NewServer(redis, mainCfg),
	}, mux: mux, logger: d.Logger, timeout: cfg.ShutdownTimeout}
}

// Start begins processing.
func (w *Worker) Start() error {
	for _, s := range w.servers {
		if err := s.Start(w.mux); err != nil {
			return fmt.Errorf("start worker: %w", err)
		}
	}
	return nil
}

// Stop stops taking new tasks; running ones continue.
func (w *Worker) Stop() {
	for _, s := range w.servers {
		s.Stop()
	}
}

// Shutdown waits up to the shutdown timeout for running tasks, then hands
// the rest back to their queues.
func (w *Worker) Shutdown() {
	w.logger.Info("worker stopping: running jobs may finish", "timeout", w.timeout.String())
	for _, s := range w.servers {
		s.Shutdown()
	}
}

// decode reads a payload; a payload that cannot be read will never be
// readable, so it is a permanent failure.
func decode(t *asynq.Task, v any) error {
	if err := json.Unmarshal(t.Payload(), v); err != nil {
		return Permanent(fmt.Errorf("decode %s payload: %w", t.Type(), err))
	}
	return nil
}

// asynqLogger routes asynq's own log lines through slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Fatal(args ...any) {
	a.l.Error(fmt.Sprint(args...), "component", "asynq", "fatal", true)
}

// DefaultDeletionScanInterval is how often due deletions are looked for
// (ERRAND_DELETION_SCAN_INTERVAL): a purge whose grace ended, or one a
// crash interrupted, goes on within this.
const DefaultDeletionScanInterval = 15 * time.Minute

// Periodic lists the recurring tasks the scheduler enqueues
// (deletionScanEvery 0 = DefaultDeletionScanInterval).
func Periodic(dispatchEvery, deletionScanEvery time.Duration) []periodic.Entry {
	if deletionScanEvery <= 0 {
		deletionScanEvery = DefaultDeletionScanInterval
	}
	return []periodic.Entry{
		{Name: "dispatch", Every: dispatchEvery, Type: TypeDispatchScan, Queue: QueueMaintenance, Timeout: 5 * time.Minute},
		{Name: "webhook-prune", Every: time.Hour, Type: TypeWebhookPrune, Queue: QueueMaintenance, Timeout: 5 * time.Minute},
		{Name: "credential-expiry", Every: time.Hour, Type: TypeCredentialExpiryWatch, Queue: QueueMaintenance, Timeout: 10 * time.Minute},
		{Name: "export-expire", Every: 10 * time.Minute, Type: TypeExportExpire, Queue: QueueMaintenance, Timeout: 10 * time.Minute},
		{Name: "import-expire", Every: time.Hour, Type: TypeImportExpire, Queue: QueueMaintenance, Timeout: 10 * time.Minute},
		{Name: "privacy-deadlines", Every: 15 * time.Minute, Type: TypePrivacyDeadlines, Queue: QueueMaintenance, Timeout: 10 * time.Minute},
		// Purges whose grace period ended (and any a crash interrupted).
		{Name: "deletion-scan", Every: deletionScanEvery, Type: TypeDeletionScan, Queue: QueueMaintenance, Timeout: 2 * time.Hour},
		{Name: "retention-sweep", Every: 24 * time.Hour, Type: TypeRetentionSweep, Queue: QueueMaintenance, Timeout: 2 * time.Hour},
	}
}
