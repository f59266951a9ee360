package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/errandhq/errand/db"
)

// Privacy request types and states (db/migrations/0041_privacy_requests.sql
// draws the state machine).
const (
	PrivacyAccess     = "access"
	PrivacyDeletion   = "deletion"
	PrivacyCorrection = "correction"

	PrivacyReceived   = "received"
	PrivacyApproved   = "approved"
	PrivacyInProgress = "in_progress"
	PrivacyCompleted  = "completed"
	PrivacyRejected   = "rejected"
)

// PrivacyOpen reports whether a request in this state still awaits an
// answer (and so has a deadline being watched).
func PrivacyOpen(status string) bool {
	return status == PrivacyReceived || status == PrivacyApproved || status == PrivacyInProgress
}

// PrivacyCanMove is the state machine: whether a request of type typ may
// go from one state to another. Completed and rejected are final.
//
//	received    → in_progress  access (an export starts), correction
//	received    → approved     deletion
//	approved    → in_progress  deletion (a deletion starts)
//	in_progress → received     access, when its export failed
//	any open    → completed, rejected
func PrivacyCanMove(typ, from, to string) bool {
	if !PrivacyOpen(from) || from == to {
		return false
	}
	switch to {
	case PrivacyCompleted, PrivacyRejected:
		return true
	case PrivacyApproved:
		return typ == PrivacyDeletion && from == PrivacyReceived
	case PrivacyInProgress:
		if typ == PrivacyDeletion {
			return from == PrivacyApproved
		}
		return from == PrivacyReceived
	case PrivacyReceived:
		return typ == PrivacyAccess && from == PrivacyInProgress
	}
	return false
}

// PrivacyMove moves a request (locked by the caller's transaction) and
// records the change in its audit trail: who, when, from → to, and why.
func PrivacyMove(ctx context.Context, q *db.Queries, r db.PrivacyRequest, to, action, actor, note string, now time.Time) (db.PrivacyRequest, error) {
	if !PrivacyCanMove(r.Type, r.Status, to) {
		return r, fmt.Errorf("privacy request %s cannot go from %s to %s", r.ID, r.Status, to)
	}
	moved, err := q.PrivacyRequestSetStatus(ctx, db.PrivacyRequestSetStatusParams{Status: to, Now: now, TenantID: r.TenantID, ID: r.ID})
	if err != nil {
		return r, fmt.Errorf("move privacy request: %w", err)
	}
	from := r.Status
	err = q.PrivacyRequestEventRecord(ctx, db.PrivacyRequestEventRecordParams{TenantID: r.TenantID, RequestID: r.ID,
		Action: action, Actor: actor, FromStatus: &from, ToStatus: to, Note: note, OccurredAt: now})
	if err != nil {
		return r, fmt.Errorf("record privacy request event: %w", err)
	}
	return moved, nil
}

// PrivacyNote records an event that does not change the state (a
// reminder, an overdue mark, a link to what fulfils it).
func PrivacyNote(ctx context.Context, q *db.Queries, r db.PrivacyRequest, action, actor, note string, now time.Time) error {
	from := r.Status
	return q.PrivacyRequestEventRecord(ctx, db.PrivacyRequestEventRecordParams{TenantID: r.TenantID, RequestID: r.ID,
		Action: action, Actor: actor, FromStatus: &from, ToStatus: r.Status, Note: note, OccurredAt: now})
}

// privacyExportDone updates the access request an export fulfils: completed
// when the export succeeded, back to received when it failed (a person
// moves it to in_progress again to retry). A request that has moved on
// (answered by hand, or linked to a newer export) is left alone.
func privacyExportDone(ctx context.Context, q *db.Queries, tenantID, requestID, exportID uuid.UUID, failure string, now time.Time) error {
	r, err := q.PrivacyRequestLock(ctx, db.PrivacyRequestLockParams{TenantID: tenantID, ID: requestID})
	if db.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lock privacy request: %w", err)
	}
	if r.Status != PrivacyInProgress || r.ExportID == nil || *r.ExportID != exportID {
		return nil
	}
	if failure == "" {
		_, err = PrivacyMove(ctx, q, r, PrivacyCompleted, "export_succeeded", "system",
			"export "+exportID.String()+" is ready to download", now)
		return err
	}
	_, err = PrivacyMove(ctx, q, r, PrivacyReceived, "export_failed", "system",
		"export "+exportID.String()+" failed ("+failure+"); move the request to in_progress to start another", now)
	return err
}
