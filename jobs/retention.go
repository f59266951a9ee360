package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
)

// TypeRetentionSweep is the daily sweep that applies the retention
// policies (db/migrations/0050_deletions.sql seeds them): whatever is
// older than its policy allows is deleted (or anonymised) in batches,
// skipping data under a legal hold, and each policy's count is recorded
// in retention_runs. It also trims asynq's archive in Redis.
const TypeRetentionSweep = "maintenance:retention_sweep"

// DefaultArchivedTaskRetention is how long asynq keeps a task that gave up
// (its archive, shown in the console for ops to retry or inspect). asynq's
// own limit is 90 days or 10,000 tasks; Errand keeps them 30 days. Task
// payloads hold IDs only, but nothing should linger longer than needed.
// Completed tasks are kept only where a kind asks (asynq.Retention: export
// results a day, periodic tasks two periods; everything else not at all).
const DefaultArchivedTaskRetention = 30 * 24 * time.Hour

// retentionTarget is where one policy applies: the table, its time
// column, and what "anonymise" means for it ("" = it has no personal
// fields to strip, so anonymise deletes, the stricter reading).
type retentionTarget struct {
	what      string
	table     string
	timeCol   string
	contactOK bool // the table has contact_id (a held person's rows are skipped)
	anonymise string
	// extra narrows what the policy may touch.
	extra string
}

// retentionTargets lists what each policy governs. A new kind of retained
// record is one line here and one CHECK value in retention_policies.what.
var retentionTargets = []retentionTarget{
	{what: "message_logs", table: "messages", timeCol: "created_at", contactOK: true,
		anonymise: messagesAnonymiseSystem,
		// Only finished messages: never one still to send.
		extra: "status NOT IN ('scheduled', 'queued', 'sending')"},
	{what: "opt_out_records", table: "suppression_events", timeCol: "occurred_at"},
	// A purged tenant's suppression list is kept as long as its opt-out
	// records; a live tenant's is the opt-out itself and never expires.
	{what: "opt_out_records", table: "suppressions", timeCol: "created_at",
		extra: "tenant_id IN (SELECT id FROM tenants WHERE purged_at IS NOT NULL)"},
	{what: "billing_records", table: "billing_records", timeCol: "occurred_at"},
	{what: "security_logs", table: "security_events", timeCol: "occurred_at"},
}

const messagesAnonymiseSystem = `body = '', subject = NULL, destination = NULL, error = NULL, contact_id = NULL,
	appointment_id = NULL, location_id = NULL, batch_id = NULL`

// RetentionSweep applies the retention policies.
type RetentionSweep struct {
	Store     *db.Store
	Clock     clock.Clock
	Logger    *slog.Logger
	Inspector *asynq.Inspector
	Batch     int
	// ArchivedTasks is how long asynq's archived tasks are kept (0 = 30 days).
	ArchivedTasks time.Duration
}

// NewRetentionSweep builds the sweep from the shared dependencies.
func NewRetentionSweep(d Deps) *RetentionSweep {
	r := &RetentionSweep{Store: d.Store, Clock: d.Clock, Logger: d.Logger, Batch: d.PurgeBatch,
		ArchivedTasks: d.ArchivedTaskRetention}
	if d.Dispatcher != nil {
		r.Inspector = d.Dispatcher.Inspector
	}
	return r
}

// ProcessTask implements asynq.Handler; the counts are the task's result.
func (h *RetentionSweep) ProcessTask(ctx context.Context, t *asynq.Task) error {
	counts, err := h.Sweep(ctx)
	if w := t.ResultWriter(); w != nil {
		out, _ := json.Marshal(counts)
		w.Write(out) //nolint:errcheck // informational
	}
	return err
}

// Sweep applies every policy once and returns what it removed per
// table ("<table>" or "<table>:anonymised", and "asynq_archived").
func (h *RetentionSweep) Sweep(ctx context.Context) (map[string]int64, error) {
	batch := h.Batch
	if batch <= 0 {
		batch = 2000
	}
	now := h.Clock.Now()
	counts := map[string]int64{}
	var policies []db.RetentionCutoffsRow
	err := h.Store.AsSystem(ctx, func(q *db.Queries) (err error) {
		policies, err = q.RetentionCutoffs(ctx, now)
		return err
	})
	if err != nil {
		return counts, fmt.Errorf("read retention policies: %w", err)
	}
	defaults := map[string]db.RetentionCutoffsRow{}
	overrides := map[string][]db.RetentionCutoffsRow{}
	for _, p := range policies {
		if p.TenantID == nil {
			defaults[p.What] = p
		} else {
			overrides[p.What] = append(overrides[p.What], p)
		}
	}
	record := func(tg retentionTarget, action string, n int64) error {
		if n == 0 {
			return nil
		}
		return h.Store.AsSystem(ctx, func(q *db.Queries) error {
			return q.RetentionRunRecord(ctx, db.RetentionRunRecordParams{RanAt: now, What: tg.what + ":" + tg.table,
				Action: action, Rows: n})
		})
	}
	for _, tg := range retentionTargets {
		p, ok := defaults[tg.what]
		if !ok {
			continue
		}
		// The default's cutoff and action for every tenant (an override
		// is stricter, so this is within its policy too), then each
		// override's own cutoff and action for its tenant (it may delete
		// where the default anonymises).
		n, key, err := h.apply(ctx, tg, p.Action, p.Cutoff, nil, batch)
		counts[key] += n
		if err != nil {
			return counts, err
		}
		if err := record(tg, p.Action, n); err != nil {
			return counts, err
		}
		for _, o := range overrides[tg.what] {
			n, key, err := h.apply(ctx, tg, o.Action, o.Cutoff, o.TenantID, batch)
			counts[key] += n
			if err != nil {
				return counts, err
			}
			if err := record(tg, o.Action, n); err != nil {
				return counts, err
			}
		}
	}
	n, err := h.trimArchive(ctx, now)
	counts["asynq_archived"] = int64(n)
	if err != nil {
		return counts, err
	}
	h.Logger.InfoContext(ctx, "retention sweep done", "counts", counts)
	return counts, nil
}

