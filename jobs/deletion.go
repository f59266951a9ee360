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

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/filestore"
	"github.com/errandhq/errand/internal/pseudonym"
)

// Deletions (db/migrations/0050_deletions.sql draws the state machine):
// a tenant's cancellation with a 90-day grace period, restore, the purge
// that follows, and the erasure of one person. The purge and the erasure
// are lists of steps (purge.go); each step runs in bounded batches, one
// short transaction per batch, and the batch's count is added to the
// deletion's certificate in that same transaction, so a crash anywhere
// loses at most one uncommitted batch and a re-run counts nothing twice.

// Deletion scopes and states.
const (
	DeletionScopeTenant  = "tenant"
	DeletionScopeContact = "contact"

	DeletionScheduled = "scheduled"
	DeletionRunning   = "running"
	DeletionCompleted = "completed"
	DeletionCancelled = "cancelled"

	// Reasons: a word, never free text (the certificate outlives the
	// data and must not carry it). DeletionReasonMinor marks a child's
	// data: erased first, with no retention exception beyond the law's.
	DeletionReasonRequest        = "request"
	DeletionReasonMinor          = "minor"
	DeletionReasonPrivacyRequest = "privacy_request"
	DeletionReasonOther          = "other"
)

// DeletionReasons are the reasons a client may give.
var DeletionReasons = []string{DeletionReasonRequest, DeletionReasonMinor, DeletionReasonOther}

// DefaultDeletionGrace is how long a cancelled tenant's data is kept in
// case it changes its mind ("a soft-deleted copy for 90 days").
const DefaultDeletionGrace = 90 * 24 * time.Hour

// PrivacyPurgeMargin is how long before a privacy request's due_at the
// purge of a tenant deletion it started is scheduled: a day leaves room
// for the scan (every 15 minutes) and the purge itself to finish before
// the deadline ("we will delete … within 30 days" beats the 90-day grace).
const PrivacyPurgeMargin = 24 * time.Hour

// Task types.
const (
	TypeDeletionRun  = "maintenance:deletion_run"
	TypeDeletionScan = "maintenance:deletion_scan"
)

// ErrDeletionHeld says a legal hold stops a deletion; the deletion row
// says which and since when.
var ErrDeletionHeld = errors.New("deletion waits for a legal hold")

// Deletions is the deletion service: the intake starts and cancels
// deletions through it, and its handlers run them.
type Deletions struct {
	Store      *db.Store
	Clock      clock.Clock
	Logger     *slog.Logger
	Files      filestore.Store
	Pseudonyms *pseudonym.Hasher
	Dispatcher *Dispatcher
	// Client enqueues deletion runs (nil: the periodic scan finds them).
	Client *asynq.Client
	// Grace is the cancelled tenant's grace period (0 = 90 days).
	Grace time.Duration
	// Batch is the rows per transaction (0 = 2000).
	Batch int
	// OnBatch, when set, runs after every committed batch (tests use it
	// to stop a purge half-way, as a crash would).
	OnBatch func()
	// ScanPage is how many due deletions the scan reads at a time (0 = 100).
	ScanPage int
}

// NewDeletions builds the service from the shared dependencies.
func NewDeletions(d Deps) *Deletions {
	return &Deletions{Store: d.Store, Clock: d.Clock, Logger: d.Logger, Files: d.Files, Pseudonyms: d.Pseudonyms,
		Dispatcher: d.Dispatcher, Grace: d.DeletionGrace, Batch: d.PurgeBatch}
}

func (s *Deletions) grace() time.Duration {
	if s.Grace <= 0 {
		return DefaultDeletionGrace
	}
	return s.Grace
}

func (s *Deletions) batch() int {
	if s.Batch <= 0 {
		return 2000
	}
	return s.Batch
}

// ErrTenantAlreadyCancelled: a tenant deletion is already under way.
var ErrTenantAlreadyCancelled = errors.New("this tenant already has a deletion under way")

