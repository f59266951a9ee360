package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/testenv"
	"github.com/errandhq/errand/jobs"
)

// planRecorder is a store whose connections run as the application role
// with auto_explain reporting, as notices, the plan each statement really
// ran with (EXPLAIN ANALYZE, JSON).
type planRecorder struct {
	mu    sync.Mutex
	plans []map[string]any
}

func (p *planRecorder) store(t *testing.T) *db.Store {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testenv.DatabaseURL(t))
	require.NoError(t, err)
	// The owner (a superuser) may preload auto_explain for its own session;
	// the session then switches to the application role.
	for k, v := range map[string]string{"session_preload_libraries": "auto_explain",
		"auto_explain.log_min_duration": "0", "auto_explain.log_analyze": "on",
		"auto_explain.log_format": "json", "auto_explain.log_level": "notice"} {
		cfg.ConnConfig.RuntimeParams[k] = v
	}
	cfg.MaxConns = 4
	cfg.ConnConfig.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		i := strings.IndexByte(n.Message, '{')
		if !strings.Contains(n.Message, "plan:") || i < 0 {
			return
		}
		var plan map[string]any
		if json.Unmarshal([]byte(n.Message[i:]), &plan) == nil {
			p.mu.Lock()
			p.plans = append(p.plans, plan)
			p.mu.Unlock()
		}
	}
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		_, err := c.Exec(ctx, "SET ROLE "+db.AppRole)
		return err
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return &db.Store{Pool: pool}
}

// named returns the plans of the statements sqlc named name.
func (p *planRecorder) named(name string) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, plan := range p.plans {
		if text, _ := plan["Query Text"].(string); strings.Contains(text, "-- name: "+name+" ") {
			out = append(out, plan)
		}
	}
	return out
}

// planWork is what a plan's nodes did, in rows: every row a node produced
// or threw away (filters, join filters), over all its loops. A plan that
// scans the tenant's contacts once per staged row shows up here as
// contacts × rows, however fast the machine.
func planWork(node map[string]any) (work, staged float64) {
	f := func(k string) float64 { v, _ := node[k].(float64); return v }
	loops := f("Actual Loops")
	work = (f("Actual Rows") + f("Rows Removed by Filter") + f("Rows Removed by Join Filter") +
		f("Rows Removed by Index Recheck")) * loops
	if node["Relation Name"] == "import_rows" && node["Node Type"] != "ModifyTable" {
		staged = f("Actual Rows") * loops
	}
	children, _ := node["Plans"].([]any)
	for _, c := range children {
		w, s := planWork(c.(map[string]any))
		work, staged = work+w, max(staged, s)
	}
	return work, staged
}

// The merge of a batch costs the batch, not the tenant: with another
// tenant's contacts analyzed and this tenant's grown since (the statistics
// say it has none, as after a first big import or once another tenant
// dominates the table), each batch still reaches contacts through their
// indexes, one probe per staged row. (Regression: the UPDATE joined the
// tenant's whole contact list to the batch, 6–13 s a batch of 5,000 once
// the tenant had 20,000 contacts.)
func TestImportMergeWorkIsLinearInTheBatch(t *testing.T) {
	f := setupImport(t)
	ctx := context.Background()
	owner := testenv.Owner(t)
	const others, existing, rows = 5000, 4000, 300
	_, err := owner.Exec(ctx, `INSERT INTO contacts (tenant_id, external_id, name, phone, email, created_at, updated_at)
		SELECT $1, 'o-' || g, 'Other ' || g, '+1415' || lpad(g::text, 7, '0'), 'o' || g || '@example.com', now(), now()
		FROM generate_series(1, $2::int) AS g`, f.other.ID, others)
	require.NoError(t, err)
	_, err = owner.Exec(ctx, "ANALYZE contacts")
	require.NoError(t, err)
	// This tenant's contacts arrive after the statistics were taken.
	_, err = owner.Exec(ctx, `INSERT INTO contacts (tenant_id, external_id, name, phone, created_at, updated_at)
		SELECT $1, 'k' || g, 'Old ' || g, '+1312555' || lpad((2000 + g)::text, 4, '0'), now(), now()
		FROM generate_series(1, $2::int) AS g`, f.tenant.ID, existing)
	require.NoError(t, err)

	// Rows matching existing contacts (updates) and new ones.
	var b strings.Builder
	b.WriteString("Client ID,Name,Phone\n")
	for i := 0; i < rows; i++ {
		fmt.Fprintf(&b, "k%d,Person %d,312555%04d\n", i*20, i, 2000+i*20)
	}
	var rec planRecorder
	for _, dry := range []string{"?dry_run=true", ""} {
		id := f.upload(t, []byte(b.String()), dry)
		h := jobs.NewImportContacts(f.app.Deps)
		h.Store = rec.store(t)
		h.BatchRows = 100
		require.NoError(t, f.run(t, id, h))
		require.Equal(t, "succeeded", f.get(t, id)["status"])
	}
	for _, name := range []string{"ImportDryRunBatch", "ImportMergeBatch"} {
		plans := rec.named(name)
		require.NotEmpty(t, plans, name)
		for _, p := range plans {
			work, staged := planWork(p["Plan"].(map[string]any))
			require.Positive(t, staged, name)
			// About 15 rows of work per staged row when every lookup is
			// a probe; a scan of this tenant's contacts per batch or per
			// row is at least existing (4,000) per row.
			t.Logf("%s: %.0f rows of work for %.0f staged rows", name, work, staged)
			require.LessOrEqual(t, work, 50*staged, "%s: %.0f rows of work for %.0f staged rows", name, work, staged)
		}
	}
}
