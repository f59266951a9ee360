package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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

// Import measures a client-list import (200,000 rows at scale 1; -scale 5
// is the 1,000,000) through the real job path — the upload
// decrypted from the file store, encoding and separator detection, CSV
// parsing, phone and email normalisation, in-batch dedupe, COPY into the
// staging table, the set-based merge, the rejected rows and the progress
// bookkeeping — against raw pgx CopyFrom of the same rows, already parsed
// and normalised, straight into contacts (as the schema owner, since COPY
// FROM refuses tables under row-level security). Each round imports into
// a fresh tenant, alternating baseline and job.
//
// The file: 10 columns as an old CRM exports them (First/Last Name,
// "Phone Number" in five formats, "E-mail Address", property address and
// type, closing dates in two formats, notes, a lead source nobody maps),
// 2 % bad rows (an unreadable phone and no email) and 5 % duplicates (a
// later row repeating an earlier client's phone).
func Import() Benchmark {
	return Benchmark{
		Name: "import",
		Doc:  "CSV client import through the job (parse, normalise, stage, merge) vs raw CopyFrom of the pre-parsed rows",
		Run:  runImport,
	}
}

// importRow is one generated client: what the file says and, for the
// baseline, what the import stores.
type importRow struct {
	bad, dup bool
	id       int
	phone    string // E.164
	cell     string // as written in the file
}

// genImport yields row i of an n-row file.
func genImport(i int) importRow {
	r := importRow{id: i}
	switch {
	case i%50 == 7:
		r.bad = true
	case i%20 == 3 && i > 100:
		r.dup, r.id = true, i-97 // an earlier client again
	}
	n := 1_000_000 + r.id // distinct, valid, in 312
	digits := "312" + strconv.Itoa(2000000+n%8000000)
	r.phone = "+1" + digits
	switch i % 5 {
	case 0:
		r.cell = "(" + digits[:3] + ") " + digits[3:6] + "-" + digits[6:]
	case 1:
		r.cell = digits[:3] + "." + digits[3:6] + "." + digits[6:]
	case 2:
		r.cell = "+1 " + digits[:3] + " " + digits[3:6] + " " + digits[6:]
	case 3:
		r.cell = digits
	default:
		r.cell = digits[:3] + "-" + digits[3:6] + "-" + digits[6:]
	}
	if r.bad {
		r.cell = "call me"
	}
	return r
}

