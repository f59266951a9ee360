package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/errandhq/errand/db"
)

// BulkWindow is how many of one tenant's bulk messages may be in Redis at
// once. Bulk messages wait in PostgreSQL and are admitted per tenant: when
// one leaves Redis (sent, failed, suppressed, held) the next is admitted
// (AdmitBulk), and the due-scan tops every tenant's window up (BulkWaiting)
// in case that was missed. So however large a tenant's batch, the bulk
// queue holds at most BulkWindow of its texts, another tenant's batch is
// never more than that behind it, and Redis never holds the batch.
// Appointment messages do not queue behind any of it: they ride the
// notifications queue, which workers prefer.
const BulkWindow = 100

// maxBulkTenantsPerScan bounds how many tenants' windows one scan tops up
// (each costs two index probes); every tenant's window is also refilled
// as its messages finish, so the scan is only the safety net.
const maxBulkTenantsPerScan = 10_000

// admitWhenFree is how much room a window must have before an admitter
// bothers; smaller refills cost a query each for little.
const admitWhenFree = BulkWindow / 10

// BulkMessages is the messages table's bulk rows as the dispatcher sees
// them: only their admission. Stalled and lost bulk tasks are repaired by
// Messages, which covers every kind.
type BulkMessages struct{}

// Name implements Dispatchable.
func (BulkMessages) Name() string { return "bulk_message" }

// Job implements Dispatchable.
func (BulkMessages) Job(ref Ref) (Job, error) {
	return NewMessageSendJob(ref.TenantID, ref.ID, "bulk"), nil
}

// Undispatched implements Dispatchable: for each tenant with bulk messages
// waiting, as many of its oldest due ones as its window has room for. Its
// cost is a few index probes per such tenant, however many messages wait.
func (BulkMessages) Undispatched(ctx context.Context, q *db.Queries, until time.Time, limit int32) ([]Ref, error) {
	tenants, err := q.MessageBulkWaitingTenants(ctx, maxBulkTenantsPerScan)
	if err != nil {
		return nil, err
	}
	var refs []Ref
	for _, tenant := range tenants {
		if int32(len(refs)) >= limit {
			break
		}
		admitted, err := q.MessageBulkAdmittedCount(ctx, tenant)
		if err != nil {
			return nil, err
		}
		room := min(int32(BulkWindow-admitted), limit-int32(len(refs)))
		if room <= 0 {
			continue
		}
		rows, err := q.MessageBulkNext(ctx, db.MessageBulkNextParams{TenantID: tenant, Until: until, MaxRows: room})
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			refs = append(refs, Ref{TenantID: r.TenantID, ID: r.ID, DueAt: r.DueAt, Variant: r.Kind})
		}
	}
	return refs, nil
}

// Stalled implements Dispatchable (Messages covers bulk rows too).
func (BulkMessages) Stalled(context.Context, *db.Queries, time.Time, int32) ([]Ref, error) {
	return nil, nil
}

// MarkEnqueued implements Dispatchable.
func (BulkMessages) MarkEnqueued(ctx context.Context, q *db.Queries, ids []uuid.UUID, now time.Time) error {
	return q.MessageMarkEnqueued(ctx, db.MessageMarkEnqueuedParams{Ids: ids, Now: now})
}

// ForgetEnqueued implements Dispatchable (Messages forgets bulk rows too).
func (BulkMessages) ForgetEnqueued(context.Context, *db.Queries) (int64, error) { return 0, nil }

// AdmitBulk fills one tenant's bulk window with its oldest due bulk
// messages and enqueues them; it returns how many it admitted. Rows are
// marked in the transaction and enqueued after commit; a row Redis refuses
// is unmarked for the due-scan.
func (d *Dispatcher) AdmitBulk(ctx context.Context, tenantID uuid.UUID) (int, error) {
	var rows []db.MessageBulkAdmitRow
	err := d.Store.InTenant(ctx, tenantID, func(q *db.Queries) error {
		mine, err := q.MessageBulkAdmitLock(ctx, "errand:bulk-admit:"+tenantID.String())
		if err != nil || !mine {
			return err // another admitter is filling this window now
		}
		admitted, err := q.MessageBulkAdmittedCount(ctx, tenantID)
		if err != nil {
			return err
		}
		room := BulkWindow - admitted
		if room < max(admitWhenFree, 1) && admitted > 0 {
			return nil
		}
		now := d.Clock.Now()
		rows, err = q.MessageBulkAdmit(ctx, db.MessageBulkAdmitParams{TenantID: tenantID, Until: now.Add(d.Horizon),
			MaxRows: int32(room), Now: now})
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("admit bulk messages: %w", err)
	}
	msgs := make([]db.Message, len(rows))
	now := d.Clock.Now()
	for i, r := range rows {
		msgs[i] = db.Message{TenantID: r.TenantID, ID: r.ID, DueAt: r.DueAt, Kind: r.Kind, EnqueuedAt: &now}
	}
	d.EnqueueMessages(ctx, msgs...)
	return len(rows), nil
}
