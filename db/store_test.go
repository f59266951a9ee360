package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newTenant(t *testing.T, s *db.Store, name string) db.Tenant {
	t.Helper()
	tn, err := s.Q().TenantCreate(context.Background(), db.TenantCreateParams{
		Name: name, Timezone: "America/Chicago", DefaultRegion: "US", Now: time.Now(),
	})
	require.NoError(t, err)
	return tn
}

// The application logs in as a role that is neither superuser nor owner
// (session_user, not only current_user): RESET ROLE on one of its
// connections leaves it exactly as unprivileged, and row-level security
// still hides every tenant's rows.
func TestAppRoleIsNeitherSuperuserNorOwner(t *testing.T) {
	ctx := context.Background()
	s := testenv.Store(t)
	tn := newTenant(t, s, "Unprivileged")
	require.NoError(t, s.InTenant(ctx, tn.ID, func(q *db.Queries) error {
		_, err := q.ContactUpsert(ctx, db.ContactUpsertParams{TenantID: tn.ID, ExternalID: "c-1", Name: "c", Now: time.Now()})
		return err
	}))

	conn, err := s.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	privileged := func(who string) (name string, super, bypass bool, owned int) {
		t.Helper()
		require.NoError(t, conn.QueryRow(ctx, "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = "+who).
			Scan(&name, &super, &bypass))
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND pg_has_role("+who+", tableowner, 'USAGE')").
			Scan(&owned))
		return name, super, bypass, owned
	}
	check := func(when string) {
		t.Helper()
		for _, who := range []string{"session_user", "current_user"} {
			name, super, bypass, owned := privileged(who)
			require.False(t, super, "%s %s (%s) is a superuser", when, who, name)
			require.False(t, bypass, "%s %s (%s) bypasses row-level security", when, who, name)
			require.Zero(t, owned, "%s %s (%s) owns (or inherits the owner of) %d tables: row-level security would not apply", when, who, name, owned)
		}
		var n int
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM contacts").Scan(&n))
		require.Zero(t, n, "%s: a connection with no tenant declared sees no contact", when)
	}
	check("as connected")
	session, _, _, _ := privileged("session_user")
	require.Equal(t, testenv.AppLogin, session, "the pool logs in as the application's own login role")

	_, err = conn.Exec(ctx, "RESET ROLE")
	require.NoError(t, err)
	check("after RESET ROLE")
	_, err = conn.Exec(ctx, "SET ROLE postgres")
	require.Error(t, err, "the application cannot become the superuser")
}

// DATABASE_URL naming a superuser (a laptop's postgres) is a development
// convenience: every connection switches to the application role, so
// row-level security applies there too (though RESET ROLE would escape it,
// which is why production and the tests log in as an unprivileged role).
func TestSuperuserURLSwitchesToTheAppRole(t *testing.T) {
	ctx := context.Background()
	s, err := db.Open(ctx, testenv.DatabaseURL(t), db.AppRole, 1)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	var session, current string
	require.NoError(t, s.Pool.QueryRow(ctx, "SELECT session_user, current_user").Scan(&session, &current))
	require.Equal(t, "postgres", session)
	require.Equal(t, db.AppRole, current)

	// An unprivileged login is used as it is: nothing to switch away from.
	app, err := db.Open(ctx, testenv.AppURL(t), db.AppRole, 1)
	require.NoError(t, err)
	t.Cleanup(app.Close)
	require.NoError(t, app.Pool.QueryRow(ctx, "SELECT session_user, current_user").Scan(&session, &current))
	require.Equal(t, testenv.AppLogin, session)
	require.Equal(t, testenv.AppLogin, current)
}

