package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/export"
	"github.com/errandhq/errand/internal/filestore"
	"github.com/errandhq/errand/internal/logging"
	"github.com/errandhq/errand/internal/normalize"
	"github.com/errandhq/errand/internal/pseudonym"
)

// TypeExportRun builds one export's archive.
const TypeExportRun = "export:run"

// ExportRunPayload names the export; what it holds stays in PostgreSQL.
type ExportRunPayload struct {
	TenantID uuid.UUID `json:"tenant_id"`
	ExportID uuid.UUID `json:"export_id"`
}

// Export limits. An attempt proves it is alive with a heartbeat every
// exportHeartbeat, however slowly its rows come (and with each progress
// report); one silent for exportStale is presumed dead and the export is
// started again.
const (
	exportTimeout     = 2 * time.Hour
	exportMaxRetry    = 5
	exportHeartbeat   = 10 * time.Second
	exportStale       = 6 * exportHeartbeat
	maxExportAttempts = exportMaxRetry + 3
	exportResultKeep  = 24 * time.Hour
	exportBookkeeping = 15 * time.Second
	// exportFileKey is where an attempt stores its archive: tenant,
	// export, attempt.
	exportFileKey = "tenants/%s/exports/%s-%d.zip"
)

// DefaultExportTTL is how long export files are kept unless
// ERRAND_EXPORT_TTL says otherwise.
const DefaultExportTTL = 7 * 24 * time.Hour

// MaxActiveExports is how many unfinished exports a tenant may request at
// once through the API (those started by access requests are not limited).
const MaxActiveExports = 3

// NewExportRunJob describes the task of one export. Its result (progress,
// then size and checksum) is kept a day for asynqmon.
func NewExportRunJob(tenantID, exportID uuid.UUID) Job {
	payload, _ := json.Marshal(ExportRunPayload{TenantID: tenantID, ExportID: exportID})
	return Job{
		ID:      "export:" + exportID.String(),
		Queue:   QueueBulk,
		Type:    TypeExportRun,
		Payload: payload,
		Opts: []asynq.Option{asynq.MaxRetry(exportMaxRetry), asynq.Timeout(exportTimeout),
			asynq.Retention(exportResultKeep)},
	}
}

// ExportRun builds an export's zip and stores it.
//
// The row is claimed (running, attempts+1) before anything is written;
// attempts is the claim token every later write checks. The archive is
// read in one read-only snapshot and streamed into the file store under a
// key of its own attempt, where it appears only when complete (Commit).
// Then the row is marked succeeded, pointing at that file, by the attempt
// that still holds the claim; a superseded attempt deletes its file. A
// worker killed at any point leaves either no file or one nothing points
// at, and the next attempt starts from scratch.
type ExportRun struct {
	Store      *db.Store
	Clock      clock.Clock
	Logger     *slog.Logger
	Files      filestore.Store
	Pseudonyms *pseudonym.Hasher
	Retry      RetryPolicy
	// TTL is how long a finished export's file is kept (ERRAND_EXPORT_TTL).
	TTL      time.Duration
	Exporter *export.Exporter
	// Heartbeat is how often a running attempt proves it is alive
	// (exportHeartbeat; tests shorten it).
	Heartbeat time.Duration
}

// NewExportRun builds the handler from the shared dependencies.
func NewExportRun(d Deps) *ExportRun {
	ttl := d.ExportTTL
	if ttl <= 0 {
		ttl = DefaultExportTTL
	}
	return &ExportRun{Store: d.Store, Clock: d.Clock, Logger: d.Logger, Files: d.Files, Pseudonyms: d.Pseudonyms,
		Retry: d.Retry, TTL: ttl, Exporter: &export.Exporter{Sources: export.Sources(), Files: d.Files}}
}

// exportPlan is what the claim decided.
type exportPlan struct {
	exp     db.Export
	attempt int32
	contact *export.Contact
	done    bool
}

// errLostClaim stops an attempt whose claim another attempt took over.
var errLostClaim = errors.New("another attempt took over this export")

// ExportResult is the task's result as asynqmon shows it.
type ExportResult struct {
	Status    string `json:"status"`
	RowsDone  int64  `json:"rows_done"`
	RowsTotal int64  `json:"rows_total"`
	Progress  int32  `json:"progress"`
	Bytes     int64  `json:"bytes,omitempty"`
	SHA256    string `json:"sha256,omitempty"`
}

