package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/credential"
	"github.com/errandhq/errand/internal/filestore"
	"github.com/errandhq/errand/internal/logging"
)

// TypeCredentialVerify runs the automatic checks on one uploaded credential.
const TypeCredentialVerify = "credential:verify"

// CredentialVerifyPayload names the credential; its number and document
// stay in PostgreSQL and the file store.
type CredentialVerifyPayload struct {
	TenantID     uuid.UUID `json:"tenant_id"`
	CredentialID uuid.UUID `json:"credential_id"`
}

const (
	credentialTimeout  = 2 * time.Minute
	credentialMaxRetry = 8
)

// NewCredentialVerifyJob describes the task of one credential.
func NewCredentialVerifyJob(tenantID, credentialID uuid.UUID) Job {
	payload, _ := json.Marshal(CredentialVerifyPayload{TenantID: tenantID, CredentialID: credentialID})
	return Job{
		ID:      "credential:" + credentialID.String(),
		Queue:   QueueBulk,
		Type:    TypeCredentialVerify,
		Payload: payload,
		Opts:    []asynq.Option{asynq.MaxRetry(credentialMaxRetry), asynq.Timeout(credentialTimeout)},
	}
}

// CredentialVerify moves a pending credential to verified, needs_review or
// rejected (see the state machine in db/migrations/0021_credentials.sql)
// by running the check pipeline and recording every result with its
// reason. Running it twice is harmless: the verdict is written only while
// the credential is still pending, and the checks only read.
//
// A check that cannot run (storage or database unavailable) makes the
// whole run a transient failure, retried with backoff; when asynq gives
// up, the credential goes to a person (needs_review) with the reason.
type CredentialVerify struct {
	Store  *db.Store
	Clock  clock.Clock
	Logger *slog.Logger
	Files  filestore.Store
	Retry  RetryPolicy
	// Pipeline is the list of checks; nil means credential.DefaultPipeline
	// with duplicate lookups in this tenant.
	Pipeline credential.Pipeline
}

// NewCredentialVerify builds the handler from the shared dependencies.
func NewCredentialVerify(d Deps) *CredentialVerify {
	h := &CredentialVerify{Store: d.Store, Clock: d.Clock, Logger: d.Logger, Files: d.Files, Retry: d.Retry}
	h.Pipeline = credential.DefaultPipeline(h.sameNumber, h.sameDocument)
	return h
}

// ProcessTask implements asynq.Handler.
func (h *CredentialVerify) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p CredentialVerifyPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	ctx = logging.With(ctx, slog.String("tenant_id", p.TenantID.String()), slog.String("credential_id", p.CredentialID.String()))
	var c db.Credential
	var tenant db.Tenant
	err := h.Store.InTenant(ctx, p.TenantID, func(q *db.Queries) (err error) {
		if c, err = q.CredentialGet(ctx, db.CredentialGetParams{TenantID: p.TenantID, ID: p.CredentialID}); err != nil {
			return err
		}
		tenant, err = q.TenantGet(ctx, p.TenantID)
		return err
	})
	if db.IsNotFound(err) {
		h.Logger.InfoContext(ctx, "credential no longer exists; nothing to check")
		return nil
	}
	if err != nil {
		return fmt.Errorf("load credential: %w", err)
	}
	if c.Status != credential.StatusPending {
		return nil // checked already (a duplicate or late task)
	}
	results, status, err := h.Pipeline.Run(ctx, h.subject(c, tenant))
	if err != nil {
		return h.retryLater(ctx, c, err)
	}
	checks, _ := json.Marshal(results)
	err = h.Store.InTenant(ctx, c.TenantID, func(q *db.Queries) error {
		_, err := q.CredentialFinishChecks(ctx, db.CredentialFinishChecksParams{TenantID: c.TenantID, ID: c.ID,
			Status: status, Checks: checks, Now: h.Clock.Now()})
		if db.IsNotFound(err) {
			return nil // no longer pending: another run recorded its verdict first
		}
		return err
	})
	if err != nil {
		return Retry(fmt.Errorf("record credential checks: %w", err), h.Retry.Delay(int(c.Attempts)+1))
	}
	h.Logger.InfoContext(ctx, "credential checked", "status", status)
	return nil
}

func (h *CredentialVerify) subject(c db.Credential, tenant db.Tenant) credential.Subject {
	loc, err := time.LoadLocation(tenant.Timezone)
	if err != nil {
		loc = time.UTC
	}
	y, m, d := h.Clock.Now().In(loc).Date()
	return credential.Subject{
		ID: c.ID, TenantID: c.TenantID, ProID: c.ProID, Kind: c.Kind, Number: c.Number, NumberNorm: c.NumberNorm,
		Issuer: c.Issuer, ExpiresOn: c.ExpiresOn.Time, Today: time.Date(y, m, d, 0, 0, 0, 0, time.UTC),
		FileType: c.FileType, FileSize: c.FileSize, FileSHA256: c.FileSha256,
		Open: func(ctx context.Context) (io.ReadCloser, error) {
			if h.Files == nil {
				return nil, errors.New("no file store configured (ERRAND_SECRET_KEY)")
			}
			return h.Files.Open(ctx, c.FileKey)
		},
	}
}