// Start records a deletion. Tenant scope cancels the tenant at once
// (its keys are refused from the same commit on), cancels its pending
// messages and schedules the purge after the grace period. Contact scope
// is due at once and is handed to a worker straight away.
func (s *Deletions) Start(ctx context.Context, tenantID uuid.UUID, scope string, contactID *uuid.UUID, reason string,
	privacyRequestID *uuid.UUID) (db.Deletion, error) {
	now := s.Clock.Now()
	if reason == "" {
		reason = DeletionReasonRequest
	}
	minor := reason == DeletionReasonMinor
	purgeAfter := now
	var d db.Deletion
	var cancelled []db.MessageCancelForDeletionRow
	err := s.Store.InTenant(ctx, tenantID, func(q *db.Queries) error {
		if scope == DeletionScopeTenant {
			// The platform's grace, or the tenant's own (a platform that
			// deletes within 30 days keeps a cancelled account less).
			grace := s.grace()
			st, err := q.PrivacySettingsGet(ctx, tenantID)
			switch {
			case err == nil && st.DeletionGraceDays != nil:
				grace = time.Duration(*st.DeletionGraceDays) * 24 * time.Hour
			case err != nil && !db.IsNotFound(err):
				return err
			}
			purgeAfter = now.Add(grace)
		}
		if scope == DeletionScopeTenant && privacyRequestID != nil {
			// A privacy request's deletion is due by the request's
			// deadline ("within 30 days"), which comes before the end of
			// the 90-day grace: the grace is shortened to fit.
			pr, err := q.PrivacyRequestGet(ctx, db.PrivacyRequestGetParams{TenantID: tenantID, ID: *privacyRequestID})
			if err != nil {
				return err
			}
			if by := pr.PrivacyRequest.DueAt.Add(-PrivacyPurgeMargin); by.Before(purgeAfter) {
				purgeAfter = by
			}
			if purgeAfter.Before(now) {
				purgeAfter = now
			}
		}
		if scope == DeletionScopeTenant {
			if _, err := q.TenantCancel(ctx, db.TenantCancelParams{Now: &now, ID: tenantID}); db.IsNotFound(err) {
				return ErrTenantAlreadyCancelled
			} else if err != nil {
				return err
			}
		}
		var err error
		d, err = q.DeletionCreate(ctx, db.DeletionCreateParams{TenantID: tenantID, Scope: scope, ContactID: contactID,
			Reason: reason, Minor: minor, PurgeAfter: purgeAfter, PrivacyRequestID: privacyRequestID, Now: now})
		if db.IsUniqueViolation(err) {
			return ErrTenantAlreadyCancelled
		}
		if err != nil || scope != DeletionScopeTenant {
			return err
		}
		// Pending messages stop with the tenant, in batches within this
		// transaction: the cancellation is all or nothing.
		for {
			rows, err := q.MessageCancelForDeletion(ctx, db.MessageCancelForDeletionParams{DeletionID: &d.ID,
				Now: now, TenantID: tenantID, MaxRows: int32(s.batch())})
			if err != nil {
				return err
			}
			cancelled = append(cancelled, rows...)
			if len(rows) < s.batch() {
				return nil
			}
		}
	})
	if err != nil {
		return d, err
	}
	if s.Dispatcher != nil {
		for _, m := range cancelled {
			if m.Status == "cancelled" { // a claimed one keeps its task, which settles it
				s.Dispatcher.ForgetMessage(db.Message{ID: m.ID, TenantID: m.TenantID, Kind: m.Kind})
			}
		}
	}
	if scope == DeletionScopeContact {
		s.enqueue(ctx, d)
	}
	s.Logger.InfoContext(ctx, "deletion started", "deletion_id", d.ID, "tenant_id", tenantID, "scope", scope,
		"minor", minor, "messages_cancelled", len(cancelled))
	return d, nil
}

// StartDeletion implements intake.DeletionStarter for approved privacy
// requests (reason "privacy_request"; the request's ID is on the row).
func (s *Deletions) StartDeletion(ctx context.Context, tenantID uuid.UUID, scope string, contactID *uuid.UUID,
	privacyRequestID uuid.UUID) (uuid.UUID, error) {
	d, err := s.Start(ctx, tenantID, scope, contactID, DeletionReasonPrivacyRequest, &privacyRequestID)
	return d.ID, err
}

// Restored is what a restore brought back.
type Restored struct {
	Deletion db.Deletion
	// Messages are the pending messages scheduled again; Expired those
	// whose time passed while the tenant was cancelled (not restored).
	Messages, Expired int64
}