// writeImportFile writes the CSV and returns how many contacts an import
// of it ends with.
func writeImportFile(path string, n int) (int, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("First Name,Last Name,Phone Number,E-mail Address,Property Address,Property Type,Closing Date,Notes,Lead Source,Agent\r\n")
	contacts := 0
	for i := 0; i < n; i++ {
		r := genImport(i)
		if !r.bad && !r.dup {
			contacts++
		}
		email := ""
		if !r.bad && r.id%3 != 0 {
			email = "client" + strconv.Itoa(r.id) + "@example.com"
		}
		date := fmt.Sprintf("%02d/%02d/20%02d", 1+r.id%12, 1+r.id%28, 10+r.id%15)
		if r.id%2 == 0 {
			date = fmt.Sprintf("20%02d-%02d-%02d", 10+r.id%15, 1+r.id%12, 1+r.id%28)
		}
		fmt.Fprintf(w, "Client,Number %d,%s,%s,\"%d Main Street, Springfield, IL 62701\",Single Family,%s,\"Closed fast, \"\"great\"\" client\",Zillow,Pat\r\n",
			r.id, r.cell, email, r.id, date)
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	return contacts, f.Close()
}

func runImport(ctx context.Context, env *Env, scale float64) ([]Row, error) {
	n := int(200_000 * scale)
	if n < 1000 {
		n = 1000
	}
	path := filepath.Join(env.TempDir, "clients.csv")
	contacts, err := writeImportFile(path, n)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(env.Out, "import: %d rows (%d clients), %.0f MB file\n", n, contacts, float64(st.Size())/(1<<20))
	others := max(1000, int(1_000_000*scale))
	if err := seedOtherTenant(ctx, env, others); err != nil {
		return nil, err
	}
	fmt.Fprintf(env.Out, "import: another tenant holds %d contacts\n", others)

	files, err := filestore.NewLocal(filepath.Join(env.TempDir, "files"), benchSecret)
	if err != nil {
		return nil, err
	}
	h := jobs.NewImportContacts(jobs.Deps{Store: env.Store, Clock: clock.Real{}, Logger: env.Logger, Files: files,
		Pseudonyms: pseudonym.New(benchSecret), Retry: jobs.DefaultRetry})
	owner, err := pgx.Connect(ctx, env.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer owner.Close(ctx)

	row := Row{Name: "import csv", Unit: "rows", Extra: map[string]string{"file_MB": strconv.FormatInt(st.Size()>>20, 10)}}
	for round := 0; round < env.Rounds; round++ {
		b, err := env.Measure(ctx, func() (int, error) { return rawImportCopy(ctx, owner, n) })
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		row.Baseline = append(row.Baseline, b)
		var got db.Import
		s, err := env.Measure(ctx, func() (int, error) {
			got, err = runOneImport(ctx, env, files, h, path, st.Size())
			return int(got.RowsTotal), err
		})
		if err != nil {
			return nil, fmt.Errorf("import: %w", err)
		}
		if got.RowsCreated != int64(contacts) {
			return nil, fmt.Errorf("import created %d contacts, want %d", got.RowsCreated, contacts)
		}
		row.Job = append(row.Job, s)
		row.Extra["rejected"] = strconv.FormatInt(got.RowsRejected, 10)
		row.Extra["duplicates"] = strconv.FormatInt(got.RowsDuplicates, 10)
		fmt.Fprintf(env.Out, "import: round %d: baseline %.0f rows/s, job %.0f rows/s (created %d, rejected %d, duplicates %d), peak RSS %.0f MB\n",
			round+1, b.Rate(), s.Rate(), got.RowsCreated, got.RowsRejected, got.RowsDuplicates, float64(s.PeakRSS)/(1<<20))
	}
	return []Row{row}, nil
}

// seedOtherTenant gives contacts to a tenant the import does not touch,
// and analyzes the table: imports run into a table other tenants already
// fill, whose statistics say nothing of the importing tenant. (Without
// it this benchmark hid a plan that joined the tenant's every contact to
// each batch: `bench all`, run after the export's 100,000 contacts, saw
// 0.01×.)
func seedOtherTenant(ctx context.Context, env *Env, n int) error {
	conn, err := pgx.Connect(ctx, env.DatabaseURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	tenantID := uuid.New()
	for _, s := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO tenants (id, name, timezone, created_at, updated_at)
		  VALUES ($1, 'Bench Import Neighbour', 'America/Chicago', now(), now())`, []any{tenantID}},
		{`INSERT INTO contacts (tenant_id, external_id, name, phone, email, address, created_at, updated_at)
		  SELECT $1, 'cust-' || g, 'Customer Number ' || g, '+1312' || lpad(g::text, 7, '0'),
		         'customer' || g || '@example.com', g || ' Main Street, Springfield, IL 62701', now(), now()
		  FROM generate_series(1, $2::int) AS g`, []any{tenantID, n}},
		{`VACUUM (ANALYZE) contacts`, nil},
	} {
		if _, err := conn.Exec(ctx, s.sql, s.args...); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	return nil
}

// rawImportCopy is the baseline: the file's good, distinct rows, already
// parsed and normalised, COPYed straight into contacts for a new tenant.
func rawImportCopy(ctx context.Context, owner *pgx.Conn, n int) (int, error) {
	tenantID := uuid.New()
	if _, err := owner.Exec(ctx, `INSERT INTO tenants (id, name, timezone, created_at, updated_at)
		VALUES ($1, 'Bench Import Baseline', 'America/Chicago', now(), now())`, tenantID); err != nil {
		return 0, err
	}
	now := time.Now()
	i := 0
	copied, err := owner.CopyFrom(ctx, pgx.Identifier{"contacts"},
		[]string{"tenant_id", "external_id", "name", "phone", "email", "address", "property_type", "closing_date",
			"notes", "created_at", "updated_at"},
		pgx.CopyFromFunc(func() ([]any, error) {
			for ; i < n; i++ {
				r := genImport(i)
				if r.bad || r.dup {
					continue
				}
				i++
				var email *string
				if r.id%3 != 0 {
					e := "client" + strconv.Itoa(r.id) + "@example.com"
					email = &e
				}
				date := time.Date(2010+r.id%15, time.Month(1+r.id%12), 1+r.id%28, 0, 0, 0, 0, time.UTC)
				return []any{tenantID, "import-" + uuid.NewString(), "Client Number " + strconv.Itoa(r.id), r.phone, email,
					strconv.Itoa(r.id) + " Main Street, Springfield, IL 62701", "Single Family", date,
					`Closed fast, "great" client`, now, now}, nil
			}
			return nil, nil
		}))
	return int(copied), err
}

// runOneImport stores the file for a new tenant (not timed separately:
// the upload is part of the import) and runs the job on it to the end.
func runOneImport(ctx context.Context, env *Env, files filestore.Store, h *jobs.ImportContacts, path string, size int64) (db.Import, error) {
	id := uuid.New()
	tenant, err := env.Store.Q().TenantCreate(ctx, db.TenantCreateParams{Name: "Bench Import",
		Timezone: "America/Chicago", DefaultRegion: "US", Now: time.Now()})
	if err != nil {
		return db.Import{}, err
	}
	tenantID := tenant.ID
	f, err := os.Open(path)
	if err != nil {
		return db.Import{}, err
	}
	defer f.Close()
	key := fmt.Sprintf(jobs.ImportFileKey, tenantID, id)
	info, err := filestore.Put(ctx, files, key, f)
	if err != nil {
		return db.Import{}, err
	}
	defer files.Delete(ctx, key) //nolint:errcheck // the disk is not the subject
	var imp db.Import
	err = env.Store.InTenant(ctx, tenantID, func(q *db.Queries) (err error) {
		now := time.Now()
		imp, err = q.ImportCreate(ctx, db.ImportCreateParams{ID: id, TenantID: tenantID, FileKey: &key,
			FileBytes: info.Size, FileSha256: info.SHA256, Mapping: []byte("{}"), Now: now, EnqueuedAt: &now})
		return err
	})
	if err != nil {
		return imp, err
	}
	job := jobs.NewImportContactsJob(tenantID, id)
	if err := h.ProcessTask(ctx, asynq.NewTask(job.Type, job.Payload)); err != nil {
		return imp, err
	}
	err = env.Store.InTenant(ctx, tenantID, func(q *db.Queries) (err error) {
		imp, err = q.ImportGet(ctx, db.ImportGetParams{TenantID: tenantID, ID: id})
		return err
	})
	if err == nil && imp.Status != "succeeded" {
		err = fmt.Errorf("import ended %s: %v", imp.Status, imp.Error)
	}
	return imp, err
}
