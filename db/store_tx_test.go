package db_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/testenv"
)

// Raw SQL in InTenantTx (COPY, which sqlc cannot express) is scoped like
// InTenant: a query with no tenant filter of its own sees one tenant.
func TestInTenantTxScopesRawCopy(t *testing.T) {
	ctx := context.Background()
	s := testenv.Store(t)
	a, b := newTenant(t, s, "Raw A"), newTenant(t, s, "Raw B")
	for _, tn := range []db.Tenant{a, b} {
		require.NoError(t, s.InTenant(ctx, tn.ID, func(q *db.Queries) error {
			_, err := q.ContactUpsert(ctx, db.ContactUpsertParams{TenantID: tn.ID, ExternalID: "raw-" + tn.Name, Now: time.Now()})
			return err
		}))
	}
	var out bytes.Buffer
	err := s.InTenantTx(ctx, a.ID, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		_, err := tx.Conn().PgConn().CopyTo(ctx, &out, "COPY (SELECT external_id FROM contacts WHERE external_id LIKE 'raw-%') TO STDOUT")
		return err
	})
	require.NoError(t, err)
	require.Equal(t, "raw-Raw A\n", out.String())

	err = s.InTenantTx(ctx, a.ID, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "DELETE FROM contacts")
		return err
	})
	require.ErrorContains(t, err, "read-only", "the options are applied")
}