// ProcessTask implements asynq.Handler.
func (h *ExportRun) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p ExportRunPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	ctx = logging.With(ctx, slog.String("tenant_id", p.TenantID.String()), slog.String("export_id", p.ExportID.String()))
	plan, err := h.claim(ctx, p)
	if err != nil || plan.done {
		return err
	}
	return h.run(ctx, t, plan)
}

func (h *ExportRun) claim(ctx context.Context, p ExportRunPayload) (exportPlan, error) {
	var plan exportPlan
	var failure string
	err := h.Store.InTenant(ctx, p.TenantID, func(q *db.Queries) error {
		e, err := q.ExportLock(ctx, db.ExportLockParams{TenantID: p.TenantID, ID: p.ExportID})
		if db.IsNotFound(err) {
			plan.done = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock export: %w", err)
		}
		now := h.Clock.Now()
		plan.exp = e
		switch e.Status {
		case "queued":
			if e.DueAt.After(now.Add(earlyTolerance)) {
				plan.done = true // early: the dispatcher enqueues it again when due
				return q.ExportDefer(ctx, db.ExportDeferParams{TenantID: e.TenantID, ID: e.ID, Now: now})
			}
		case "running":
			if e.HeartbeatAt != nil && now.Sub(*e.HeartbeatAt) < exportStale {
				return Retry(errors.New("another worker is running this export"), exportStale-now.Sub(*e.HeartbeatAt))
			}
			h.Logger.WarnContext(ctx, "earlier export attempt went silent; starting again", "attempt", e.Attempts)
		default:
			plan.done = true // succeeded, failed, expired
			return nil
		}
		if e.Attempts >= maxExportAttempts {
			failure = fmt.Sprintf("gave up after %d attempts", e.Attempts)
			return nil
		}
		if e.Scope == string(export.ScopeContact) {
			c, err := h.contact(ctx, q, e)
			if err != nil {
				return err
			}
			if c == nil {
				failure = "the contact was deleted before the export ran"
				return nil
			}
			plan.contact = c
		}
		plan.attempt, err = q.ExportClaim(ctx, db.ExportClaimParams{TenantID: e.TenantID, ID: e.ID, Now: now})
		return err
	})
	if err != nil {
		return plan, err
	}
	if failure != "" {
		plan.done = true
		return plan, h.fail(ctx, plan.exp, failure, Permanent(errors.New(failure)))
	}
	return plan, nil
}

// contact is the person of a contact export, with the pseudonyms their
// opt-out records are kept under; nil when they no longer exist.
func (h *ExportRun) contact(ctx context.Context, q *db.Queries, e db.Export) (*export.Contact, error) {
	if e.ContactID == nil {
		return nil, nil
	}
	c, err := q.ContactGet(ctx, db.ContactGetParams{TenantID: e.TenantID, ID: *e.ContactID})
	if db.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load contact: %w", err)
	}
	out := &export.Contact{ID: c.ID, ExternalID: c.ExternalID}
	if c.Phone != nil {
		out.SMSHash = h.Pseudonyms.Address("sms", *c.Phone)
		out.PhoneDigits = normalize.PhoneDigits(*c.Phone)
	}
	if c.Email != nil {
		out.EmailHash = h.Pseudonyms.Address("email", *c.Email)
	}
	return out, nil
}

