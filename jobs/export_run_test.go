package jobs_test

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/export"
	"github.com/errandhq/errand/internal/filestore"
	"github.com/errandhq/errand/internal/testapp"
	"github.com/errandhq/errand/internal/testenv"
	"github.com/errandhq/errand/jobs"
)

// The people in the export fixture. Pat's name is a spreadsheet formula;
// the notes hold every character CSV and COPY treat specially.
const (
	patName  = `=HYPERLINK("http://evil.example","Pat")`
	patPhone = "+13125550142"
	patEmail = "pat.doe@example.com"
	patNotes = "Gate code 1234, \"ring twice\"\nBack door\\side\ttab"
	samName  = "Sam Lee"
	samPhone = "+13125550143"
	samEmail = "sam.lee@example.com"
	samAddr  = "-1 Main St"
	samNotes = "@admin please"
	othName  = "Other Tenant Person"
	othPhone = "+13125559999"
)

type exportFixture struct {
	app    *testapp.App
	tenant testapp.Tenant
	other  testapp.Tenant
	pat    db.ContactUpsertRow
	sam    db.ContactUpsertRow
}

func setupExport(t *testing.T) exportFixture {
	t.Helper()
	app := testapp.New(t)
	f := exportFixture{app: app, tenant: app.NewTenant("Acme Repair"), other: app.NewTenant("Other Co")}
	ctx := context.Background()
	upsert := func(tenant uuid.UUID, ext, name, phone, email string, address, notes *string) db.ContactUpsertRow {
		var c db.ContactUpsertRow
		require.NoError(t, app.Store.InTenant(ctx, tenant, func(q *db.Queries) (err error) {
			c, err = q.ContactUpsert(ctx, db.ContactUpsertParams{TenantID: tenant, ExternalID: ext, Name: name,
				Phone: &phone, Email: &email, Address: address, Notes: notes, Now: app.Clock.Now()})
			return err
		}))
		return c
	}
	pn, sa, sn := patNotes, samAddr, samNotes
	f.pat = upsert(f.tenant.ID, "cust-1", patName, patPhone, patEmail, nil, &pn)
	f.sam = upsert(f.tenant.ID, "cust-2", samName, samPhone, samEmail, &sa, &sn)
	oth := upsert(f.other.ID, "cust-1", othName, othPhone, "other@example.com", nil, nil)

	msg := func(tenant, contact uuid.UUID, channel, body string) {
		require.NoError(t, app.Store.InTenant(ctx, tenant, func(q *db.Queries) error {
			_, err := app.Dispatcher.InsertMessage(ctx, q, jobs.NewMessage{TenantID: tenant, ContactID: contact,
				Kind: "manual", Channel: channel, Body: body, SendAt: app.Clock.Now()})
			return err
		}))
	}
	msg(f.tenant.ID, f.pat.ID, "sms", "Your visit is confirmed")
	msg(f.tenant.ID, f.pat.ID, "email", "Receipt for your repair")
	msg(f.tenant.ID, f.sam.ID, "sms", "See you at 9")
	msg(f.tenant.ID, uuid.Nil, "email", "Our privacy policy changes on 1 March")
	msg(f.other.ID, oth.ID, "sms", "Other tenant's message")

	optOut := func(tenant uuid.UUID, channel, address, keyword string) {
		hash := app.Deps.Pseudonyms.Address(channel, address)
		require.NoError(t, app.Store.InTenant(ctx, tenant, func(q *db.Queries) error {
			if err := q.SuppressionAdd(ctx, db.SuppressionAddParams{TenantID: tenant, Channel: channel, AddressHash: hash,
				Reason: "opted_out", Source: "twilio_inbound", Now: app.Clock.Now()}); err != nil {
				return err
			}
			return q.SuppressionEventRecord(ctx, db.SuppressionEventRecordParams{TenantID: tenant, Channel: channel,
				AddressHash: hash, Action: "opt_out", Keyword: keyword, Source: "twilio_inbound", OccurredAt: app.Clock.Now()})
		}))
	}
	optOut(f.tenant.ID, "sms", patPhone, "STOP")
	optOut(f.tenant.ID, "email", samEmail, "")
	optOut(f.other.ID, "sms", othPhone, "STOP")
	return f
}

func (f exportFixture) insert(t *testing.T, scope, format string, contact *uuid.UUID) db.Export {
	t.Helper()
	var e db.Export
	require.NoError(t, f.app.Store.InTenant(context.Background(), f.tenant.ID, func(q *db.Queries) (err error) {
		e, err = f.app.Dispatcher.InsertExport(context.Background(), q, jobs.NewExport{TenantID: f.tenant.ID,
			Scope: scope, ContactID: contact, Format: format})
		return err
	}))
	return e
}

// bulkContacts adds n contacts at once, with names that do not compress
// away (so the archive grows with them).
func (f exportFixture) bulkContacts(t *testing.T, n int) {
	t.Helper()
	_, err := testenv.Owner(t).Exec(context.Background(), `INSERT INTO contacts (tenant_id, external_id, name, created_at, updated_at)
		SELECT $1, 'bulk-' || g, md5(g || ':' || random()) || md5(random()::text), $2, $2
		FROM generate_series(1, $3::int) AS g`,
		f.tenant.ID, f.app.Clock.Now(), n)
	require.NoError(t, err)
}