// ErrNotRestorable: the deletion is past its grace period, running,
// done, or erases a person (which cannot be undone).
var ErrNotRestorable = errors.New("this deletion can no longer be cancelled")

// Cancel undoes a tenant deletion during its grace period: the tenant and
// its keys work again, and its cancelled messages whose time has not come
// are scheduled again. Messages whose time passed are not sent late.
func (s *Deletions) Cancel(ctx context.Context, tenantID, id uuid.UUID) (Restored, error) {
	now := s.Clock.Now()
	var out Restored
	err := s.Store.InTenant(ctx, tenantID, func(q *db.Queries) error {
		d, err := q.DeletionLock(ctx, db.DeletionLockParams{TenantID: tenantID, ID: id})
		if err != nil {
			return err
		}
		if d.Scope != DeletionScopeTenant || d.Status != DeletionScheduled || !now.Before(d.PurgeAfter) {
			return ErrNotRestorable
		}
		if _, err := q.TenantRestore(ctx, db.TenantRestoreParams{Now: now, ID: tenantID}); err != nil {
			return err
		}
		out.Messages, err = q.MessageRestoreForDeletion(ctx, db.MessageRestoreForDeletionParams{Now: now,
			TenantID: tenantID, DeletionID: &d.ID})
		if err != nil {
			return err
		}
		if err := q.MessageResumeForDeletion(ctx, db.MessageResumeForDeletionParams{Now: now,
			TenantID: tenantID, DeletionID: &d.ID}); err != nil {
			return err
		}
		out.Expired, err = q.MessageCountForDeletion(ctx, db.MessageCountForDeletionParams{TenantID: tenantID, DeletionID: &d.ID})
		if err != nil {
			return err
		}
		out.Deletion, err = q.DeletionCancel(ctx, db.DeletionCancelParams{Now: now, RestoredMessages: ptr(int32(out.Messages)),
			ExpiredMessages: ptr(int32(out.Expired)), TenantID: tenantID, ID: id})
		return err
	})
	if err == nil {
		s.Logger.InfoContext(ctx, "deletion cancelled, tenant restored", "deletion_id", id, "tenant_id", tenantID,
			"messages_restored", out.Messages, "messages_expired", out.Expired)
	}
	return out, err
}

func ptr[T any](v T) *T { return &v }

// DeletionRunPayload names a deletion.
type DeletionRunPayload struct {
	TenantID   uuid.UUID `json:"tenant_id"`
	DeletionID uuid.UUID `json:"deletion_id"`
}

// NewDeletionRunJob describes the run of one deletion. A child's erasure
// rides in the erasure queue, the main pool's heaviest, never in critical:
// that lane is the verification codes' alone, and a few erasures there
// would hold up every code.
func NewDeletionRunJob(tenantID, deletionID uuid.UUID, minor bool) Job {
	payload, _ := json.Marshal(DeletionRunPayload{TenantID: tenantID, DeletionID: deletionID})
	q := QueueMaintenance
	if minor {
		q = QueueErasure
	}
	return Job{ID: "deletion:" + deletionID.String(), Queue: q, Type: TypeDeletionRun, Payload: payload,
		Opts: []asynq.Option{asynq.MaxRetry(10), asynq.Timeout(2 * time.Hour)}}
}

func (s *Deletions) enqueue(ctx context.Context, d db.Deletion) {
	if s.Client == nil {
		return
	}
	_, err := s.Client.EnqueueContext(ctx, NewDeletionRunJob(d.TenantID, d.ID, d.Minor).Task())
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) && !errors.Is(err, asynq.ErrDuplicateTask) {
		s.Logger.WarnContext(ctx, "could not enqueue deletion; the scan will", "deletion_id", d.ID, "err", err)
	}
}

// ProcessTask runs one deletion (TypeDeletionRun).
func (s *Deletions) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p DeletionRunPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	err := s.Run(ctx, p.TenantID, p.DeletionID)
	if errors.Is(err, ErrDeletionHeld) {
		return nil // recorded on the row; the scan tries again
	}
	if db.IsNotFound(err) {
		return Permanent(err)
	}
	return err
}

// Scan finds the deletions whose time has come and runs each (the
// TypeDeletionScan periodic task; also what resumes a crashed purge).
type deletionScan struct{ s *Deletions }