// run builds, stores and records the archive.
func (h *ExportRun) run(ctx context.Context, t *asynq.Task, plan exportPlan) error {
	e := plan.exp
	key := fmt.Sprintf(exportFileKey, e.TenantID, e.ID, plan.attempt)
	// The file is written under the attempt's context: losing the claim
	// also stops a write stuck in a slow store.
	ctx, lose := context.WithCancelCause(ctx)
	defer lose(nil)
	w, err := h.Files.Create(ctx, key)
	if err != nil {
		return h.retryLater(ctx, plan, fmt.Errorf("create export file: %w", err))
	}
	defer h.keepAlive(ctx, plan, lose)()
	req := export.Request{ExportID: e.ID, TenantID: e.TenantID, Scope: export.Scope(e.Scope),
		Format: export.Format(e.Format), Contact: plan.contact, GeneratedAt: h.Clock.Now()}
	progress := func(p export.Progress) error { return h.progress(ctx, t, plan, p) }
	var manifest export.Manifest
	err = h.Store.InTenantTx(ctx, e.TenantID, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) (err error) {
			manifest, err = h.Exporter.Write(ctx, tx, req, w, progress)
			return err
		})
	if err != nil {
		w.Abort() //nolint:errcheck // nothing was published
		if errors.Is(err, errLostClaim) || errors.Is(context.Cause(ctx), errLostClaim) {
			h.Logger.WarnContext(ctx, "export attempt superseded; stopping", "attempt", plan.attempt)
			return nil
		}
		return h.retryLater(ctx, plan, err)
	}
	info, err := w.Commit()
	if err != nil {
		return h.retryLater(ctx, plan, fmt.Errorf("store export file: %w", err))
	}

	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), exportBookkeeping)
	defer cancel()
	now := h.Clock.Now()
	rows := manifest.Rows()
	var won bool
	err = h.Store.InTenant(bg, e.TenantID, func(q *db.Queries) error {
		done, err := q.ExportMarkSucceeded(bg, db.ExportMarkSucceededParams{TenantID: e.TenantID, ID: e.ID,
			Attempt: plan.attempt, FileKey: &key, Bytes: &info.Size, Sha256: &info.SHA256, RowsDone: rows,
			Now: now, FileExpiresAt: now.Add(h.TTL)})
		if db.IsNotFound(err) {
			return nil // superseded
		}
		if err != nil {
			return err
		}
		won = true
		if done.PrivacyRequestID != nil {
			return privacyExportDone(bg, q, e.TenantID, *done.PrivacyRequestID, e.ID, "", now)
		}
		return nil
	})
	if err != nil {
		h.Files.Delete(bg, key) //nolint:errcheck // the next attempt writes its own
		return h.retryLater(ctx, plan, fmt.Errorf("record finished export: %w", err))
	}
	if !won {
		h.Logger.WarnContext(ctx, "export attempt superseded after writing its file; discarding it", "attempt", plan.attempt)
		return h.Files.Delete(bg, key)
	}
	// Files an earlier attempt committed before it died unrecorded.
	if err := deleteExportFiles(bg, h.Files, e.TenantID, e.ID, plan.attempt-1); err != nil {
		h.Logger.WarnContext(ctx, "could not delete an earlier attempt's file; the expiry sweep will", "err", err)
	}
	writeResult(t, ExportResult{Status: "succeeded", RowsDone: rows, RowsTotal: rows, Progress: 100, Bytes: info.Size, SHA256: info.SHA256})
	h.Logger.InfoContext(ctx, "export ready", "rows", rows, "bytes", info.Size, "files", len(manifest.Files))
	return nil
}

// keepAlive beats the attempt's heartbeat every exportHeartbeat until the
// returned stop is called, so a live attempt is never taken for dead
// while PostgreSQL is slow to hand it rows; when another attempt has taken
// the claim, it cancels this one with errLostClaim.
func (h *ExportRun) keepAlive(ctx context.Context, plan exportPlan, lose context.CancelCauseFunc) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		every := h.Heartbeat
		if every <= 0 {
			every = exportHeartbeat
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var n int64
			err := h.Store.InTenant(ctx, plan.exp.TenantID, func(q *db.Queries) (err error) {
				n, err = q.ExportHeartbeat(ctx, db.ExportHeartbeatParams{TenantID: plan.exp.TenantID, ID: plan.exp.ID,
					Attempt: plan.attempt, Now: h.Clock.Now()})
				return err
			})
			if err == nil && n == 0 {
				lose(errLostClaim)
				return
			}
			// A failed beat is tried again at the next tick; the progress
			// reports beat too.
		}
	}()
	return func() { close(done); <-finished }
}