func exportTask(e db.Export) *asynq.Task {
	j := jobs.NewExportRunJob(e.TenantID, e.ID)
	return asynq.NewTask(j.Type, j.Payload)
}

func (f exportFixture) get(t *testing.T, e db.Export) db.Export {
	t.Helper()
	var out db.Export
	require.NoError(t, f.app.Store.InTenant(context.Background(), e.TenantID, func(q *db.Queries) (err error) {
		out, err = q.ExportGet(context.Background(), db.ExportGetParams{TenantID: e.TenantID, ID: e.ID})
		return err
	}))
	return out
}

// run creates and runs an export to the end.
func (f exportFixture) run(t *testing.T, scope, format string, contact *uuid.UUID) db.Export {
	t.Helper()
	e := f.insert(t, scope, format, contact)
	require.NoError(t, jobs.NewExportRun(f.app.Deps).ProcessTask(context.Background(), exportTask(e)))
	e = f.get(t, e)
	require.Equal(t, "succeeded", e.Status, "error: %v", e.Error)
	return e
}

// archive is a finished export read back from the file store, its
// checksum and size checked against the row.
type archive struct {
	zip      *zip.Reader
	manifest export.Manifest
}

func (f exportFixture) open(t *testing.T, e db.Export) archive {
	t.Helper()
	require.NotNil(t, e.FileKey)
	rc, err := f.app.Files.Open(context.Background(), *e.FileKey)
	require.NoError(t, err)
	defer rc.Close()
	raw, err := io.ReadAll(rc)
	require.NoError(t, err)
	sum := sha256.Sum256(raw)
	require.Equal(t, hex.EncodeToString(sum[:]), *e.Sha256)
	require.EqualValues(t, len(raw), *e.Bytes)
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	require.NoError(t, err)
	a := archive{zip: zr}
	require.NoError(t, json.Unmarshal(a.read(t, export.ManifestName), &a.manifest))
	return a
}

func (a archive) read(t *testing.T, name string) []byte {
	t.Helper()
	rc, err := a.zip.Open(name)
	require.NoError(t, err, "the archive has %s", name)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return b
}

func (a archive) names() []string {
	var out []string
	for _, f := range a.zip.File {
		out = append(out, f.Name)
	}
	return out
}

func (a archive) rows(table string) int64 {
	for _, tb := range a.manifest.Tables {
		if tb.Name == table {
			return tb.Rows
		}
	}
	return -1
}

// csvTable reads a CSV file as maps by column name.
func (a archive) csvTable(t *testing.T, name string) []map[string]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(a.read(t, name))).ReadAll()
	require.NoError(t, err, name)
	require.NotEmpty(t, recs, "%s has a header", name)
	var out []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, col := range recs[0] {
			m[col] = r[i]
		}
		out = append(out, m)
	}
	return out
}

// jsonTable reads a .jsonl or .json file as objects.
func (a archive) jsonTable(t *testing.T, name string) []map[string]any {
	t.Helper()
	raw := a.read(t, name)
	var out []map[string]any
	if strings.HasSuffix(name, ".json") {
		require.NoError(t, json.Unmarshal(raw, &out), name)
		return out
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "%s: %s", name, sc.Text())
		out = append(out, m)
	}
	require.NoError(t, sc.Err())
	return out
}

func byKey[T any](rows []map[string]T, key string) map[string]map[string]T {
	out := map[string]map[string]T{}
	for _, r := range rows {
		out[any(r[key]).(string)] = r
	}
	return out
}

// checkManifest verifies every file the manifest lists against the zip.
func checkManifest(t *testing.T, a archive) {
	t.Helper()
	listed := map[string]bool{export.ManifestName: true}
	for _, f := range a.manifest.Files {
		b := a.read(t, f.Name)
		sum := sha256.Sum256(b)
		require.Equal(t, hex.EncodeToString(sum[:]), f.SHA256, f.Name)
		require.EqualValues(t, len(b), f.Bytes, f.Name)
		listed[f.Name] = true
	}
	for _, name := range a.names() {
		require.True(t, listed[name], "%s is in the manifest", name)
	}
	require.Equal(t, export.SchemaVersion(), a.manifest.SchemaVersion)
	require.GreaterOrEqual(t, a.manifest.SchemaVersion, int64(41))
}