func (h deletionScan) ProcessTask(ctx context.Context, _ *asynq.Task) error {
	_, err := h.s.Scan(ctx)
	return err
}

// Scan runs every due deletion in turn, a page at a time, and reports how
// many completed. Deletions a legal hold keeps waiting are recorded as
// such and paged past, however many there are.
func (s *Deletions) Scan(ctx context.Context) (int, error) {
	page := s.ScanPage
	if page <= 0 {
		page = 100
	}
	now := s.Clock.Now()
	var afterTime time.Time
	var afterID uuid.UUID
	done := 0
	var failed error // a deletion that fails is skipped, not a wall for the rest
	for {
		var due []db.DeletionListDueRow
		err := s.Store.AsSystem(ctx, func(q *db.Queries) (err error) {
			due, err = q.DeletionListDue(ctx, db.DeletionListDueParams{Now: now, AfterTime: afterTime,
				AfterID: afterID, MaxRows: int32(page)})
			return err
		})
		if err != nil {
			return done, errors.Join(failed, fmt.Errorf("list due deletions: %w", err))
		}
		for _, d := range due {
			err := s.Run(ctx, d.TenantID, d.ID)
			switch {
			case err == nil:
				done++
			case errors.Is(err, ErrDeletionHeld):
			case ctx.Err() != nil:
				return done, errors.Join(failed, err)
			default:
				s.Logger.ErrorContext(ctx, "deletion failed; the scan goes on and tries it again next time",
					"tenant_id", d.TenantID, "deletion_id", d.ID, "err", err)
				failed = errors.Join(failed, fmt.Errorf("deletion %s: %w", d.ID, err))
			}
			afterTime, afterID = d.PurgeAfter, d.ID
		}
		if len(due) < page {
			return done, failed
		}
	}
}

// Get reads a deletion as its tenant.
func (s *Deletions) Get(ctx context.Context, tenantID, id uuid.UUID) (d db.Deletion, err error) {
	err = s.Store.InTenant(ctx, tenantID, func(q *db.Queries) error {
		d, err = q.DeletionGet(ctx, db.DeletionGetParams{TenantID: tenantID, ID: id})
		return err
	})
	return d, err
}

// Run carries a due deletion out, or resumes it: checks for a legal hold
// (recording it and returning ErrDeletionHeld), then runs each remaining
// step to the end — checking again before every batch, so a hold placed
// mid-purge stops it the same way — then completes the deletion (and its
// privacy request).
// Running a completed deletion again does nothing.
func (s *Deletions) Run(ctx context.Context, tenantID, id uuid.UUID) error {
	now := s.Clock.Now()
	var d db.Deletion
	held := false
	err := s.Store.InTenant(ctx, tenantID, func(q *db.Queries) error {
		var err error
		d, err = q.DeletionLock(ctx, db.DeletionLockParams{TenantID: tenantID, ID: id})
		if err != nil {
			return err
		}
		if d.Status != DeletionScheduled && d.Status != DeletionRunning {
			return nil
		}
		if now.Before(d.PurgeAfter) {
			return nil
		}
		if held, err = recordHold(ctx, q, d, now); held || err != nil {
			return err // held: committed, the record says why it waits
		}
		if err := q.DeletionStart(ctx, db.DeletionStartParams{Now: now, TenantID: tenantID, ID: id}); err != nil {
			return err
		}
		d.Status = DeletionRunning
		return nil
	})
	if err == nil && held {
		s.Logger.InfoContext(ctx, "deletion waits for a legal hold", "deletion_id", id, "tenant_id", tenantID)
		return ErrDeletionHeld
	}
	if err != nil || d.Status != DeletionRunning {
		return err
	}
	steps, err := s.plan(ctx, d)
	if err != nil {
		return err
	}
	for i := int(d.Step); i < len(steps); i++ {
		if err := s.runStep(ctx, d, i, steps[i]); err != nil {
			return fmt.Errorf("deletion step %s: %w", steps[i].name, err)
		}
	}
	return s.complete(ctx, d)
}

