package bench

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/filestore"
	"github.com/errandhq/errand/internal/pseudonym"
	"github.com/errandhq/errand/jobs"
)

// Export measures a whole-tenant export (1,000,000 contacts and 3,000,000
// messages at scale 1) against raw COPY (SELECT … ) TO STDOUT of the same
// two tables into nothing, in the same snapshot-less way the job reads
// them (as the application role, under row-level security). The job does
// everything a real export does: count, COPY, CSV guard or JSON framing,
// deflate, SHA-256, encryption at rest, commit, and the row's bookkeeping.
func Export() Benchmark {
	return Benchmark{
		Name: "export",
		Doc:  "tenant export (CSV and JSON zip into the encrypted file store) vs raw COPY … TO STDOUT of the same tables",
		Run:  runExport,
	}
}

const benchSecret = "bench-secret-key-0123456789abcdef-0123456789"

func runExport(ctx context.Context, env *Env, scale float64) ([]Row, error) {
	contacts := int(1_000_000 * scale)
	if contacts < 1000 {
		contacts = 1000
	}
	tenantID := uuid.New()
	fmt.Fprintf(env.Out, "export: seeding %d contacts and %d messages…\n", contacts, 3*contacts)
	start := time.Now()
	if err := seedExport(ctx, env, tenantID, contacts); err != nil {
		return nil, err
	}
	fmt.Fprintf(env.Out, "export: seeded in %s\n", time.Since(start).Round(time.Second))

	files, err := filestore.NewLocal(filepath.Join(env.TempDir, "files"), benchSecret)
	if err != nil {
		return nil, err
	}
	h := jobs.NewExportRun(jobs.Deps{Store: env.Store, Clock: clock.Real{}, Logger: env.Logger, Files: files,
		Pseudonyms: pseudonym.New(benchSecret), Retry: jobs.DefaultRetry})

	csvRow := Row{Name: "export tenant csv", Unit: "rows", Extra: map[string]string{}}
	jsonRow := Row{Name: "export tenant json", Unit: "rows", Extra: map[string]string{}}
	var baseline []Sample
	// This process's CPU time per run: what the exporter itself costs,
	// whatever else the machine is doing (PostgreSQL's share is the same
	// COPY work in both, plus the job's counts and contact join).
	cpu := map[*Row][]float64{}
	for round := 0; round < env.Rounds; round++ {
		b, err := env.Measure(ctx, func() (int, error) { return rawCopy(ctx, env.Store, tenantID) })
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		baseline = append(baseline, b)
		for _, r := range []*Row{&csvRow, &jsonRow} {
			format := "csv"
			if r == &jsonRow {
				format = "json"
			}
			var bytes int64
			before := processCPU()
			s, err := env.Measure(ctx, func() (int, error) {
				n, size, err := runOneExport(ctx, env.Store, files, h, tenantID, format)
				bytes = size
				return n, err
			})
			if err != nil {
				return nil, fmt.Errorf("export %s: %w", format, err)
			}
			used := (processCPU() - before).Seconds()
			cpu[r] = append(cpu[r], used)
			r.Job = append(r.Job, s)
			r.Extra["zip_MB"] = strconv.FormatFloat(float64(bytes)/(1<<20), 'f', 0, 64)
			fmt.Fprintf(env.Out, "export: round %d %s: baseline %.0f rows/s, job %.0f rows/s, exporter CPU %.1f s, %.0f MB zip, peak RSS %.0f MB\n",
				round+1, format, b.Rate(), s.Rate(), used, float64(bytes)/(1<<20), float64(s.PeakRSS)/(1<<20))
		}
	}
	csvRow.Baseline, jsonRow.Baseline = baseline, baseline
	for _, r := range []*Row{&csvRow, &jsonRow} {
		c := append([]float64(nil), cpu[r]...)
		sort.Float64s(c)
		r.Extra["exporter_cpu_s"] = strconv.FormatFloat(c[len(c)/2], 'f', 1, 64)
	}
	return []Row{csvRow, jsonRow}, nil
}

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// seedExport creates the tenant and its rows with generate_series, as the
// schema owner (the fast way; the bench is about reading them back).
func seedExport(ctx context.Context, env *Env, tenantID uuid.UUID, contacts int) error {
	conn, err := pgx.Connect(ctx, env.DatabaseURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	steps := []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO tenants (id, name, timezone, created_at, updated_at)
		  VALUES ($1, 'Bench Export Co', 'America/Chicago', now(), now())`, []any{tenantID}},
		{`INSERT INTO contacts (tenant_id, external_id, name, phone, email, address, notes, created_at, updated_at)
		  SELECT $1, 'cust-' || g, 'Customer Number ' || g, '+1312' || lpad(g::text, 7, '0'),
		         'customer' || g || '@example.com', g || ' Main Street, Springfield, IL 62701',
		         CASE WHEN g % 10 = 0 THEN '=HYPERLINK("http://example.com")' ELSE 'Side door, "ring twice"' END,
		         now() - g * interval '1 second', now()
		  FROM generate_series(1, $2::int) AS g`, []any{tenantID, contacts}},
		{`INSERT INTO messages (tenant_id, contact_id, kind, channel, body, destination, status, send_at, due_at,
		                        sent_at, delivered_at, provider_message_id, attempts, created_at, updated_at)
		  SELECT $1, c.id, 'reminder', 'sms',
		         'Reminder: your appointment with Acme Repair is tomorrow at 9:00 AM. Reply STOP to opt out.',
		         c.phone, 'delivered', c.created_at, c.created_at, c.created_at, c.created_at,
		         'SM' || md5(c.id::text || k), 1, c.created_at, c.created_at
		  FROM contacts c CROSS JOIN generate_series(1, 3) AS k
		  WHERE c.tenant_id = $1`, []any{tenantID}},
		{`VACUUM (ANALYZE) contacts`, nil},
		{`VACUUM (ANALYZE) messages`, nil},
	}
	for _, s := range steps {
		if _, err := conn.Exec(ctx, s.sql, s.args...); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	return nil
}

// rawCopy is the baseline: the two big tables straight out of COPY, as
// the application role in a tenant-scoped read-only snapshot.
func rawCopy(ctx context.Context, store *db.Store, tenantID uuid.UUID) (int, error) {
	var n int64
	err := store.InTenantTx(ctx, tenantID, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			for _, table := range []string{"contacts", "messages"} {
				tag, err := tx.Conn().PgConn().CopyTo(ctx, io.Discard,
					"COPY (SELECT * FROM "+table+" WHERE tenant_id = '"+tenantID.String()+"') TO STDOUT")
				if err != nil {
					return err
				}
				n += tag.RowsAffected()
			}
			return nil
		})
	return int(n), err
}

// runOneExport creates an export row and runs the job on it to the end,
// then deletes the file (the disk is not the subject).
func runOneExport(ctx context.Context, store *db.Store, files filestore.Store, h *jobs.ExportRun, tenantID uuid.UUID, format string) (int, int64, error) {
	var e db.Export
	err := store.InTenant(ctx, tenantID, func(q *db.Queries) (err error) {
		now := time.Now()
		e, err = q.ExportCreate(ctx, db.ExportCreateParams{TenantID: tenantID, Scope: "tenant", Format: format, Now: now, EnqueuedAt: &now})
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	job := jobs.NewExportRunJob(tenantID, e.ID)
	if err := h.ProcessTask(ctx, asynq.NewTask(job.Type, job.Payload)); err != nil {
		return 0, 0, err
	}
	err = store.InTenant(ctx, tenantID, func(q *db.Queries) (err error) {
		e, err = q.ExportGet(ctx, db.ExportGetParams{TenantID: tenantID, ID: e.ID})
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	if e.Status != "succeeded" || e.FileKey == nil || e.Bytes == nil {
		return 0, 0, fmt.Errorf("export ended %s", e.Status)
	}
	if err := files.Delete(ctx, *e.FileKey); err != nil {
		return 0, 0, err
	}
	return int(e.RowsDone), *e.Bytes, nil
}