func (h *CredentialVerify) sameNumber(ctx context.Context, s credential.Subject) (pros []string, err error) {
	err = h.Store.InTenant(ctx, s.TenantID, func(q *db.Queries) error {
		pros, err = q.CredentialFindSameNumber(ctx, db.CredentialFindSameNumberParams{TenantID: s.TenantID, Kind: s.Kind,
			NumberNorm: s.NumberNorm, ProID: s.ProID})
		return err
	})
	return pros, err
}

func (h *CredentialVerify) sameDocument(ctx context.Context, s credential.Subject) (pros []string, err error) {
	err = h.Store.InTenant(ctx, s.TenantID, func(q *db.Queries) error {
		pros, err = q.CredentialFindSameDocument(ctx, db.CredentialFindSameDocumentParams{TenantID: s.TenantID,
			FileSha256: s.FileSHA256, ProID: s.ProID})
		return err
	})
	return pros, err
}

// retryLater records a transient failure and its retry time on the row.
func (h *CredentialVerify) retryLater(ctx context.Context, c db.Credential, cause error) error {
	now := h.Clock.Now()
	delay := h.Retry.Delay(int(c.Attempts) + 1)
	reason := "checks could not run: " + cause.Error()
	err := h.Store.InTenant(ctx, c.TenantID, func(q *db.Queries) error {
		return q.CredentialRetryLater(ctx, db.CredentialRetryLaterParams{TenantID: c.TenantID, ID: c.ID,
			DueAt: now.Add(delay), Error: &reason, Now: now})
	})
	if err != nil {
		h.Logger.ErrorContext(ctx, "could not record retry", "err", err)
	}
	return Retry(cause, delay)
}

// GiveUp hands the credential to a person when asynq stops retrying: its
// checks could not run, which is no reason to reject it.
func (h *CredentialVerify) GiveUp(ctx context.Context, payload []byte, cause error) error {
	var p CredentialVerifyPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil
	}
	reason := "automatic checks could not run: " + cause.Error()
	entry, _ := json.Marshal(credential.Result{Check: "pipeline", Outcome: credential.Review, Reason: reason})
	return h.Store.InTenant(ctx, p.TenantID, func(q *db.Queries) error {
		return q.CredentialNeedsReview(ctx, db.CredentialNeedsReviewParams{TenantID: p.TenantID, ID: p.CredentialID,
			Entry: entry, Error: &reason, Now: h.Clock.Now()})
	})
}

// Credentials is the credentials table as the dispatcher sees it: pending
// rows need their check task.
type Credentials struct{}

// Name implements Dispatchable.
func (Credentials) Name() string { return "credential" }

// Job implements Dispatchable.
func (Credentials) Job(ref Ref) (Job, error) {
	return NewCredentialVerifyJob(ref.TenantID, ref.ID), nil
}

// Undispatched implements Dispatchable.
func (Credentials) Undispatched(ctx context.Context, q *db.Queries, until time.Time, limit int32) ([]Ref, error) {
	rows, err := q.CredentialListUndispatched(ctx, db.CredentialListUndispatchedParams{Until: until, MaxRows: limit})
	if err != nil {
		return nil, err
	}
	refs := make([]Ref, len(rows))
	for i, r := range rows {
		refs[i] = Ref{TenantID: r.TenantID, ID: r.ID, DueAt: r.DueAt}
	}
	return refs, nil
}

// Stalled implements Dispatchable: pending longer after its due time than
// a run takes.
func (Credentials) Stalled(ctx context.Context, q *db.Queries, now time.Time, limit int32) ([]Ref, error) {
	rows, err := q.CredentialListStalled(ctx, db.CredentialListStalledParams{OverdueBefore: now.Add(-stallGrace),
		CheckedBefore: now.Add(-stallRecheck), MaxRows: limit})
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
func (Credentials) MarkEnqueued(ctx context.Context, q *db.Queries, ids []uuid.UUID, now time.Time) error {
	return q.CredentialMarkEnqueued(ctx, db.CredentialMarkEnqueuedParams{Ids: ids, Now: now})
}

// ForgetEnqueued implements Dispatchable.
func (Credentials) ForgetEnqueued(ctx context.Context, q *db.Queries) (int64, error) {
	return q.CredentialForgetEnqueued(ctx)
}

// EnqueueCredential puts a freshly committed credential's check task into
// Redis; when Redis refuses, the row is handed back to the due-scan.
func (d *Dispatcher) EnqueueCredential(ctx context.Context, c db.Credential) {
	if c.EnqueuedAt == nil {
		return
	}
	if err := d.Enqueue(ctx, Credentials{}, Ref{TenantID: c.TenantID, ID: c.ID, DueAt: c.DueAt}); err != nil {
		d.Logger.WarnContext(ctx, "enqueue deferred to the due-scan", "credential_id", c.ID, "err", err)
		uerr := d.Store.InTenant(ctx, c.TenantID, func(q *db.Queries) error {
			return q.CredentialUnmarkEnqueued(ctx, db.CredentialUnmarkEnqueuedParams{TenantID: c.TenantID, ID: c.ID})
		})
		if uerr != nil {
			d.Logger.ErrorContext(ctx, "could not unmark credential; the stalled scan will recover it", "credential_id", c.ID, "err", uerr)
		}
	}
}