func TestTenantExportCSV(t *testing.T) {
	f := setupExport(t)
	e := f.run(t, "tenant", "csv", nil)
	a := f.open(t, e)
	checkManifest(t, a)

	want := []string{"README.txt", "account.csv", "api_keys.csv", "contacts.csv", "messages.csv", "locations.csv",
		"location_templates.csv", "appointments.csv", "opt_outs.csv", "opt_out_history.csv", "verifications.csv",
		"credentials.csv", "credential_reviews.csv", "deletions.csv", "imports.csv", "exports.csv", "privacy_requests.csv",
		"privacy_request_history.csv", "security_log.csv", "manifest.json"}
	require.Equal(t, want, a.names(), "README first, manifest last, one file per table")
	require.Equal(t, "errand-export", a.manifest.Format)
	require.Equal(t, e.ID.String(), a.manifest.ExportID)
	require.Equal(t, f.tenant.ID.String(), a.manifest.TenantID)
	require.Equal(t, export.ScopeTenant, a.manifest.Scope)
	require.Nil(t, a.manifest.ContactID)
	require.Equal(t, f.app.Clock.Now(), a.manifest.GeneratedAt)
	for table, n := range map[string]int64{"tenants": 1, "api_keys": 1, "contacts": 2, "messages": 4, "suppressions": 2,
		"suppression_events": 2, "imports": 0, "exports": 1, "privacy_requests": 0} {
		require.Equal(t, n, a.rows(table), table)
	}
	require.Equal(t, e.RowsDone, a.manifest.Rows(), "the row's count is the manifest's")

	readme := string(a.read(t, "README.txt"))
	for _, s := range export.Sources() {
		if s.Tenant == "" {
			continue // a person's export only
		}
		require.Contains(t, readme, s.File+".csv", "the README explains every file")
		require.Contains(t, readme, s.Description)
	}

	contacts := byKey(a.csvTable(t, "contacts.csv"), "id")
	require.Len(t, contacts, 2, "only this tenant's contacts")
	pat, sam := contacts["cust-1"], contacts["cust-2"]
	require.Equal(t, "'"+patName, pat["name"], "a formula is neutralised")
	require.Equal(t, patPhone, pat["phone"], "an E.164 number is kept as it is")
	require.Equal(t, patNotes, pat["notes"], "quotes, commas, newlines, backslashes and tabs survive")
	require.Equal(t, "'"+samAddr, sam["address"])
	require.Equal(t, "'"+samNotes, sam["notes"])
	require.Empty(t, sam["timezone"], "NULL is an empty field")

	msgs := a.csvTable(t, "messages.csv")
	require.Len(t, msgs, 4)
	toOwner := 0
	for _, m := range msgs {
		require.Equal(t, "queued", m["status"], "delivery status is there")
		require.NotContains(t, m["body"], "Other tenant")
		if m["contact_id"] == "" {
			toOwner++
		}
	}
	require.Equal(t, 1, toOwner)

	hist := a.csvTable(t, "opt_out_history.csv")
	require.Len(t, hist, 2)
	pseudonyms := map[string]string{}
	for _, h := range hist {
		pseudonyms[h["channel"]] = h["address_pseudonym"]
	}
	require.Equal(t, hex.EncodeToString(f.app.Deps.Pseudonyms.Address("sms", patPhone)), pseudonyms["sms"])
	require.Equal(t, e.ID.String(), a.csvTable(t, "exports.csv")[0]["id"], "the export lists itself")
}

func TestTenantExportJSON(t *testing.T) {
	f := setupExport(t)
	e := f.run(t, "tenant", "json", nil)
	a := f.open(t, e)
	checkManifest(t, a)
	names := a.names()
	require.Contains(t, names, "contacts.jsonl", "large tables are JSON Lines")
	require.Contains(t, names, "messages.jsonl")
	require.Contains(t, names, "api_keys.json", "small tables are one JSON array")
	require.Contains(t, names, "privacy_requests.json")

	contacts := byKey(a.jsonTable(t, "contacts.jsonl"), "id")
	require.Len(t, contacts, 2)
	require.Equal(t, patName, contacts["cust-1"]["name"], "JSON needs no neutralising: values are exact")
	require.Equal(t, patNotes, contacts["cust-1"]["notes"], "COPY did not double the backslashes")
	require.Nil(t, contacts["cust-2"]["timezone"])
	created, err := time.Parse(time.RFC3339Nano, contacts["cust-1"]["created_at"].(string))
	require.NoError(t, err, "times are ISO 8601")
	require.True(t, created.Equal(f.pat.CreatedAt))

	require.Len(t, a.jsonTable(t, "messages.jsonl"), 4)
	require.Empty(t, a.jsonTable(t, "privacy_requests.json"), "an empty table is an empty array")
	require.Len(t, a.jsonTable(t, "api_keys.json"), 1)
	for _, k := range a.jsonTable(t, "api_keys.json") {
		require.NotContains(t, k, "key_hash", "no secrets")
	}
	sec := a.jsonTable(t, "security_log.jsonl")
	require.NotEmpty(t, sec)
}