// complete marks the deletion done and moves its privacy request on, if
// the request still exists (a tenant purge removes the tenant's requests;
// the deletion keeps the request's ID).
func (s *Deletions) complete(ctx context.Context, d db.Deletion) error {
	now := s.Clock.Now()
	err := s.Store.InTenant(ctx, d.TenantID, func(q *db.Queries) error {
		if err := q.DeletionComplete(ctx, db.DeletionCompleteParams{Now: now, TenantID: d.TenantID, ID: d.ID}); err != nil {
			return err
		}
		if d.Scope == DeletionScopeTenant {
			if err := q.TenantMarkPurged(ctx, db.TenantMarkPurgedParams{Now: &now, ID: d.TenantID}); err != nil {
				return err
			}
		}
		if d.PrivacyRequestID == nil {
			return nil
		}
		pr, err := q.PrivacyRequestLock(ctx, db.PrivacyRequestLockParams{TenantID: d.TenantID, ID: *d.PrivacyRequestID})
		if db.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if !PrivacyCanMove(pr.Type, pr.Status, PrivacyCompleted) {
			return nil
		}
		_, err = PrivacyMove(ctx, q, pr, PrivacyCompleted, "deletion_completed", "system",
			"deletion "+d.ID.String()+" completed", now)
		return err
	})
	if err == nil {
		s.Logger.InfoContext(ctx, "deletion completed", "deletion_id", d.ID, "tenant_id", d.TenantID, "scope", d.Scope)
	}
	return err
}

// runStep runs one step's batches until a batch finds nothing left. Each
// batch locks the deletion row, does its work, adds its count to the
// certificate and records the step's position, all in one transaction.
func (s *Deletions) runStep(ctx context.Context, d db.Deletion, index int, st step) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var n int64
		var done, held bool
		err := s.Store.InTenantTx(ctx, d.TenantID, pgx.TxOptions{}, func(tx pgx.Tx) error {
			var status string
			var stepNow int32
			var cursor *uuid.UUID
			err := tx.QueryRow(ctx, "SELECT status, step, cursor FROM deletions WHERE id = $1 FOR UPDATE", d.ID).
				Scan(&status, &stepNow, &cursor)
			if err != nil {
				return err
			}
			if status != DeletionRunning {
				return fmt.Errorf("deletion is %s, not running", status)
			}
			// A hold placed while the deletion runs stops it before its
			// next batch: the row says which hold, and the deletion stays
			// running at this step (the scan resumes it once released).
			q := db.New(tx)
			if held, err = recordHold(ctx, q, d, s.Clock.Now()); held || err != nil {
				return err
			}
			if int(stepNow) > index {
				done = true // a concurrent run finished this step
				return nil
			}
			if cursor == nil {
				cursor = &uuid.Nil
			}
			var next *uuid.UUID
			n, next, err = st.batch(ctx, tx, batchArgs{deletion: d.ID, tenant: d.TenantID, limit: s.batch(), cursor: *cursor,
				now: s.Clock.Now()})
			if err != nil {
				return err
			}
			done = next == nil
			newStep := index
			if done {
				newStep = index + 1
			}
			_, err = tx.Exec(ctx, `UPDATE deletions
				SET counts = jsonb_set(counts, ARRAY[$2::text], to_jsonb(coalesce((counts->>$2)::bigint, 0) + $3::bigint)),
				    step = $4, cursor = $5, updated_at = $6
				WHERE id = $1`, d.ID, st.name, n, newStep, next, s.Clock.Now())
			return err
		})
		if err != nil {
			return err
		}
		if held {
			s.Logger.InfoContext(ctx, "deletion stopped for a legal hold", "deletion_id", d.ID, "tenant_id", d.TenantID,
				"step", st.name)
			return ErrDeletionHeld
		}
		if s.OnBatch != nil {
			s.OnBatch()
		}
		if done {
			return nil
		}
	}
}

// recordHold reports whether a live legal hold covers the deletion (its
// tenant, or its person) and, if one does, records on the deletion which
// hold it waits for and since when.
func recordHold(ctx context.Context, q *db.Queries, d db.Deletion, now time.Time) (bool, error) {
	hold, err := q.LegalHoldBlocking(ctx, db.LegalHoldBlockingParams{TenantID: d.TenantID, ContactID: d.ContactID})
	if db.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, q.DeletionHeld(ctx, db.DeletionHeldParams{HoldID: &hold.ID, HoldReason: &hold.Reason, Now: now,
		TenantID: d.TenantID, ID: d.ID})
}