// progress records how far the attempt has come, which is also a
// heartbeat, on the row and as the task's result.
func (h *ExportRun) progress(ctx context.Context, t *asynq.Task, plan exportPlan, p export.Progress) error {
	var n int64
	err := h.Store.InTenant(ctx, plan.exp.TenantID, func(q *db.Queries) (err error) {
		n, err = q.ExportProgress(ctx, db.ExportProgressParams{TenantID: plan.exp.TenantID, ID: plan.exp.ID,
			Attempt: plan.attempt, RowsDone: p.RowsDone, RowsTotal: p.RowsTotal, Now: h.Clock.Now()})
		return err
	})
	if err != nil {
		return fmt.Errorf("record export progress: %w", err)
	}
	if n == 0 {
		return errLostClaim
	}
	writeResult(t, ExportResult{Status: "running", RowsDone: p.RowsDone, RowsTotal: p.RowsTotal,
		Progress: ExportPercent(p.RowsDone, p.RowsTotal)})
	return nil
}

// ExportPercent is progress as a whole percentage, 0 to 100, the scale
// imports report on too. It reaches 100 only when the export is done.
func ExportPercent(done, total int64) int32 {
	if total <= 0 {
		return 0
	}
	return int32(min(done*100/total, 99))
}

func writeResult(t *asynq.Task, r ExportResult) {
	if w := t.ResultWriter(); w != nil {
		out, _ := json.Marshal(r)
		w.Write(out) //nolint:errcheck // the result is informational
	}
}

// retryLater records a transient failure on the row and tells asynq when
// to try again. A stopped worker (cancelled context) is recorded too, so
// the next attempt need not wait for the heartbeat to go stale.
func (h *ExportRun) retryLater(ctx context.Context, plan exportPlan, cause error) error {
	delay := h.Retry.Delay(int(plan.attempt))
	reason := exportReason(cause) + "; retrying"
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), exportBookkeeping)
	defer cancel()
	now := h.Clock.Now()
	err := h.Store.InTenant(bg, plan.exp.TenantID, func(q *db.Queries) error {
		return q.ExportRetryLater(bg, db.ExportRetryLaterParams{TenantID: plan.exp.TenantID, ID: plan.exp.ID,
			Attempt: plan.attempt, DueAt: now.Add(delay), Error: &reason, Now: now})
	})
	if err != nil {
		h.Logger.ErrorContext(ctx, "could not record export retry", "err", err)
	}
	h.Logger.WarnContext(ctx, "export attempt failed; will retry", "attempt", plan.attempt, "reason", reason, "err", cause)
	return Retry(fmt.Errorf("export attempt %d: %w", plan.attempt, cause), delay)
}

// exportReason says why an attempt failed in words fit for the row (which
// the tenant reads): the kind of failure, not its internals.
func exportReason(err error) string {
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "interrupted (the worker stopped or the attempt timed out)"
	case errors.As(err, &pgErr):
		return "database error " + pgErr.Code
	case errors.Is(err, filestore.ErrCorrupt), errors.Is(err, filestore.ErrNotFound):
		return "a stored document could not be read"
	}
	return "temporary failure"
}

// fail ends the export, and sends the access request it fulfils back to
// received.
func (h *ExportRun) fail(ctx context.Context, e db.Export, reason string, ret error) error {
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), exportBookkeeping)
	defer cancel()
	now := h.Clock.Now()
	var failed db.Export
	err := h.Store.InTenant(bg, e.TenantID, func(q *db.Queries) (err error) {
		failed, err = q.ExportFail(bg, db.ExportFailParams{TenantID: e.TenantID, ID: e.ID, Error: &reason, Now: now})
		if db.IsNotFound(err) {
			return nil // already finished
		}
		if err != nil {
			return err
		}
		if failed.PrivacyRequestID != nil {
			return privacyExportDone(bg, q, e.TenantID, *failed.PrivacyRequestID, e.ID, reason, now)
		}
		return nil
	})
	if err != nil {
		return Retry(fmt.Errorf("record failed export: %w", err), h.Retry.Delay(1))
	}
	// Whatever an attempt committed before dying is no one's now.
	if err := deleteExportFiles(bg, h.Files, e.TenantID, e.ID, failed.Attempts); err != nil {
		h.Logger.WarnContext(ctx, "could not delete a failed export's files", "err", err)
	}
	h.Logger.WarnContext(ctx, "export failed", "reason", reason)
	return ret
}