// A subject access request: the person's record, their appointments,
// messages, verifications sent to their phone or email (no codes), rejected
// import rows naming them and their opt-out history, and no one else's.
func TestContactExport(t *testing.T) {
	f := setupExport(t)
	ctx := context.Background()
	owner := testenv.Owner(t)
	now := f.app.Clock.Now()
	_, err := owner.Exec(ctx, `WITH l AS (INSERT INTO locations (tenant_id, external_id, name, timezone, settings, created_at, updated_at)
		VALUES ($1, 'loc', 'Main', 'UTC', '{}', $4, $4) RETURNING id)
		INSERT INTO appointments (tenant_id, external_id, contact_id, location_id, starts_at, address, technician, status, created_at, updated_at)
		SELECT $1, v.ext, v.contact, l.id, $4, '1 Main St', 'Bob', 'scheduled', $4, $4
		FROM l, (VALUES ('appt-pat', $2::uuid), ('appt-sam', $3::uuid)) AS v(ext, contact)`,
		f.tenant.ID, f.pat.ID, f.sam.ID, now)
	require.NoError(t, err)
	verification := func(channel, to string) {
		_, err := owner.Exec(ctx, `INSERT INTO verifications (id, tenant_id, channel, destination, destination_hash, brand, status,
			max_attempts, expires_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'Acme', 'approved', 5, $6, $6, $6)`,
			uuid.New(), f.tenant.ID, channel, to, f.app.Deps.Pseudonyms.Address(channel, to), now)
		require.NoError(t, err)
	}
	verification("sms", patPhone)
	verification("email", patEmail)
	verification("sms", samPhone)
	// A code sent to their phone is a message to them without a contact
	// link; one to someone else's phone is not theirs.
	code := func(to string) {
		_, err := owner.Exec(ctx, `INSERT INTO messages (tenant_id, kind, channel, body, destination, status, send_at, due_at, created_at, updated_at)
			VALUES ($1, 'verification', 'sms', '', $2, 'sent', $3, $3, $3, $3)`, f.tenant.ID, to, now)
		require.NoError(t, err)
	}
	code(patPhone)
	code(samPhone)
	_, err = owner.Exec(ctx, `WITH i AS (INSERT INTO imports (tenant_id, status, due_at, created_at, updated_at)
		VALUES ($1, 'succeeded', $2, $2, $2) RETURNING id)
		INSERT INTO import_errors (import_id, tenant_id, line, reason, raw)
		SELECT i.id, $1, v.line, 'invalid', v.raw::jsonb FROM i, (VALUES
			(2, '["r1", "Someone", "(312) 555-0142", ""]'),
			(3, '["r2", "Nobody", "not a phone", " PAT.DOE@example.com"]'),
			(4, '["r3", "Someone Else", "(312) 555-01429", "pat.doe@example.com.au"]')) AS v(line, raw)`, f.tenant.ID, now)
	require.NoError(t, err)

	e := f.run(t, "contact", "csv", &f.pat.ID)
	a := f.open(t, e)
	checkManifest(t, a)
	require.Equal(t, "cust-1", *a.manifest.ContactID)
	require.NotContains(t, a.names(), "account.csv", "the account's own records are not the person's")
	require.NotContains(t, a.names(), "security_log.csv")

	contacts := a.csvTable(t, "contacts.csv")
	require.Len(t, contacts, 1)
	require.Equal(t, "cust-1", contacts[0]["id"])
	msgs := a.csvTable(t, "messages.csv")
	require.Len(t, msgs, 3, "their two messages and the code sent to their phone")
	for _, m := range msgs {
		if m["kind"] == "verification" {
			require.Equal(t, patPhone, m["destination"])
			require.Empty(t, m["contact_id"])
			continue
		}
		require.Equal(t, "cust-1", m["contact_id"])
	}
	appts := a.csvTable(t, "appointments.csv")
	require.Len(t, appts, 1)
	require.Equal(t, "appt-pat", appts[0]["id"])
	require.Equal(t, "cust-1", appts[0]["contact_id"])
	vers := a.csvTable(t, "verifications.csv")
	require.Len(t, vers, 2, "the codes sent to their phone and their email")
	for _, v := range vers {
		require.Contains(t, []string{patPhone, patEmail}, v["destination"])
		require.NotContains(t, v, "code_hash", "no codes")
	}
	rejected := a.csvTable(t, "rejected_import_rows.csv")
	require.Len(t, rejected, 2, "the rows with their phone as typed and their email in capitals; not the near misses")
	require.Equal(t, "2", rejected[0]["line"])
	require.Equal(t, "3", rejected[1]["line"])
	hist := a.csvTable(t, "opt_out_history.csv")
	require.Len(t, hist, 1, "matched through the pseudonyms of their phone and email")
	require.Equal(t, "STOP", hist[0]["keyword"])
	require.Len(t, a.csvTable(t, "opt_outs.csv"), 1)
	require.Contains(t, string(a.read(t, "README.txt")), `contact "cust-1"`)
	require.Contains(t, string(a.read(t, "README.txt")), "rejected_import_rows.csv")

	sam := f.open(t, f.run(t, "contact", "json", &f.sam.ID))
	hist2 := sam.jsonTable(t, "opt_out_history.jsonl")
	require.Len(t, hist2, 1)
	require.Equal(t, "email", hist2[0]["channel"])
}

// The contact was erased between the request and the run: the export
// fails for good, with a reason, and publishes nothing.
func TestContactExportOfADeletedContactFails(t *testing.T) {
	f := setupExport(t)
	e := f.insert(t, "contact", "csv", &f.pat.ID)
	_, err := testenv.Owner(t).Exec(context.Background(), "DELETE FROM contacts WHERE id = $1", f.pat.ID)
	require.NoError(t, err)
	err = jobs.NewExportRun(f.app.Deps).ProcessTask(context.Background(), exportTask(e))
	require.ErrorIs(t, err, asynq.SkipRetry)
	got := f.get(t, e)
	require.Equal(t, "failed", got.Status)
	require.Equal(t, "the contact was deleted before the export ran", *got.Error)
	require.Nil(t, got.FileKey)
}

