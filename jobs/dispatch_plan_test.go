package jobs_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/testenv"
	"github.com/errandhq/errand/jobs"
)

var errExplained = errors.New("explained, not run")

// explainer is a db.DBTX that, instead of running a generated query,
// EXPLAINs it (with its real arguments, in the caller's transaction) and
// keeps the plan.
type explainer struct {
	t    *testing.T
	tx   pgx.Tx
	plan string
}

func (e *explainer) explain(ctx context.Context, sql string, args []any) {
	rows, err := e.tx.Query(ctx, "EXPLAIN "+sql, args...)
	require.NoError(e.t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(e.t, err)
	e.plan = strings.Join(lines, "\n")
}

func (e *explainer) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	e.explain(ctx, sql, args)
	return pgconn.CommandTag{}, errExplained
}

func (e *explainer) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	e.explain(ctx, sql, args)
	return nil, errExplained
}

func (e *explainer) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	e.explain(ctx, sql, args)
	return errRow{}
}

type errRow struct{}

func (errRow) Scan(...any) error { return errExplained }

// The due-scan and bulk admission cost what is due, not what exists: on a
// messages table of 200,000 finished rows and a handful of live ones, each
// of their queries, planned for the application role in system scope (as
// the dispatcher runs them), reads its partial index and never scans the
// table.
func TestDueScanQueriesUseTheirPartialIndexes(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	owner := testenv.Owner(t)
	_, err := owner.Exec(ctx, `
		INSERT INTO messages (tenant_id, contact_id, kind, channel, body, status, send_at, due_at, enqueued_at,
		                      claimed_at, sent_at, provider_message_id, attempts, created_at, updated_at)
		SELECT $1, $2, 'manual', 'sms', 'Old news', 'sent', t, t, t, t, t, 'SM' || i, 1, t, t
		FROM generate_series(1, 100000) AS i, LATERAL (SELECT now() - i * interval '1 minute' AS t) AS at`,
		f.tenant.ID, f.contact.ID)
	require.NoError(t, err)
	_, err = owner.Exec(ctx, `
		INSERT INTO messages (tenant_id, contact_id, kind, channel, body, status, send_at, due_at, enqueued_at,
		                      created_at, updated_at)
		SELECT $1, $2, k, 'sms', 'Live', s, now() + i * interval '1 minute', now() + i * interval '1 minute',
		       CASE WHEN e THEN now() - interval '1 hour' END, now(), now()
		FROM generate_series(1, 20) AS i,
		     (VALUES ('manual', 'scheduled', false), ('manual', 'queued', true),
		             ('bulk', 'queued', false), ('bulk', 'queued', true)) AS v(k, s, e)`,
		f.tenant.ID, f.contact.ID)
	require.NoError(t, err)
	_, err = owner.Exec(ctx, "ANALYZE messages")
	require.NoError(t, err)

	now := f.app.Clock.Now()
	cases := []struct {
		name  string
		index string
		run   func(q *db.Queries) error
	}{
		{"due-scan", "messages_undispatched_idx", func(q *db.Queries) error {
			_, err := jobs.Messages{}.Undispatched(ctx, q, now.Add(15*time.Minute), 500)
			return err
		}},
		{"stalled scan", "messages_inflight_idx", func(q *db.Queries) error {
			_, err := jobs.Messages{}.Stalled(ctx, q, now, 500)
			return err
		}},
		{"tenants with bulk waiting", "messages_bulk_waiting_idx", func(q *db.Queries) error {
			_, err := q.MessageBulkWaitingTenants(ctx, 10_000)
			return err
		}},
		{"a tenant's bulk window", "messages_bulk_admitted_idx", func(q *db.Queries) error {
			_, err := q.MessageBulkAdmittedCount(ctx, f.tenant.ID)
			return err
		}},
		{"a tenant's next bulk", "messages_bulk_waiting_idx", func(q *db.Queries) error {
			_, err := q.MessageBulkNext(ctx, db.MessageBulkNextParams{TenantID: f.tenant.ID, Until: now, MaxRows: 100})
			return err
		}},
		{"bulk admission", "messages_bulk_waiting_idx", func(q *db.Queries) error {
			_, err := q.MessageBulkAdmit(ctx, db.MessageBulkAdmitParams{Now: now, TenantID: f.tenant.ID, Until: now, MaxRows: 100})
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := f.app.Store.AsSystemTx(ctx, func(tx pgx.Tx) error {
				e := &explainer{t: t, tx: tx}
				require.ErrorIs(t, c.run(db.New(e)), errExplained)
				t.Logf("plan:\n%s", e.plan)
				require.Contains(t, e.plan, "using "+c.index+" on messages")
				require.NotContains(t, e.plan, "Seq Scan on messages")
				return nil
			})
			require.NoError(t, err)
		})
	}
}