// apply runs one target with one action and cutoff to the end, for every
// tenant or (tenant set) one. Rows of held tenants and held people are
// skipped.
func (h *RetentionSweep) apply(ctx context.Context, tg retentionTarget, action string, cutoff time.Time,
	tenant *uuid.UUID, batch int) (int64, string, error) {
	key := tg.table
	anonymise := action == "anonymise" && tg.anonymise != ""
	if anonymise {
		key += ":anonymised"
	}
	held := `NOT EXISTS (SELECT FROM legal_holds h WHERE h.tenant_id = x.tenant_id AND h.released_at IS NULL`
	if tg.contactOK {
		// A person's hold keeps the messages linked to them and those
		// addressed to them without a link.
		held += ` AND (h.contact_id IS NULL OR h.contact_id = x.contact_id OR x.destination IN (
			SELECT a FROM contacts c, unnest(ARRAY[c.phone, c.email, lower(c.email)]) a
			WHERE c.tenant_id = h.tenant_id AND c.id = h.contact_id)))`
	} else {
		// Records with no person on them (opt-out records hold only a
		// keyed hash of an address, which the sweep cannot attribute to
		// anyone), billing and security logs: any live hold on the
		// tenant, a person's included, keeps them all.
		held += `)`
	}
	where := fmt.Sprintf("x.%s < $1 AND %s", pgx.Identifier{tg.timeCol}.Sanitize(), held)
	if tg.extra != "" {
		where += " AND (" + tg.extra + ")"
	}
	if anonymise {
		where += " AND (x.body <> '' OR x.destination IS NOT NULL OR x.contact_id IS NOT NULL)"
	}
	args := []any{cutoff, batch}
	if tenant != nil {
		where += " AND x.tenant_id = $3"
		args = append(args, *tenant)
	}
	table := pgx.Identifier{tg.table}.Sanitize()
	var sql string
	if anonymise {
		sql = fmt.Sprintf("UPDATE %s SET %s WHERE ctid = ANY(ARRAY(SELECT x.ctid FROM %s x WHERE %s LIMIT $2))",
			table, tg.anonymise, table, where)
	} else {
		sql = fmt.Sprintf("DELETE FROM %s WHERE ctid = ANY(ARRAY(SELECT x.ctid FROM %s x WHERE %s LIMIT $2))", table, table, where)
	}
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, key, err
		}
		var n int64
		err := h.Store.AsSystemTx(ctx, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, sql, args...)
			n = tag.RowsAffected()
			return err
		})
		total += n
		if err != nil {
			return total, key, fmt.Errorf("retention %s: %w", tg.table, err)
		}
		if n < int64(batch) {
			return total, key, nil
		}
	}
}

// trimArchive deletes asynq's archived tasks older than the retention.
func (h *RetentionSweep) trimArchive(ctx context.Context, now time.Time) (int, error) {
	if h.Inspector == nil {
		return 0, nil
	}
	keep := h.ArchivedTasks
	if keep <= 0 {
		keep = DefaultArchivedTaskRetention
	}
	cutoff := now.Add(-keep)
	queues, err := h.Inspector.Queues()
	if err != nil {
		return 0, fmt.Errorf("list queues: %w", err)
	}
	n := 0
	for _, q := range queues {
		for page := 1; ; page++ {
			tasks, err := h.Inspector.ListArchivedTasks(q, asynq.PageSize(500), asynq.Page(page))
			if err != nil {
				return n, fmt.Errorf("list archived tasks: %w", err)
			}
			deleted := 0
			for _, t := range tasks {
				// A task archived by hand has no failure time: asynq's
				// own limit (90 days) applies to it.
				if !t.LastFailedAt.IsZero() && t.LastFailedAt.Before(cutoff) {
					if err := h.Inspector.DeleteTask(q, t.ID); err == nil {
						n++
						deleted++
					}
				}
			}
			if len(tasks) < 500 {
				break
			}
			if deleted > 0 {
				page-- // the page moved up under us
			}
		}
	}
	return n, nil
}