// Stored files (credential documents) are copied into the zip as they are,
// each listed in the manifest with its checksum.
func TestDocumentsSourceCopiesStoredFiles(t *testing.T) {
	f := setupExport(t)
	ctx := context.Background()
	doc := bytes.Repeat([]byte("%PDF-1.7 licence scan "), 10000)
	key := "tenants/" + f.tenant.ID.String() + "/credentials/doc-1.pdf"
	_, err := filestore.Put(ctx, f.app.Files, key, bytes.NewReader(doc))
	require.NoError(t, err)
	h := jobs.NewExportRun(f.app.Deps)
	h.Exporter.Sources = append(h.Exporter.Sources, export.Source{
		Name: "scans", File: "scans", Documents: true,
		Description: "Documents as uploaded.",
		Tenant: `SELECT key, name FROM (VALUES ('` + key + `', '../scans/driver licence.pdf'),
			('` + key + `', 'driver licence.pdf')) AS d(key, name)`,
	})
	e := f.insert(t, "tenant", "csv", nil)
	require.NoError(t, h.ProcessTask(ctx, exportTask(e)))
	a := f.open(t, f.get(t, e))
	checkManifest(t, a)
	require.Equal(t, doc, a.read(t, "documents/scans/driver_licence.pdf"))
	require.Equal(t, doc, a.read(t, "documents/scans/driver_licence-2.pdf"), "names stay unique")
	require.EqualValues(t, 2, a.rows("scans"))
	for _, zf := range a.zip.File {
		if strings.HasPrefix(zf.Name, "documents/") {
			require.Equal(t, zip.Store, zf.Method, "documents are stored, not compressed again")
		}
	}
	require.Contains(t, string(a.read(t, "README.txt")), "documents/scans/")
}

// killingStore stands in for the file store of a worker that dies after
// writing some of the archive: the attempt's context is cancelled mid-write
// and whatever it wrote is left behind as a SIGKILL would leave it.
type killingStore struct {
	filestore.Store
	after  int64
	cancel context.CancelFunc
	wrote  atomic.Int64
}

func (k *killingStore) Create(ctx context.Context, key string) (filestore.Writer, error) {
	w, err := k.Store.Create(ctx, key)
	return &killingWriter{Writer: w, k: k}, err
}

type killingWriter struct {
	filestore.Writer
	k *killingStore
}

func (w *killingWriter) Write(p []byte) (int, error) {
	if w.k.wrote.Add(int64(len(p))) > w.k.after {
		w.k.cancel()
	}
	return w.Writer.Write(p)
}

func (w *killingWriter) Abort() error { return nil } // killed: nothing cleans up

// A worker killed mid-export: no file appears, the API shows no link, a
// retry while the claim is fresh backs off, and once it is stale the next
// attempt writes one complete file and leaves nothing else behind.
func TestExportKillAndRetryPublishesOneCompleteFile(t *testing.T) {
	f := setupExport(t)
	ctx := context.Background()
	// Enough rows that the archive is well past the point of death.
	f.bulkContacts(t, 3000)
	e := f.insert(t, "tenant", "csv", nil)

	kctx, cancel := context.WithCancel(ctx)
	h := jobs.NewExportRun(f.app.Deps)
	h.Files = &killingStore{Store: f.app.Files, after: 64 << 10, cancel: cancel}
	h.Exporter.ProgressEvery = 100
	err := h.ProcessTask(kctx, exportTask(e))
	require.Error(t, err)
	// A SIGKILL records nothing: the row stays as the claim left it.
	_, err = testenv.Owner(t).Exec(ctx, "UPDATE exports SET status = 'running', error = NULL WHERE id = $1", e.ID)
	require.NoError(t, err)

	got := f.get(t, e)
	require.Equal(t, "running", got.Status)
	require.Nil(t, got.FileKey)
	require.Positive(t, got.RowsDone, "progress was recorded before the death")
	require.Less(t, got.RowsDone, got.RowsTotal)
	resp := f.app.Do("GET", "/v1/exports/"+e.ID.String(), f.tenant.Key, nil)
	require.Equal(t, 200, resp.Status)
	require.Nil(t, resp.JSON()["download_url"], "nothing to download while running")
	require.Equal(t, []string{}, exportFiles(t, f, e), "the dead attempt published no file")

	err = jobs.NewExportRun(f.app.Deps).ProcessTask(ctx, exportTask(e))
	require.ErrorContains(t, err, "another worker is running this export", "a fresh claim is respected")

	f.app.Clock.Advance(6 * time.Minute)
	require.NoError(t, jobs.NewExportRun(f.app.Deps).ProcessTask(ctx, exportTask(e)))
	got = f.get(t, e)
	require.Equal(t, "succeeded", got.Status)
	require.EqualValues(t, 2, got.Attempts)
	a := f.open(t, got)
	checkManifest(t, a)
	require.EqualValues(t, 3002, a.rows("contacts"), "complete")
	require.Equal(t, []string{e.ID.String() + "-2.zip"}, exportFiles(t, f, e), "exactly one file")

	// The dead attempt's hidden partial file goes with the periodic sweep.
	partials := func() []string {
		m, err := filepath.Glob(filepath.Join(f.app.FilesDir, "tenants", e.TenantID.String(), "exports", ".*partial*"))
		require.NoError(t, err)
		return m
	}
	require.Len(t, partials(), 1)
	sweep := jobs.NewExportExpire(f.app.Deps)
	require.NoError(t, sweep.ProcessTask(ctx, asynq.NewTask(jobs.TypeExportExpire, nil)))
	require.Len(t, partials(), 1, "not while its writer might be alive")
	f.app.Clock.Advance(25 * time.Hour)
	require.NoError(t, sweep.ProcessTask(ctx, asynq.NewTask(jobs.TypeExportExpire, nil)))
	require.Empty(t, partials())
	require.Equal(t, []string{e.ID.String() + "-2.zip"}, exportFiles(t, f, e))
}