// GiveUp marks the export failed when asynq stops retrying it.
func (h *ExportRun) GiveUp(ctx context.Context, payload []byte, cause error) error {
	var p ExportRunPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil
	}
	reason := "gave up after repeated failures; the last: " + exportReason(cause)
	return h.fail(ctx, db.Export{TenantID: p.TenantID, ID: p.ExportID}, reason, nil)
}

// Exports is the exports table as the dispatcher sees it.
type Exports struct{}

// Name implements Dispatchable.
func (Exports) Name() string { return "export" }

// Job implements Dispatchable.
func (Exports) Job(ref Ref) (Job, error) { return NewExportRunJob(ref.TenantID, ref.ID), nil }

// Undispatched implements Dispatchable.
func (Exports) Undispatched(ctx context.Context, q *db.Queries, until time.Time, limit int32) ([]Ref, error) {
	rows, err := q.ExportListUndispatched(ctx, db.ExportListUndispatchedParams{Until: until, MaxRows: limit})
	if err != nil {
		return nil, err
	}
	refs := make([]Ref, len(rows))
	for i, r := range rows {
		refs[i] = Ref{TenantID: r.TenantID, ID: r.ID, DueAt: r.DueAt}
	}
	return refs, nil
}

// Stalled implements Dispatchable: queued and overdue, or running with a
// heartbeat older than any live attempt leaves.
func (Exports) Stalled(ctx context.Context, q *db.Queries, now time.Time, limit int32) ([]Ref, error) {
	rows, err := q.ExportListStalled(ctx, db.ExportListStalledParams{OverdueBefore: now.Add(-stallGrace),
		CheckedBefore: now.Add(-stallRecheck), StaleBefore: now.Add(-exportStale), MaxRows: limit})
	if err != nil {
		return nil, err
	}
	refs := make([]Ref, len(rows))
	for i, r := range rows {
		refs[i] = Ref{TenantID: r.TenantID, ID: r.ID, DueAt: r.DueAt}
	}
	return refs, nil
}

// MarkEnqueued implements Dispatchable.
func (Exports) MarkEnqueued(ctx context.Context, q *db.Queries, ids []uuid.UUID, now time.Time) error {
	return q.ExportMarkEnqueued(ctx, db.ExportMarkEnqueuedParams{Ids: ids, Now: now})
}

// ForgetEnqueued implements Dispatchable.
func (Exports) ForgetEnqueued(ctx context.Context, q *db.Queries) (int64, error) {
	return q.ExportForgetEnqueued(ctx)
}

// NewExport is an export to create.
type NewExport struct {
	TenantID         uuid.UUID
	Scope            string // tenant, contact
	ContactID        *uuid.UUID
	Format           string // csv, json
	PrivacyRequestID *uuid.UUID
}

// InsertExport writes an export row inside the caller's transaction,
// marked enqueued; the caller hands it to EnqueueExport after commit.
func (d *Dispatcher) InsertExport(ctx context.Context, q *db.Queries, e NewExport) (db.Export, error) {
	now := d.Clock.Now()
	return q.ExportCreate(ctx, db.ExportCreateParams{TenantID: e.TenantID, Scope: e.Scope, ContactID: e.ContactID,
		Format: e.Format, PrivacyRequestID: e.PrivacyRequestID, Now: now, EnqueuedAt: &now})
}

// EnqueueExport puts a freshly committed export into Redis. When Redis
// refuses, the mark is cleared so the due-scan picks it up; the request
// still succeeds, because PostgreSQL has it.
func (d *Dispatcher) EnqueueExport(ctx context.Context, e db.Export) {
	if err := d.Enqueue(ctx, Exports{}, Ref{TenantID: e.TenantID, ID: e.ID, DueAt: e.DueAt}); err != nil {
		d.Logger.WarnContext(ctx, "enqueue deferred to the due-scan", "export_id", e.ID, "err", err)
		uerr := d.Store.InTenant(ctx, e.TenantID, func(q *db.Queries) error {
			return q.ExportUnmarkEnqueued(ctx, db.ExportUnmarkEnqueuedParams{TenantID: e.TenantID, ID: e.ID})
		})
		if uerr != nil {
			d.Logger.ErrorContext(ctx, "could not unmark export; the stalled scan will recover it", "export_id", e.ID, "err", uerr)
		}
	}
}