// One pooled connection serves tenant A, then B, then A again: each
// transaction sees only its own tenant, and nothing leaks between them.
func TestRowLevelSecurityAlternatesTenantsOnOneConnection(t *testing.T) {
	ctx := context.Background()
	full := testenv.Store(t)
	s, err := db.Open(ctx, testenv.AppURL(t), db.AppRole, 1)
	require.NoError(t, err)
	t.Cleanup(s.Close)

	a, b := newTenant(t, full, "A"), newTenant(t, full, "B")
	upsert := func(tenant db.Tenant, ext string) {
		require.NoError(t, s.InTenant(ctx, tenant.ID, func(q *db.Queries) error {
			_, err := q.ContactUpsert(ctx, db.ContactUpsertParams{TenantID: tenant.ID, ExternalID: ext, Name: ext, Now: time.Now()})
			return err
		}))
	}
	upsert(a, "a-1")
	upsert(b, "b-1")

	// visible lists every contact a transaction scoped by setting=value can
	// see, with no tenant filter of its own: only row-level security stands
	// between tenants here.
	visible := func(setting, value string) []string {
		tx, err := s.Pool.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx)
		_, err = tx.Exec(ctx, "SELECT set_config($1, $2, true)", setting, value)
		require.NoError(t, err)
		rows, err := tx.Query(ctx, "SELECT external_id FROM contacts WHERE external_id IN ('a-1', 'b-1') ORDER BY 1")
		require.NoError(t, err)
		seen, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.NoError(t, tx.Commit(ctx))
		return seen
	}

	for i := 0; i < 3; i++ {
		require.Equal(t, []string{"a-1"}, visible("errand.tenant_id", a.ID.String()))
		require.Equal(t, []string{"b-1"}, visible("errand.tenant_id", b.ID.String()))
		// Outside any tenant transaction the same connection sees nothing.
		var n int
		require.NoError(t, s.Pool.QueryRow(ctx, "SELECT count(*) FROM contacts").Scan(&n))
		require.Zero(t, n, "a tenant setting leaked past its transaction")
	}
	require.Equal(t, []string{"a-1", "b-1"}, visible("errand.scope", "system"))

	// A query that forgets its tenant filter still cannot reach another tenant.
	err = s.InTenant(ctx, a.ID, func(q *db.Queries) error {
		_, err := q.ContactGetByExternalID(ctx, db.ContactGetByExternalIDParams{TenantID: b.ID, ExternalID: "b-1"})
		return err
	})
	require.True(t, db.IsNotFound(err))

	// Writing a row for another tenant is refused by the policy.
	err = s.InTenant(ctx, a.ID, func(q *db.Queries) error {
		_, err := q.ContactUpsert(ctx, db.ContactUpsertParams{TenantID: b.ID, ExternalID: "sneaky", Now: time.Now()})
		return err
	})
	require.ErrorContains(t, err, "row-level security")

}

func TestMigrationsGoDownAndUpAgain(t *testing.T) {
	ctx := context.Background()
	m, err := db.NewMigrator(testenv.DatabaseURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	var out testWriter
	require.NoError(t, m.Down(ctx, &out))
	pending, err := m.Pending(ctx)
	require.NoError(t, err)
	require.True(t, pending)
	require.NoError(t, m.Up(ctx, &out))
	pending, err = m.Pending(ctx)
	require.NoError(t, err)
	require.False(t, pending)
	require.NoError(t, m.Status(ctx, &out))
	require.Contains(t, string(out), "0001_foundation.sql")
}

type testWriter []byte

func (w *testWriter) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }

// An unsynced tenant transaction is scoped like any other (row-level
// security lets it write its tenant's rows and no other's), and relaxes
// only its own commit: the pooled connection comes back as it was.
func TestInTenantUnsyncedIsScopedAndLocal(t *testing.T) {
	ctx := context.Background()
	full := testenv.Store(t)
	s, err := db.Open(ctx, testenv.AppURL(t), db.AppRole, 1)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	a, b := newTenant(t, full, "A"), newTenant(t, full, "B")
	require.NoError(t, s.InTenantUnsynced(ctx, a.ID, func(q *db.Queries) error {
		_, err := q.ContactUpsert(ctx, db.ContactUpsertParams{TenantID: a.ID, ExternalID: "a-1", Name: "a", Now: time.Now()})
		return err
	}))
	err = s.InTenantUnsynced(ctx, a.ID, func(q *db.Queries) error {
		_, err := q.ContactUpsert(ctx, db.ContactUpsertParams{TenantID: b.ID, ExternalID: "b-1", Name: "b", Now: time.Now()})
		return err
	})
	require.Error(t, err, "another tenant's row is refused")
	var sync string
	require.NoError(t, s.Pool.QueryRow(ctx, "SHOW synchronous_commit").Scan(&sync))
	require.Equal(t, "on", sync, "the setting was local to the transaction")
	require.NoError(t, s.InTenant(ctx, a.ID, func(q *db.Queries) error {
		_, err := q.ContactGetByExternalID(ctx, db.ContactGetByExternalIDParams{TenantID: a.ID, ExternalID: "a-1"})
		return err
	}))
}