// An attempt that committed its file and died before recording it: the
// next attempt's success removes the orphan.
func TestExportOrphanOfADeadAttemptIsRemoved(t *testing.T) {
	f := setupExport(t)
	ctx := context.Background()
	e := f.insert(t, "tenant", "csv", nil)
	_, err := testenv.Owner(t).Exec(ctx, "UPDATE exports SET status = 'running', attempts = 1, heartbeat_at = $2 WHERE id = $1",
		e.ID, f.app.Clock.Now().Add(-time.Hour))
	require.NoError(t, err)
	orphan := "tenants/" + f.tenant.ID.String() + "/exports/" + e.ID.String() + "-1.zip"
	_, err = filestore.Put(ctx, f.app.Files, orphan, strings.NewReader("complete but unrecorded"))
	require.NoError(t, err)

	require.NoError(t, jobs.NewExportRun(f.app.Deps).ProcessTask(ctx, exportTask(e)))
	require.Equal(t, []string{e.ID.String() + "-2.zip"}, exportFiles(t, f, e))
}

// exportFiles lists the committed files (not hidden partial writes) the
// file store holds for an export.
func exportFiles(t *testing.T, f exportFixture, e db.Export) []string {
	t.Helper()
	dir := filepath.Join(f.app.FilesDir, "tenants", e.TenantID.String(), "exports")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return []string{}
	}
	require.NoError(t, err)
	out := []string{}
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), e.ID.String()) {
			out = append(out, en.Name())
		}
	}
	sort.Strings(out)
	return out
}

// Finished export files are deleted after their time by the periodic
// sweep, and their exports marked expired.
func TestExportFilesExpire(t *testing.T) {
	f := setupExport(t)
	ctx := context.Background()
	e := f.run(t, "tenant", "csv", nil)
	require.Equal(t, f.app.Clock.Now().Add(jobs.DefaultExportTTL), *e.FileExpiresAt)
	sweep := jobs.NewExportExpire(f.app.Deps)

	f.app.Clock.Advance(jobs.DefaultExportTTL - time.Minute)
	n, err := sweep.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "not before its time")
	ok, err := f.app.Files.Exists(ctx, *e.FileKey)
	require.NoError(t, err)
	require.True(t, ok)

	f.app.Clock.Advance(time.Minute)
	n, err = sweep.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	ok, err = f.app.Files.Exists(ctx, *e.FileKey)
	require.NoError(t, err)
	require.False(t, ok, "the file is gone")
	got := f.get(t, e)
	require.Equal(t, "expired", got.Status)
	require.Nil(t, got.FileKey)
	n, err = sweep.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "once")

	// The TTL is configurable.
	d := f.app.Deps
	d.ExportTTL = time.Hour
	h := jobs.NewExportRun(d)
	e2 := f.insert(t, "tenant", "json", nil)
	require.NoError(t, h.ProcessTask(ctx, exportTask(e2)))
	require.Equal(t, f.app.Clock.Now().Add(time.Hour), *f.get(t, e2).FileExpiresAt)
}

// Through a real worker: the task ID is derived from the row, the payload
// carries IDs only, and progress ends up as the task's result.
func TestExportThroughTheWorker(t *testing.T) {
	f := setupExport(t)
	ctx := context.Background()
	e := f.insert(t, "tenant", "csv", nil)
	f.app.Dispatcher.EnqueueExport(ctx, e)
	job := jobs.NewExportRunJob(e.TenantID, e.ID)
	require.Equal(t, "export:"+e.ID.String(), job.ID)
	info, err := f.app.Inspector.GetTaskInfo(jobs.QueueBulk, job.ID)
	require.NoError(t, err)
	var payload map[string]any
	require.NoError(t, json.Unmarshal(info.Payload, &payload))
	require.Equal(t, map[string]any{"tenant_id": e.TenantID.String(), "export_id": e.ID.String()}, payload)

	f.app.StartWorker(2)
	f.app.Eventually(10*time.Second, "export succeeded", func() bool { return f.get(t, e).Status == "succeeded" })
	got := f.get(t, e)
	f.app.Eventually(5*time.Second, "task completed", func() bool {
		info, err = f.app.Inspector.GetTaskInfo(jobs.QueueBulk, job.ID)
		return err == nil && info.State == asynq.TaskStateCompleted
	})
	var res jobs.ExportResult
	require.NoError(t, json.Unmarshal(info.Result, &res))
	require.Equal(t, jobs.ExportResult{Status: "succeeded", RowsDone: got.RowsDone, RowsTotal: got.RowsDone, Progress: 100,
		Bytes: *got.Bytes, SHA256: *got.Sha256}, res)

	// Nothing personal reached Redis or the logs.
	checkNoPersonalData(t, f)
}

