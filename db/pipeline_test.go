package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/testenv"
)

// oneConn is a store of a single connection, so a test sees what a
// pipelined transaction leaves behind on it.
func oneConn(t *testing.T) *db.Store {
	t.Helper()
	s, err := db.Open(context.Background(), testenv.AppURL(t), db.AppRole, 1)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func scopeLeft(t *testing.T, s *db.Store) string {
	t.Helper()
	var v string
	require.NoError(t, s.Pool.QueryRow(context.Background(), "SELECT coalesce(current_setting('errand.tenant_id', true), '')").Scan(&v))
	return v
}

// InTenantOne's statement is scoped like InTenant's, commits, and leaves
// no scope behind on its connection; a second statement is refused.
func TestInTenantOneScopesAndCommits(t *testing.T) {
	ctx := context.Background()
	s := oneConn(t)
	a, b := newTenant(t, s, "One A"), newTenant(t, s, "One B")
	var c db.ContactUpsertRow
	require.NoError(t, s.InTenantOne(ctx, a.ID, func(q *db.Queries) (err error) {
		c, err = q.ContactUpsert(ctx, db.ContactUpsertParams{TenantID: a.ID, ExternalID: "one-a", Now: time.Now()})
		return err
	}))
	require.Empty(t, scopeLeft(t, s), "the scope ends with the statement's transaction")

	err := s.InTenantOne(ctx, b.ID, func(q *db.Queries) error {
		_, err := q.ContactGet(ctx, db.ContactGetParams{TenantID: a.ID, ID: c.ID})
		return err
	})
	require.True(t, db.IsNotFound(err), "another tenant's row is invisible: %v", err)

	err = s.InTenantOne(ctx, b.ID, func(q *db.Queries) error {
		_, err := q.ContactUpsert(ctx, db.ContactUpsertParams{TenantID: a.ID, ExternalID: "forged", Now: time.Now()})
		return err
	})
	require.ErrorContains(t, err, "row-level security", "writing another tenant's row is refused")

	err = s.InTenantOne(ctx, a.ID, func(q *db.Queries) error {
		if _, err := q.ContactGet(ctx, db.ContactGetParams{TenantID: a.ID, ID: c.ID}); err != nil {
			return err
		}
		_, err := q.ContactGet(ctx, db.ContactGetParams{TenantID: a.ID, ID: c.ID})
		return err
	})
	require.ErrorContains(t, err, "one statement")

	got, err := testenv.Store(t).Q().TenantGet(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, a.ID, got.ID)
	var n int
	require.NoError(t, testenv.Owner(t).QueryRow(ctx, "SELECT count(*) FROM contacts WHERE id = $1", c.ID).Scan(&n))
	require.Equal(t, 1, n, "committed")
	require.Empty(t, scopeLeft(t, s))
}

// Held statements run before the next query, in order, and their failure
// rolls back the whole transaction, including what was held before them.
func TestInTenantPipelinedHoldsExecsAndRollsBackTogether(t *testing.T) {
	ctx := context.Background()
	s := oneConn(t)
	a, b := newTenant(t, s, "Pipe A"), newTenant(t, s, "Pipe B")
	add := func(q *db.Queries, tenant db.Tenant, hash string) error {
		return q.SuppressionAdd(ctx, db.SuppressionAddParams{TenantID: tenant.ID, Channel: "sms", AddressHash: []byte(hash),
			Reason: "opted_out", Source: "test", Now: time.Now()})
	}
	count := func(hash string) int {
		var n int
		require.NoError(t, testenv.Owner(t).QueryRow(ctx, "SELECT count(*) FROM suppressions WHERE address_hash = $1", []byte(hash)).Scan(&n))
		return n
	}

	require.NoError(t, s.InTenantPipelined(ctx, a.ID, func(q *db.Queries) error {
		if err := add(q, a, "held-1"); err != nil {
			return err
		}
		sup, err := q.SuppressionGet(ctx, db.SuppressionGetParams{TenantID: a.ID, Channel: "sms", AddressHash: []byte("held-1")})
		require.NoError(t, err, "the held insert ran before the query")
		require.Equal(t, "opted_out", sup.Reason)
		return add(q, a, "held-2") // sent with the COMMIT
	}))
	require.Equal(t, 1, count("held-1"))
	require.Equal(t, 1, count("held-2"), "the statement held until the commit was committed")
	require.Empty(t, scopeLeft(t, s))

	err := s.InTenantPipelined(ctx, a.ID, func(q *db.Queries) error {
		if err := add(q, a, "lost-1"); err != nil {
			return err
		}
		return add(q, b, "lost-2") // another tenant's: refused by row-level security at commit
	})
	require.ErrorContains(t, err, "row-level security")
	require.Zero(t, count("lost-1"), "the transaction was rolled back as a whole")
	require.Zero(t, count("lost-2"))
	require.Empty(t, scopeLeft(t, s), "the connection is usable and unscoped")

	err = s.InTenantPipelined(ctx, a.ID, func(q *db.Queries) error {
		if err := add(q, a, "lost-3"); err != nil {
			return err
		}
		return context.Canceled // fn's own failure
	})
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, count("lost-3"))

	require.NoError(t, s.InTenantPipelinedUnsynced(ctx, b.ID, func(q *db.Queries) error { return add(q, b, "unsynced") }))
	require.Equal(t, 1, count("unsynced"))
	var setting string
	require.NoError(t, s.Pool.QueryRow(ctx, "SHOW synchronous_commit").Scan(&setting))
	require.Equal(t, "on", setting, "only that transaction went unsynced")
}