func checkNoPersonalData(t *testing.T, f exportFixture) {
	t.Helper()
	ctx := context.Background()
	secrets := []string{patPhone, patEmail, "Gate code", samName, samEmail, "HYPERLINK", "Your visit is confirmed"}
	logs := f.app.Logs.String()
	for _, s := range secrets {
		require.NotContains(t, logs, s)
	}
	keys, err := f.app.Redis.Keys(ctx, "*").Result()
	require.NoError(t, err)
	for _, k := range keys {
		dump, err := f.app.Redis.Dump(ctx, k).Result()
		require.NoError(t, err)
		for _, s := range secrets {
			require.NotContains(t, k+dump, s, "redis key %s", k)
		}
	}
}

// Redis loses the task of a queued export, or the worker running one dies
// for good: the dispatcher's scans bring it back.
func TestDispatcherRecoversExports(t *testing.T) {
	f := setupExport(t)
	ctx := context.Background()
	_, err := f.app.Dispatcher.Scan(ctx) // sets the epoch
	require.NoError(t, err)
	queued := f.insert(t, "tenant", "csv", nil)
	f.app.Dispatcher.EnqueueExport(ctx, queued)
	require.NoError(t, f.app.Redis.FlushDB(ctx).Err())
	res, err := f.app.Dispatcher.Scan(ctx)
	require.NoError(t, err)
	require.True(t, res.RedisLost)
	_, err = f.app.Inspector.GetTaskInfo(jobs.QueueBulk, "export:"+queued.ID.String())
	require.NoError(t, err, "re-enqueued from PostgreSQL")

	// A running export whose worker died and whose task is gone.
	dead := f.insert(t, "tenant", "json", nil)
	_, err = testenv.Owner(t).Exec(ctx, "UPDATE exports SET status = 'running', attempts = 1, heartbeat_at = $2, enqueued_at = $2 WHERE id = $1",
		dead.ID, f.app.Clock.Now().Add(-time.Hour))
	require.NoError(t, err)
	res, err = f.app.Dispatcher.Scan(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, res.Rekicked, 1)
	f.app.StartWorker(2)
	f.app.Eventually(10*time.Second, "both exports finished", func() bool {
		return f.get(t, queued).Status == "succeeded" && f.get(t, dead).Status == "succeeded"
	})
}

// When asynq gives up on an export, the row says failed with a reason, the
// access request it answers goes back to received (someone must act before
// the deadline), and no file of it is left.
func TestExportGiveUpSendsTheAccessRequestBack(t *testing.T) {
	f := setupExport(t)
	ctx := context.Background()
	var e db.Export
	var r db.PrivacyRequest
	now := f.app.Clock.Now()
	require.NoError(t, f.app.Store.InTenant(ctx, f.tenant.ID, func(q *db.Queries) (err error) {
		r, err = q.PrivacyRequestCreate(ctx, db.PrivacyRequestCreateParams{TenantID: f.tenant.ID, Type: jobs.PrivacyAccess,
			Subject: "contact", ContactID: &f.pat.ID, ReceivedAt: now, DueAt: now.AddDate(0, 0, 30), Now: now})
		if err != nil {
			return err
		}
		e, err = f.app.Dispatcher.InsertExport(ctx, q, jobs.NewExport{TenantID: f.tenant.ID, Scope: "contact",
			ContactID: &f.pat.ID, Format: "csv", PrivacyRequestID: &r.ID})
		if err != nil {
			return err
		}
		if err := q.PrivacyRequestLinkExport(ctx, db.PrivacyRequestLinkExportParams{ExportID: &e.ID, Now: now,
			TenantID: f.tenant.ID, ID: r.ID}); err != nil {
			return err
		}
		r.ExportID = &e.ID
		_, err = jobs.PrivacyMove(ctx, q, r, jobs.PrivacyInProgress, "export_started", "test", "", now)
		return err
	}))
	_, err := testenv.Owner(t).Exec(ctx, "UPDATE exports SET status = 'running', attempts = 2 WHERE id = $1", e.ID)
	require.NoError(t, err)
	orphan := "tenants/" + f.tenant.ID.String() + "/exports/" + e.ID.String() + "-2.zip"
	_, err = filestore.Put(ctx, f.app.Files, orphan, strings.NewReader("committed, then the worker died"))
	require.NoError(t, err)

	job := jobs.NewExportRunJob(e.TenantID, e.ID)
	require.NoError(t, jobs.NewExportRun(f.app.Deps).GiveUp(ctx, job.Payload, errors.New("connection reset")))
	got := f.get(t, e)
	require.Equal(t, "failed", got.Status)
	require.Equal(t, "gave up after repeated failures; the last: temporary failure", *got.Error)
	require.Equal(t, []string{}, exportFiles(t, f, e))

	var req db.PrivacyRequestGetRow
	var events []db.PrivacyRequestEvent
	require.NoError(t, f.app.Store.InTenant(ctx, f.tenant.ID, func(q *db.Queries) (err error) {
		req, err = q.PrivacyRequestGet(ctx, db.PrivacyRequestGetParams{TenantID: f.tenant.ID, ID: r.ID})
		if err != nil {
			return err
		}
		events, err = q.PrivacyRequestEventList(ctx, db.PrivacyRequestEventListParams{TenantID: f.tenant.ID, RequestID: r.ID})
		return err
	}))
	require.Equal(t, jobs.PrivacyReceived, req.PrivacyRequest.Status)
	last := events[len(events)-1]
	require.Equal(t, "export_failed", last.Action)
	require.Contains(t, last.Note, "gave up after repeated failures")
}

// blockingStore holds an attempt's writes until released, as a worker
// that stalls (GC pause, lost network) long enough to be presumed dead.
type blockingStore struct {
	filestore.Store
	after   int64
	wrote   atomic.Int64
	once    sync.Once
	stalled chan struct{}
	release chan struct{}
}

func (b *blockingStore) Create(ctx context.Context, key string) (filestore.Writer, error) {
	w, err := b.Store.Create(ctx, key)
	return &blockingWriter{Writer: w, b: b}, err
}

type blockingWriter struct {
	filestore.Writer
	b *blockingStore
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	if w.b.wrote.Add(int64(len(p))) > w.b.after {
		w.b.once.Do(func() {
			close(w.b.stalled)
			<-w.b.release
		})
	}
	return w.Writer.Write(p)
}

// An attempt presumed dead that wakes up after another took over stops at
// its next heartbeat: it neither records nor leaves a file.
func TestSupersededAttemptStepsAside(t *testing.T) {
	f := setupExport(t)
	ctx := context.Background()
	f.bulkContacts(t, 2000)
	e := f.insert(t, "tenant", "csv", nil)
	bs := &blockingStore{Store: f.app.Files, after: 32 << 10, stalled: make(chan struct{}), release: make(chan struct{})}
	slow := jobs.NewExportRun(f.app.Deps)
	slow.Files = bs
	slow.Exporter.ProgressEvery = 100
	done := make(chan error)
	go func() { done <- slow.ProcessTask(ctx, exportTask(e)) }()
	select {
	case <-bs.stalled:
	case err := <-done:
		t.Fatalf("the slow attempt finished (%v) before stalling; give it more rows", err)
	}

	f.app.Clock.Advance(6 * time.Minute)
	require.NoError(t, jobs.NewExportRun(f.app.Deps).ProcessTask(ctx, exportTask(e)))
	winner := f.get(t, e)
	require.Equal(t, "succeeded", winner.Status)
	require.EqualValues(t, 2, winner.Attempts)

	close(bs.release)
	require.NoError(t, <-done, "the superseded attempt steps aside quietly")
	got := f.get(t, e)
	require.Equal(t, winner.Sha256, got.Sha256, "the winner's record stands")
	require.Equal(t, winner.RowsDone, got.RowsDone)
	require.Equal(t, []string{e.ID.String() + "-2.zip"}, exportFiles(t, f, e))
	a := f.open(t, got)
	checkManifest(t, a)
	require.Contains(t, f.app.Logs.String(), "export attempt superseded")
}

// stallingStore stands in for a file store (or a PostgreSQL) so slow that
// the archive's first write does not return until the attempt ends.
type stallingStore struct{ filestore.Store }

func (s stallingStore) Create(ctx context.Context, key string) (filestore.Writer, error) {
	w, err := s.Store.Create(ctx, key)
	return stallingWriter{Writer: w, ctx: ctx}, err
}

type stallingWriter struct {
	filestore.Writer
	ctx context.Context
}

func (w stallingWriter) Write(p []byte) (int, error) {
	<-w.ctx.Done()
	return 0, context.Cause(w.ctx)
}

// A live attempt keeps its claim with heartbeats however slowly its rows
// come, so it is never taken for dead; once another attempt takes the
// claim over, the heartbeat notices and the stalled attempt stops.
func TestExportHeartbeatKeepsALiveAttemptAndStopsASupersededOne(t *testing.T) {
	f := setupExport(t)
	ctx := context.Background()
	e := f.insert(t, "tenant", "csv", nil)
	h := jobs.NewExportRun(f.app.Deps)
	h.Files = stallingStore{Store: f.app.Files}
	h.Heartbeat = 20 * time.Millisecond

	done := make(chan error, 1)
	go func() { done <- h.ProcessTask(ctx, exportTask(e)) }()
	f.app.Eventually(5*time.Second, "the attempt to claim the export", func() bool { return f.get(t, e).Status == "running" })
	first := f.get(t, e).HeartbeatAt
	f.app.Clock.Advance(time.Minute)
	f.app.Eventually(5*time.Second, "a heartbeat while no row arrives", func() bool {
		return f.get(t, e).HeartbeatAt.After(*first)
	})
	select {
	case err := <-done:
		t.Fatalf("the stalled attempt ended on its own: %v", err)
	default:
	}

	// Another attempt takes the claim (as after a presumed death).
	_, err := testenv.Owner(t).Exec(ctx, "UPDATE exports SET attempts = attempts + 1 WHERE id = $1", e.ID)
	require.NoError(t, err)
	select {
	case err := <-done:
		require.NoError(t, err, "a superseded attempt steps aside quietly")
	case <-time.After(10 * time.Second):
		t.Fatal("the superseded attempt kept running")
	}
	require.Equal(t, []string{}, exportFiles(t, f, e), "it published nothing")
}
