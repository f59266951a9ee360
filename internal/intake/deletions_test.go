package intake_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/filestore"
	"github.com/errandhq/errand/internal/testapp"
	"github.com/errandhq/errand/internal/testenv"
	"github.com/errandhq/errand/jobs"
)

const day = 24 * time.Hour

// insertMessage writes a message row directly (as the owner), at the
// app's current fake time unless at is given.
func insertMessage(t *testing.T, app *testapp.App, tenant uuid.UUID, contact *uuid.UUID, status, body, dest string, due time.Time) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	now := app.Clock.Now()
	require.NoError(t, testenv.Owner(t).QueryRow(context.Background(), `
		INSERT INTO messages (tenant_id, contact_id, channel, body, destination, status, send_at, due_at, created_at, updated_at)
		VALUES ($1, $2, 'sms', $3, $4, $5, $6, $6, $7, $7) RETURNING id`,
		tenant, contact, body, dest, status, due, now).Scan(&id))
	return id
}

func contactUUID(t *testing.T, tenant uuid.UUID, ext string) uuid.UUID {
	t.Helper()
	var id uuid.UUID
	require.NoError(t, testenv.Owner(t).QueryRow(context.Background(),
		"SELECT id FROM contacts WHERE tenant_id = $1 AND external_id = $2", tenant, ext).Scan(&id))
	return id
}

func deletionOf(t *testing.T, app *testapp.App, key, id string) map[string]any {
	t.Helper()
	resp := app.Do("GET", "/v1/deletions/"+id, key, nil)
	require.Equalf(t, 200, resp.Status, "body: %s", resp.Body)
	return resp.JSON()
}

func cancelTenant(t *testing.T, app *testapp.App, key string) string {
	t.Helper()
	resp := app.Do("POST", "/v1/deletions", key, map[string]any{"scope": "tenant"})
	require.Equalf(t, 202, resp.Status, "body: %s", resp.Body)
	body := resp.JSON()
	require.Equal(t, "scheduled", body["status"])
	return body["id"].(string)
}

// A platform that promises deletion within 30 days (seed 000) sets its
// tenant's grace shorter than the 90-day default (seed 001): the purge
// comes at the tenant's day, and the other settings are left as they are.
func TestTenantDeletionGraceIsPerTenant(t *testing.T) {
	app := testapp.New(t)
	a, b := app.NewTenant("Thirty Day Co"), app.NewTenant("Default Co")
	path := "/admin/v1/tenants/" + a.ID.String() + "/privacy-settings"
	for _, days := range []int{0, 91} {
		requireFields(t, app.Do("PUT", path, app.AdminToken, map[string]any{"deletion_grace_days": days}), "deletion_grace_days")
	}
	requireFields(t, app.Do("PUT", path, app.AdminToken, map[string]any{}), "response_days")
	resp := app.Do("PUT", path, app.AdminToken, map[string]any{"response_days": 20})
	require.Equalf(t, 200, resp.Status, "body: %s", resp.Body)
	require.Nil(t, resp.JSON()["deletion_grace_days"], "unset: the platform's default")
	resp = app.Do("PUT", path, app.AdminToken, map[string]any{"deletion_grace_days": 29})
	require.Equalf(t, 200, resp.Status, "body: %s", resp.Body)
	require.EqualValues(t, 29, resp.JSON()["deletion_grace_days"])
	require.EqualValues(t, 20, resp.JSON()["response_days"], "the answer deadline set before stays")
	putContact(t, app, a.Key, "c1", map[string]any{"name": "Pat Doe", "phone": "+13125550142"})
	putContact(t, app, b.Key, "c1", map[string]any{"name": "Pat Doe", "phone": "+13125550142"})

	now := app.Clock.Now()
	ids := map[string]string{"a": cancelTenant(t, app, a.Key), "b": cancelTenant(t, app, b.Key)}
	for tenant, want := range map[string]time.Time{"a": now.Add(29 * day), "b": now.Add(90 * day)} {
		key := map[string]string{"a": a.Key, "b": b.Key}[tenant]
		purgeAfter, err := time.Parse(time.RFC3339Nano, deletionOf(t, app, key, ids[tenant])["purge_after"].(string))
		require.NoError(t, err)
		require.Truef(t, purgeAfter.Equal(want), "tenant %s: purge_after %s, want %s", tenant, purgeAfter, want)
	}
	ctx := context.Background()
	app.Clock.Advance(29 * day)
	n, err := app.Deletions.Scan(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n, "only the 29-day tenant is due")
	require.Equal(t, "completed", deletionOf(t, app, a.Key, ids["a"])["status"])
	require.Zero(t, count(t, "SELECT count(*) FROM contacts WHERE tenant_id = $1", a.ID))
	require.Equal(t, 1, count(t, "SELECT count(*) FROM contacts WHERE tenant_id = $1", b.ID))
}

func TestTenantDeletionGraceThenPurgeAtDay90(t *testing.T) {
	app := testapp.New(t)
	a, b := app.NewTenant("Leaving Co"), app.NewTenant("Staying Co")
	putContact(t, app, a.Key, "c1", map[string]any{"name": "Pat Doe", "phone": "+13125550142", "email": "pat@example.com"})
	putContact(t, app, b.Key, "c1", map[string]any{"name": "Other Person"})
	c1 := contactUUID(t, a.ID, "c1")
	now := app.Clock.Now()
	sent := insertMessage(t, app, a.ID, &c1, "delivered", "Hi Pat, your tech is on the way", "+13125550142", now)
	pending := insertMessage(t, app, a.ID, &c1, "scheduled", "Reminder for Pat", "+13125550142", now.Add(48*time.Hour))
	_, err := testenv.Owner(t).Exec(context.Background(), `INSERT INTO billing_records (tenant_id, description, amount_cents, occurred_at, created_at)
		VALUES ($1, 'plan', 4900, $2, $2)`, a.ID, now)
	require.NoError(t, err)

	id := cancelTenant(t, app, a.Key)
	got := deletionOf(t, app, a.Key, id)
	purgeAfter, err := time.Parse(time.RFC3339Nano, got["purge_after"].(string))
	require.NoError(t, err)
	require.True(t, purgeAfter.Equal(now.Add(90*day)), "purge_after %s", purgeAfter)
	// The key is locked out of everything but its deletion and exports.
	requireError(t, app.Do("GET", "/v1/contacts/c1", a.Key, nil), 403, "tenant_cancelled")
	requireError(t, app.Do("POST", "/v1/messages", a.Key, map[string]any{"contact_id": "c1", "channel": "sms", "body": "x"}), 403, "tenant_cancelled")
	requireError(t, app.Do("POST", "/v1/deletions", a.Key, map[string]any{"scope": "tenant"}), 403, "tenant_cancelled")
	requireError(t, app.Do("POST", "/v1/privacy-requests", a.Key, map[string]any{"type": "access", "subject": "tenant"}), 403, "tenant_cancelled")
	require.Equal(t, 200, app.Do("GET", "/v1/privacy-requests", a.Key, nil).Status, "its requests stay readable")
	require.Equal(t, 202, app.Do("POST", "/v1/exports", a.Key, map[string]any{"scope": "tenant", "format": "csv"}).Status)
	require.Equal(t, 200, app.Do("GET", "/v1/deletions/"+id, a.Key, nil).Status)
	// Its pending messages are cancelled; the other tenant is untouched
	// and cannot see the deletion.
	require.Equal(t, "cancelled", app.Message(a.ID, pending).Status)
	require.Equal(t, 200, app.Do("GET", "/v1/contacts/c1", b.Key, nil).Status)
	requireError(t, app.Do("GET", "/v1/deletions/"+id, b.Key, nil), 404, "not_found")
	requireError(t, app.Do("DELETE", "/v1/deletions/"+id, b.Key, nil), 404, "not_found")
	requireError(t, app.Do("GET", "/v1/deletions/not-a-uuid", a.Key, nil), 404, "not_found")

	// Day 89: nothing happens.
	ctx := context.Background()
	app.Clock.Advance(89 * day)
	n, err := app.Deletions.Scan(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, "scheduled", deletionOf(t, app, a.Key, id)["status"])
	require.Equal(t, 1, count(t, "SELECT count(*) FROM contacts WHERE tenant_id = $1", a.ID))

	// Day 90: purged.
	app.Clock.Advance(day)
	n, err = app.Deletions.Scan(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got = deletionOf(t, app, a.Key, id)
	require.Equal(t, "completed", got["status"])
	counts := got["counts"].(map[string]any)
	require.EqualValues(t, 1, counts["contacts"])
	require.EqualValues(t, 2, counts["messages"])
	require.EqualValues(t, 1, counts["exports"])
	require.Zero(t, count(t, "SELECT count(*) FROM contacts WHERE tenant_id = $1", a.ID))
	require.Zero(t, count(t, "SELECT count(*) FROM exports WHERE tenant_id = $1", a.ID))
	// The message log keeps its metadata, without body or address.
	require.Equal(t, 2, count(t, "SELECT count(*) FROM messages WHERE tenant_id = $1 AND body = '' AND destination IS NULL AND contact_id IS NULL", a.ID))
	require.Equal(t, 1, count(t, "SELECT count(*) FROM messages WHERE id = $1 AND status = 'delivered'", sent))
	require.Equal(t, 1, count(t, "SELECT count(*) FROM billing_records WHERE tenant_id = $1", a.ID))
	require.Equal(t, 1, count(t, "SELECT count(*) FROM tenants WHERE id = $1 AND name = 'purged tenant' AND purged_at IS NOT NULL", a.ID))
	require.Equal(t, 1, count(t, "SELECT count(*) FROM contacts WHERE tenant_id = $1", b.ID))

	// Running again changes nothing (the certificate included).
	require.NoError(t, app.Deletions.Run(ctx, a.ID, app.MustUUID(id)))
	_, err = app.Deletions.Scan(ctx)
	require.NoError(t, err)
	require.Equal(t, counts, deletionOf(t, app, a.Key, id)["counts"])
	// Too late to restore.
	requireError(t, app.Do("DELETE", "/v1/deletions/"+id, a.Key, nil), 409, "deletion_not_cancellable")
}

// filesUnder lists the files of a tenant's folder in the file store.
func filesUnder(t *testing.T, app *testapp.App, tenant uuid.UUID) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(filepath.Join(app.FilesDir, "tenants", tenant.String()), func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err == nil && !d.IsDir() {
			out = append(out, path)
		}
		return err
	})
	require.NoError(t, err)
	return out
}

// Everything a tenant holds, purged at day 90 — contacts, locations,
// appointments, verifications, credentials and their documents, an import
// and its upload, a finished export and its file, privacy requests,
// stored responses — with a crash in the middle of the files step: every
// operational row and file is gone, each counted once on the certificate;
// the message log (metadata), opt-out records, security log and billing
// records stay, as the retention policies say; the other tenant is
// untouched.
func TestTenantPurgeIsComplete(t *testing.T) {
	f := setup(t)
	app := f.app
	app.StartWorker(2)
	a, key := f.tenant, f.tenant.Key
	b := app.NewTenant("Staying Co")
	ctx := context.Background()
	owner := testenv.Owner(t)
	now := app.Clock.Now()
	require.Equal(t, 201, app.Do("PUT", "/v1/locations/main", key, map[string]any{"name": "Main shop", "timezone": "America/Chicago"}).Status)
	require.Equal(t, 201, app.Do("PUT", "/v1/appointments/apt-1", key, map[string]any{"contact_id": "cust-1",
		"location_id": "main", "starts_at": now.Add(72 * time.Hour).Format(time.RFC3339), "technician": "Sam Okafor"}).Status)
	require.Equal(t, 202, app.Do("POST", "/v1/verifications", key, map[string]any{"channel": "sms", "to": "+13125550199"}).Status)
	v := vfix{app: app, tenant: a}
	v.checked(t, "pro-7", v.licence(t))
	resp := app.Do("POST", "/v1/imports", key, "external_id,name,phone\r\nimp-1,Ann Lee,(312) 555-0160\r\nimp-2,Bad Row,not a phone\r\n",
		"Content-Type", "text/csv")
	require.Equalf(t, 202, resp.Status, "body: %s", resp.Body)
	importID := resp.JSON()["id"].(string)
	app.Eventually(10*time.Second, "the import", func() bool {
		return app.Do("GET", "/v1/imports/"+importID, key, nil).JSON()["status"] == "succeeded"
	})
	f.exportNow(t, map[string]any{"scope": "tenant", "format": "csv"})
	resp = app.Do("POST", "/v1/privacy-requests", key, map[string]any{"type": "correction", "subject": "contact", "contact_id": "cust-1"},
		"Idempotency-Key", "pr-1")
	require.Equalf(t, 201, resp.Status, "body: %s", resp.Body)
	c1 := contactUUID(t, a.ID, "cust-1")
	insertMessage(t, app, a.ID, &c1, "delivered", "Your tech is on the way", "+13125550142", now)
	_, err := owner.Exec(ctx, `INSERT INTO suppressions (tenant_id, channel, address_hash, reason, source, created_at)
		VALUES ($1, 'sms', '\x02', 'opt_out', 'twilio', $2)`, a.ID, now)
	require.NoError(t, err)
	_, err = owner.Exec(ctx, `INSERT INTO suppression_events (tenant_id, channel, address_hash, action, source, occurred_at)
		VALUES ($1, 'sms', '\x02', 'opt_out', 'twilio', $2)`, a.ID, now)
	require.NoError(t, err)
	_, err = owner.Exec(ctx, `INSERT INTO security_events (occurred_at, tenant_id, kind) VALUES ($1, $2, 'test_event')`, now, a.ID)
	require.NoError(t, err)
	_, err = owner.Exec(ctx, `INSERT INTO billing_records (tenant_id, description, amount_cents, occurred_at, created_at)
		VALUES ($1, 'plan', 4900, $2, $2)`, a.ID, now)
	require.NoError(t, err)
	putContact(t, app, b.Key, "c1", map[string]any{"name": "Other Person"})
	_, err = filestore.Put(ctx, app.Files, "tenants/"+b.ID.String()+"/exports/theirs.zip", strings.NewReader("theirs"))
	require.NoError(t, err)

	before := map[string]int{}
	for _, table := range jobs.TenantPurgeTables {
		before[table] = count(t, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()+" WHERE tenant_id = $1", a.ID)
	}
	for _, table := range []string{"contacts", "locations", "appointments", "verifications", "pros", "credentials",
		"imports", "import_errors", "exports", "privacy_requests", "privacy_request_events"} {
		require.NotZero(t, before[table], "the fixture has %s", table)
	}
	require.NotZero(t, count(t, "SELECT count(*) FROM idempotency_keys WHERE scope = $1", a.ID.String()))
	files := filesUnder(t, app, a.ID)
	require.GreaterOrEqual(t, len(files), 3, "a credential document, an import upload, an export file: %v", files)
	kept := func() map[string]int {
		return map[string]int{
			"messages":           count(t, "SELECT count(*) FROM messages WHERE tenant_id = $1", a.ID),
			"suppressions":       count(t, "SELECT count(*) FROM suppressions WHERE tenant_id = $1", a.ID),
			"suppression_events": count(t, "SELECT count(*) FROM suppression_events WHERE tenant_id = $1", a.ID),
			"security_events":    count(t, "SELECT count(*) FROM security_events WHERE tenant_id = $1 AND kind = 'test_event'", a.ID),
			"billing_records":    count(t, "SELECT count(*) FROM billing_records WHERE tenant_id = $1", a.ID),
		}
	}
	keep := kept()
	require.GreaterOrEqual(t, keep["messages"], 2, "ours and the verification code's")

	id := cancelTenant(t, app, a.Key)
	app.Clock.Advance(90 * day)
	// Crash after the files step's first batch: its files are counted,
	// not yet removed.
	app.Deletions.Batch = 2
	stopped, stop := context.WithCancel(ctx)
	app.Deletions.OnBatch = func() {
		if count(t, "SELECT coalesce((counts->>'files')::int, 0) FROM deletions WHERE id = $1", id) > 0 {
			stop()
		}
	}
	err = app.Deletions.Run(stopped, a.ID, app.MustUUID(id))
	require.ErrorIs(t, err, context.Canceled)
	require.EqualValues(t, 2, deletionOf(t, app, a.Key, id)["counts"].(map[string]any)["files"])
	require.Len(t, filesUnder(t, app, a.ID), len(files), "counted first, removed by the next batch")

	app.Deletions.OnBatch = nil
	n, err := app.Deletions.Scan(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got := deletionOf(t, app, a.Key, id)
	require.Equal(t, "completed", got["status"])
	counts := got["counts"].(map[string]any)
	for table, rows := range before {
		require.EqualValues(t, rows, counts[table], "the certificate's count of %s", table)
		require.Zero(t, count(t, "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()+" WHERE tenant_id = $1", a.ID), table)
	}
	require.EqualValues(t, len(files), counts["files"], "each file counted once")
	require.Empty(t, filesUnder(t, app, a.ID))
	_, err = os.Stat(filepath.Join(app.FilesDir, "tenants", a.ID.String()))
	require.ErrorIs(t, err, os.ErrNotExist)
	require.Zero(t, count(t, "SELECT count(*) FROM idempotency_keys WHERE scope = $1", a.ID.String()))
	// Kept per policy: the message log without bodies or addresses, the
	// opt-out records, the security log and billing.
	require.Equal(t, keep, kept())
	require.EqualValues(t, keep["messages"], counts["messages"])
	require.Zero(t, count(t, "SELECT count(*) FROM messages WHERE tenant_id = $1 AND (body <> '' OR destination IS NOT NULL OR contact_id IS NOT NULL)", a.ID))
	// The other tenant is untouched.
	require.Equal(t, 200, app.Do("GET", "/v1/contacts/c1", b.Key, nil).Status)
	ok, err := app.Files.Exists(ctx, "tenants/"+b.ID.String()+"/exports/theirs.zip")
	require.NoError(t, err)
	require.True(t, ok)
}

func TestTenantRestoreDuringGrace(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("Undecided Co")
	putContact(t, app, a.Key, "c1", map[string]any{"name": "Pat", "phone": "+13125550142"})
	c1 := contactUUID(t, a.ID, "c1")
	now := app.Clock.Now()
	soon := insertMessage(t, app, a.ID, &c1, "scheduled", "tomorrow", "+13125550142", now.Add(day))
	later := insertMessage(t, app, a.ID, &c1, "scheduled", "next month", "+13125550142", now.Add(30*day))
	id := cancelTenant(t, app, a.Key)
	requireError(t, app.Do("GET", "/v1/contacts/c1", a.Key, nil), 403, "tenant_cancelled")

	app.Clock.Advance(2 * day)
	resp := app.Do("DELETE", "/v1/deletions/"+id, a.Key, nil)
	require.Equalf(t, 200, resp.Status, "body: %s", resp.Body)
	body := resp.JSON()
	require.Equal(t, "cancelled", body["status"])
	require.EqualValues(t, 1, body["restored_messages"])
	require.EqualValues(t, 1, body["messages_not_restored"])
	require.Contains(t, body["note"], "not restored")

	require.Equal(t, 200, app.Do("GET", "/v1/contacts/c1", a.Key, nil).Status)
	require.Equal(t, "cancelled", app.Message(a.ID, soon).Status)
	require.Equal(t, "scheduled", app.Message(a.ID, later).Status)
	// A restored deletion never purges, and cannot be cancelled twice.
	app.Clock.Advance(100 * day)
	_, err := app.Deletions.Scan(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, count(t, "SELECT count(*) FROM contacts WHERE tenant_id = $1", a.ID))
	requireError(t, app.Do("DELETE", "/v1/deletions/"+id, a.Key, nil), 409, "deletion_not_cancellable")
	// The tenant can cancel again later.
	cancelTenant(t, app, a.Key)
}

func TestDeletionRequestValidation(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("Co")
	requireFields(t, app.Do("POST", "/v1/deletions", a.Key, map[string]any{"scope": "everything"}), "scope")
	requireFields(t, app.Do("POST", "/v1/deletions", a.Key, map[string]any{"scope": "contact"}), "contact_id")
	requireFields(t, app.Do("POST", "/v1/deletions", a.Key, map[string]any{"scope": "tenant", "reason": "minor"}), "reason")
	requireError(t, app.Do("POST", "/v1/deletions", a.Key, map[string]any{"scope": "contact", "contact_id": "nobody"}), 404, "not_found")
}

// purgeDue gives a new tenant 57 contacts with three delivered texts each
// (more than one purge batch of either), cancels it and lets its grace
// pass: its purge is due. It returns the tenant and its deletion's ID.
func purgeDue(t *testing.T, app *testapp.App, name string) (testapp.Tenant, string) {
	t.Helper()
	a := app.NewTenant(name)
	ctx, owner, now := context.Background(), testenv.Owner(t), app.Clock.Now()
	_, err := owner.Exec(ctx, `INSERT INTO contacts (tenant_id, external_id, name, phone, created_at, updated_at)
		SELECT $1, 'c' || g, 'Person ' || g, '+1312555' || lpad(g::text, 4, '0'), $2, $2 FROM generate_series(1, 57) g`, a.ID, now)
	require.NoError(t, err)
	_, err = owner.Exec(ctx, `INSERT INTO messages (tenant_id, contact_id, channel, body, destination, status, send_at, due_at, created_at, updated_at)
		SELECT $1, c.id, 'sms', 'hello ' || c.name, c.phone, 'delivered', $2, $2, $2, $2
		FROM contacts c, generate_series(1, 3) WHERE c.tenant_id = $1`, a.ID, now)
	require.NoError(t, err)
	id := cancelTenant(t, app, a.Key)
	app.Clock.Advance(90 * day)
	return a, id
}

func TestCrashMidPurgeResumesWithExactCounts(t *testing.T) {
	app := testapp.New(t)
	a, deletion := purgeDue(t, app, "Big Co")
	id := app.MustUUID(deletion)
	ctx := context.Background()

	// Stop the purge after 7 batches of 10 rows, as a crash would.
	app.Deletions.Batch = 10
	stopped, stop := context.WithCancel(ctx)
	batches := 0
	app.Deletions.OnBatch = func() {
		batches++
		if batches == 7 {
			stop()
		}
	}
	err := app.Deletions.Run(stopped, a.ID, id)
	require.ErrorIs(t, err, context.Canceled)
	got := deletionOf(t, app, a.Key, id.String())
	require.Equal(t, "running", got["status"])
	require.EqualValues(t, 70, got["counts"].(map[string]any)["messages"])
	require.Equal(t, 57, count(t, "SELECT count(*) FROM contacts WHERE tenant_id = $1", a.ID))

	// The scan resumes it where it stopped.
	app.Deletions.OnBatch = nil
	n, err := app.Deletions.Scan(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got = deletionOf(t, app, a.Key, id.String())
	require.Equal(t, "completed", got["status"])
	counts := got["counts"].(map[string]any)
	require.EqualValues(t, 171, counts["messages"])
	require.EqualValues(t, 57, counts["contacts"])
	require.Zero(t, count(t, "SELECT count(*) FROM contacts WHERE tenant_id = $1", a.ID))
	require.Zero(t, count(t, "SELECT count(*) FROM messages WHERE tenant_id = $1 AND body <> ''", a.ID))
	// And again: nothing more.
	require.NoError(t, app.Deletions.Run(ctx, a.ID, id))
	require.Equal(t, counts, deletionOf(t, app, a.Key, id.String())["counts"])
}

func TestLegalHoldBlocksPurgeAndSweep(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("Litigated Co")
	putContact(t, app, a.Key, "c1", map[string]any{"name": "Pat"})
	c1 := contactUUID(t, a.ID, "c1")
	insertMessage(t, app, a.ID, &c1, "delivered", "old news", "+13125550142", app.Clock.Now())
	id := cancelTenant(t, app, a.Key)

	requireFields(t, app.Do("POST", "/admin/v1/legal-holds", app.AdminToken, map[string]any{"tenant_id": a.ID.String()}), "reason")
	resp := app.Do("POST", "/admin/v1/legal-holds", app.AdminToken,
		map[string]any{"tenant_id": a.ID.String(), "reason": "subpoena 2026-17", "placed_by": "counsel@errand"})
	require.Equalf(t, 201, resp.Status, "body: %s", resp.Body)
	hold := resp.JSON()["id"].(string)

	ctx := context.Background()
	app.Clock.Advance(4 * 365 * day)
	n, err := app.Deletions.Scan(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	got := deletionOf(t, app, a.Key, id)
	require.Equal(t, "scheduled", got["status"])
	waited := got["waited_for"].(map[string]any)
	require.Equal(t, "subpoena 2026-17", waited["reason"])
	require.Equal(t, hold, waited["hold_id"])
	require.Nil(t, waited["until"])
	// The sweep leaves held data alone, though it is past every policy.
	_, err = jobs.NewRetentionSweep(app.Deps).Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, count(t, "SELECT count(*) FROM messages WHERE tenant_id = $1", a.ID))
	require.Equal(t, 1, count(t, "SELECT count(*) FROM contacts WHERE tenant_id = $1", a.ID))

	resp = app.Do("DELETE", "/admin/v1/legal-holds/"+hold, app.AdminToken, nil)
	require.Equalf(t, 200, resp.Status, "body: %s", resp.Body)
	requireError(t, app.Do("DELETE", "/admin/v1/legal-holds/"+hold, app.AdminToken, nil), 409, "hold_released")
	requireError(t, app.Do("DELETE", "/admin/v1/legal-holds/"+uuid.NewString(), app.AdminToken, nil), 404, "not_found")
	n, err = app.Deletions.Scan(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got = deletionOf(t, app, a.Key, id)
	require.Equal(t, "completed", got["status"])
	require.NotNil(t, got["waited_for"].(map[string]any)["until"])
	_, err = jobs.NewRetentionSweep(app.Deps).Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, count(t, "SELECT count(*) FROM messages WHERE tenant_id = $1", a.ID))
}

// placeHold puts a legal hold on a tenant (contact "" ) or one person.
func placeHold(t *testing.T, app *testapp.App, tenant uuid.UUID, contact, reason string) string {
	t.Helper()
	body := map[string]any{"tenant_id": tenant.String(), "reason": reason}
	if contact != "" {
		body["contact_id"] = contact
	}
	resp := app.Do("POST", "/admin/v1/legal-holds", app.AdminToken, body)
	require.Equalf(t, 201, resp.Status, "body: %s", resp.Body)
	return resp.JSON()["id"].(string)
}

// A hold placed while a purge runs stops it before its next batch; the
// deletion says why it waits, and goes on from there once released.
func TestLegalHoldPlacedMidPurgeStopsIt(t *testing.T) {
	app := testapp.New(t)
	a, id := purgeDue(t, app, "Suddenly Litigated Co")
	ctx := context.Background()

	app.Deletions.Batch = 10
	var hold string
	batches := 0
	app.Deletions.OnBatch = func() {
		batches++
		if batches == 3 {
			hold = placeHold(t, app, a.ID, "", "preservation letter 7")
		}
	}
	err := app.Deletions.Run(ctx, a.ID, app.MustUUID(id))
	require.ErrorIs(t, err, jobs.ErrDeletionHeld)
	require.Equal(t, 3, batches, "no batch ran after the hold")
	got := deletionOf(t, app, a.Key, id)
	require.Equal(t, "running", got["status"])
	require.EqualValues(t, 30, got["counts"].(map[string]any)["messages"])
	waited := got["waited_for"].(map[string]any)
	require.Equal(t, "preservation letter 7", waited["reason"])
	require.Equal(t, hold, waited["hold_id"])
	require.Nil(t, waited["until"])
	require.Equal(t, 141, count(t, "SELECT count(*) FROM messages WHERE tenant_id = $1 AND body <> ''", a.ID))
	// The scan leaves it waiting.
	n, err := app.Deletions.Scan(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, 3, batches)

	resp := app.Do("DELETE", "/admin/v1/legal-holds/"+hold, app.AdminToken, nil)
	require.Equalf(t, 200, resp.Status, "body: %s", resp.Body)
	n, err = app.Deletions.Scan(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got = deletionOf(t, app, a.Key, id)
	require.Equal(t, "completed", got["status"])
	require.EqualValues(t, 171, got["counts"].(map[string]any)["messages"])
	require.EqualValues(t, 57, got["counts"].(map[string]any)["contacts"])
	require.NotNil(t, got["waited_for"].(map[string]any)["until"])
}

// A hold on one person keeps their records from the retention sweep: the
// messages linked to them, those addressed to them without a link, and
// the opt-out records.
func TestLegalHoldOnAPersonKeepsTheirRecordsFromTheSweep(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("Acme")
	ctx := context.Background()
	putContact(t, app, a.Key, "held", map[string]any{"name": "Held Person", "phone": "+13125550177"})
	held := contactUUID(t, a.ID, "held")
	now := app.Clock.Now()
	linked := insertMessage(t, app, a.ID, &held, "delivered", "linked", "+13125550177", now)
	unlinked := insertMessage(t, app, a.ID, nil, "delivered", "to their phone", "+13125550177", now)
	other := insertMessage(t, app, a.ID, nil, "delivered", "someone else", "+13125550100", now)
	_, err := testenv.Owner(t).Exec(ctx, `INSERT INTO suppression_events (tenant_id, channel, address_hash, action, source, occurred_at)
		VALUES ($1, 'sms', $2, 'opt_out', 'test', $3)`, a.ID, app.Deps.Pseudonyms.Address("sms", "+13125550177"), now)
	require.NoError(t, err)
	placeHold(t, app, a.ID, "held", "their lawsuit")

	app.Clock.Set(now.AddDate(4, 0, 0))
	_, err = jobs.NewRetentionSweep(app.Deps).Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, count(t, "SELECT count(*) FROM messages WHERE id = $1", linked))
	require.Equal(t, 1, count(t, "SELECT count(*) FROM messages WHERE id = $1", unlinked), "addressed to them")
	require.Equal(t, 1, count(t, "SELECT count(*) FROM suppression_events WHERE tenant_id = $1", a.ID))
	require.Zero(t, count(t, "SELECT count(*) FROM messages WHERE id = $1", other), "not theirs: the sweep goes on")
}

// Deletions a hold keeps waiting never block the others behind them,
// however many there are: the scan pages past them. And a tenant sees
// only its own holds (row-level security).
func TestHeldDeletionsDoNotBlockOthers(t *testing.T) {
	app := testapp.New(t)
	a, b := app.NewTenant("Acme"), app.NewTenant("Other Co")
	ctx := context.Background()
	app.Deletions.ScanPage = 2
	var heldIDs []string
	for i := range 3 {
		ext := fmt.Sprintf("held%d", i)
		putContact(t, app, a.Key, ext, map[string]any{"name": "Held " + ext})
		placeHold(t, app, a.ID, ext, "litigation")
		resp := app.Do("POST", "/v1/deletions", a.Key, map[string]any{"scope": "contact", "contact_id": ext})
		require.Equalf(t, 202, resp.Status, "body: %s", resp.Body)
		heldIDs = append(heldIDs, resp.JSON()["id"].(string))
		app.Clock.Advance(time.Second)
	}
	putContact(t, app, a.Key, "free", map[string]any{"name": "Free Person"})
	resp := app.Do("POST", "/v1/deletions", a.Key, map[string]any{"scope": "contact", "contact_id": "free"})
	require.Equalf(t, 202, resp.Status, "body: %s", resp.Body)
	free := resp.JSON()["id"].(string)

	n, err := app.Deletions.Scan(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, "completed", deletionOf(t, app, a.Key, free)["status"])
	for _, id := range heldIDs {
		got := deletionOf(t, app, a.Key, id)
		require.Equal(t, "scheduled", got["status"])
		require.Equal(t, "litigation", got["waited_for"].(map[string]any)["reason"])
	}
	var mine, theirs []db.LegalHold
	require.NoError(t, app.Store.InTenant(ctx, b.ID, func(q *db.Queries) (err error) {
		theirs, err = q.LegalHoldListForTenant(ctx, a.ID)
		if err != nil {
			return err
		}
		mine, err = q.LegalHoldListForTenant(ctx, b.ID)
		return err
	}))
	require.Empty(t, theirs, "another tenant's holds are invisible")
	require.Empty(t, mine)
	require.NoError(t, app.Store.InTenant(ctx, a.ID, func(q *db.Queries) (err error) {
		mine, err = q.LegalHoldListForTenant(ctx, a.ID)
		return err
	}))
	require.Len(t, mine, 3)
}

// Every schedule the seeds promise, on the injected clock: security logs
// go after 1 year, message logs and opt-out records after 3, billing
// records after 7 (and not an hour before). The records are made on 1 June
// 2023, so each period holds 29 February 2024 (and 7 years 2028 too): a
// year is 366 days here, 3 years 1096 and 7 years 2557, and a day count
// (365, 1095, 2555) would let each go a day or two early.
func TestRetentionSchedules(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("Long-lived Co")
	ctx := context.Background()
	owner := testenv.Owner(t)
	now := time.Date(2023, 6, 1, 12, 0, 0, 0, time.UTC)
	app.Clock.Set(now)
	insertMessage(t, app, a.ID, nil, "delivered", "hello", "+13125550142", now)
	insertMessage(t, app, a.ID, nil, "scheduled", "far future", "+13125550142", now.Add(5000*day))
	_, err := owner.Exec(ctx, `INSERT INTO security_events (occurred_at, tenant_id, kind) VALUES ($1, $2, 'test_event')`, now, a.ID)
	require.NoError(t, err)
	_, err = owner.Exec(ctx, `INSERT INTO suppression_events (tenant_id, channel, address_hash, action, source, occurred_at)
		VALUES ($1, 'sms', '\x01', 'opt_out', 'test', $2)`, a.ID, now)
	require.NoError(t, err)
	_, err = owner.Exec(ctx, `INSERT INTO billing_records (tenant_id, description, amount_cents, occurred_at, created_at)
		VALUES ($1, 'plan', 4900, $2, $2)`, a.ID, now)
	require.NoError(t, err)
	left := func() (sec, msg, opt, bill int) {
		return count(t, "SELECT count(*) FROM security_events WHERE tenant_id = $1 AND kind = 'test_event'", a.ID),
			count(t, "SELECT count(*) FROM messages WHERE tenant_id = $1", a.ID),
			count(t, "SELECT count(*) FROM suppression_events WHERE tenant_id = $1", a.ID),
			count(t, "SELECT count(*) FROM billing_records WHERE tenant_id = $1", a.ID)
	}
	sweep := jobs.NewRetentionSweep(app.Deps)
	check := func(at time.Time, sec, msg, opt, bill int) {
		t.Helper()
		app.Clock.Set(at)
		_, err := sweep.Sweep(ctx)
		require.NoError(t, err)
		s, m, o, b := left()
		require.Equal(t, [4]int{sec, msg, opt, bill}, [4]int{s, m, o, b}, "%s: security, messages, opt-outs, billing", at)
	}
	years := func(n int) time.Time { return now.AddDate(n, 0, 0) }
	require.Equal(t, 366*day, years(1).Sub(now), "the year holds a 29 February")
	require.Equal(t, 1096*day, years(3).Sub(now))
	require.Equal(t, 2557*day, years(7).Sub(now))
	check(years(1).Add(-time.Hour), 1, 2, 1, 1) // 365 days and 23 hours: a day count of 365 would have gone
	check(years(1).Add(time.Hour), 0, 2, 1, 1)
	check(years(3).Add(-time.Hour), 0, 2, 1, 1)
	check(years(3).Add(time.Hour), 0, 1, 0, 1) // the pending message is never swept
	check(years(7).Add(-time.Hour), 0, 1, 0, 1)
	check(years(7).Add(time.Hour), 0, 1, 0, 0)
	require.NotZero(t, count(t, "SELECT count(*) FROM retention_runs WHERE what = 'billing_records:billing_records' AND rows = 1"))
}

func TestRetentionOverridesOnlyStricter(t *testing.T) {
	app := testapp.New(t)
	a, b := app.NewTenant("Strict Co"), app.NewTenant("Default Co")
	path := "/admin/v1/tenants/" + a.ID.String() + "/retention-policies/message_logs"
	requireFields(t, app.Do("PUT", path, app.AdminToken, map[string]any{"days": 2000}), "days")
	requireFields(t, app.Do("PUT", path, app.AdminToken, map[string]any{"days": 30, "action": "anonymise"}), "action")
	requireFields(t, app.Do("PUT", "/admin/v1/tenants/"+a.ID.String()+"/retention-policies/billing_records",
		app.AdminToken, map[string]any{"days": 30}), "days") // below the legal floor
	requireError(t, app.Do("PUT", "/admin/v1/tenants/"+a.ID.String()+"/retention-policies/everything", app.AdminToken,
		map[string]any{"days": 1}), 404, "not_found")
	resp := app.Do("PUT", path, app.AdminToken, map[string]any{"days": 30})
	require.Equalf(t, 200, resp.Status, "body: %s", resp.Body)
	require.Contains(t, string(resp.Body), `"what":"message_logs","keep":"30 days","default_keep":"3 years","min_keep":"00:00:00"`)
	// The database refuses a looser override whoever writes it.
	_, err := testenv.Owner(t).Exec(context.Background(), `UPDATE retention_policies SET keep = '5000 days' WHERE tenant_id = $1`, a.ID)
	require.ErrorContains(t, err, "must be between")

	now := app.Clock.Now()
	insertMessage(t, app, a.ID, nil, "delivered", "hi", "+13125550142", now)
	insertMessage(t, app, b.ID, nil, "delivered", "hi", "+13125550142", now)
	app.Clock.Advance(31 * day)
	_, err = jobs.NewRetentionSweep(app.Deps).Sweep(context.Background())
	require.NoError(t, err)
	require.Zero(t, count(t, "SELECT count(*) FROM messages WHERE tenant_id = $1", a.ID))
	require.Equal(t, 1, count(t, "SELECT count(*) FROM messages WHERE tenant_id = $1", b.ID))
	resp = app.Do("DELETE", path, app.AdminToken, nil)
	require.Equal(t, 200, resp.Status)
	require.Contains(t, string(resp.Body), `"what":"message_logs","keep":"3 years"`)
}

// Where the default anonymises, a tenant's override may delete instead,
// and the sweep does what the override says for that tenant.
func TestRetentionOverrideActionApplies(t *testing.T) {
	app := testapp.New(t)
	ctx := context.Background()
	owner := testenv.Owner(t)
	_, err := owner.Exec(ctx, `UPDATE retention_policies SET action = 'anonymise' WHERE tenant_id IS NULL AND what = 'message_logs'`)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := owner.Exec(ctx, `UPDATE retention_policies SET action = 'delete' WHERE tenant_id IS NULL AND what = 'message_logs'`)
		require.NoError(t, err)
	})
	a, b := app.NewTenant("Deleting Co"), app.NewTenant("Anonymising Co")
	resp := app.Do("PUT", "/admin/v1/tenants/"+a.ID.String()+"/retention-policies/message_logs", app.AdminToken,
		map[string]any{"days": 30, "action": "delete"})
	require.Equalf(t, 200, resp.Status, "body: %s", resp.Body)
	resp = app.Do("PUT", "/admin/v1/tenants/"+b.ID.String()+"/retention-policies/message_logs", app.AdminToken,
		map[string]any{"days": 30, "action": "anonymise"})
	require.Equalf(t, 200, resp.Status, "body: %s", resp.Body)
	now := app.Clock.Now()
	ma := insertMessage(t, app, a.ID, nil, "delivered", "hi A", "+13125550142", now)
	mb := insertMessage(t, app, b.ID, nil, "delivered", "hi B", "+13125550143", now)

	app.Clock.Advance(31 * day)
	counts, err := jobs.NewRetentionSweep(app.Deps).Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, count(t, "SELECT count(*) FROM messages WHERE id = $1", ma), "A's override deletes")
	require.Equal(t, 1, count(t, "SELECT count(*) FROM messages WHERE id = $1 AND body = '' AND destination IS NULL", mb),
		"B's override anonymises")
	require.EqualValues(t, 1, counts["messages"])
	require.EqualValues(t, 1, counts["messages:anonymised"])
}

// personTraces finds where any of needles is left: every text, jsonb and
// bytea column of every table (as the owner, past row-level security),
// every file in the store (decrypted), and Redis.
func personTraces(t *testing.T, app *testapp.App, needles ...string) []string {
	t.Helper()
	ctx := context.Background()
	owner := testenv.Owner(t)
	rows, err := owner.Query(ctx, `SELECT table_name, column_name, data_type FROM information_schema.columns
		WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'jsonb', 'bytea', 'ARRAY', 'json')
		  AND table_name NOT LIKE 'goose%'`)
	require.NoError(t, err)
	type col struct{ table, column, typ string }
	var cols []col
	for rows.Next() {
		var c col
		require.NoError(t, rows.Scan(&c.table, &c.column, &c.typ))
		cols = append(cols, c)
	}
	require.NoError(t, rows.Err())
	require.Greater(t, len(cols), 30, "the schema search must see the schema")
	var found []string
	for _, c := range cols {
		expr := pgx.Identifier{c.column}.Sanitize() + "::text"
		if c.typ == "bytea" {
			expr = "encode(" + pgx.Identifier{c.column}.Sanitize() + ", 'escape')"
		}
		for _, n := range needles {
			var k int
			q := fmt.Sprintf("SELECT count(*) FROM %s WHERE strpos(lower(%s), lower($1)) > 0", pgx.Identifier{c.table}.Sanitize(), expr)
			require.NoError(t, owner.QueryRow(ctx, q, n).Scan(&k))
			if k > 0 {
				found = append(found, fmt.Sprintf("%s.%s holds %q", c.table, c.column, n))
			}
		}
	}
	files := 0
	require.NoError(t, filepath.WalkDir(app.FilesDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		rel, _ := filepath.Rel(app.FilesDir, path)
		rc, err := app.Files.Open(ctx, filepath.ToSlash(rel))
		if err != nil {
			found = append(found, "file "+rel+" is left (unreadable: "+err.Error()+")")
			return nil
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil && !errors.Is(err, io.EOF) {
			found = append(found, "file "+rel+" is left")
		}
		for _, n := range needles {
			if strings.Contains(strings.ToLower(string(b)), strings.ToLower(n)) {
				found = append(found, "file "+rel+" holds "+n)
			}
		}
		return nil
	}))
	dump := strings.ToLower(app.DumpRedis())
	for _, n := range needles {
		if strings.Contains(dump, strings.ToLower(n)) {
			found = append(found, "redis holds "+n)
		}
	}
	return found
}

func TestContactErasureLeavesNothing(t *testing.T) {
	for _, minor := range []bool{false, true} {
		t.Run(fmt.Sprintf("minor=%v", minor), func(t *testing.T) { testContactErasure(t, minor) })
	}
}

func testContactErasure(t *testing.T, minor bool) {
	app := testapp.New(t)
	app.StartWorker(2)
	a := app.NewTenant("Acme Repair")
	const name, phone, email = "Zelda Quixote", "+13125550199", "zelda.q@example.com"
	person := map[string]any{"name": name, "phone": "(312) 555-0199", "email": email, "address": "12 Elm St", "notes": "gate code 4411"}
	putContact(t, app, a.Key, "zq", person)
	putContact(t, app, a.Key, "other", map[string]any{"name": "Someone Else", "phone": "+13125550100"})
	ctx := context.Background()
	owner := testenv.Owner(t)
	zq := contactUUID(t, a.ID, "zq")
	now := app.Clock.Now()
	// Her message log, a verification to her email, an appointment at her
	// address, her opt-out, a privacy request naming her, an idempotent
	// response quoting her, and exports (hers and the whole account's).
	insertMessage(t, app, a.ID, &zq, "delivered", "Hi Zelda Quixote, see you at 12 Elm St", phone, now)
	insertMessage(t, app, a.ID, &zq, "scheduled", "Reminder, Zelda Quixote", phone, now.Add(48*time.Hour))
	kept := insertMessage(t, app, a.ID, nil, "delivered", "Hi there", "+13125550100", now)
	_, err := owner.Exec(ctx, `INSERT INTO verifications (id, tenant_id, channel, destination, destination_hash, brand, status,
		max_attempts, expires_at, created_at, updated_at) VALUES ($1, $2, 'email', $3, $4, 'Acme', 'approved', 5, $5, $5, $5)`,
		uuid.New(), a.ID, email, app.Deps.Pseudonyms.Address("email", email), now)
	require.NoError(t, err)
	_, err = owner.Exec(ctx, `WITH l AS (INSERT INTO locations (tenant_id, external_id, name, timezone, settings, created_at, updated_at)
		VALUES ($1, 'loc', 'Main', 'UTC', '{}', $3, $3) RETURNING id)
		INSERT INTO appointments (tenant_id, external_id, contact_id, location_id, starts_at, address, technician, status, created_at, updated_at)
		SELECT $1, 'appt', $2, l.id, $3, '12 Elm St, Springfield', 'Bob', 'scheduled', $3, $3 FROM l`, a.ID, zq, now)
	require.NoError(t, err)
	_, err = owner.Exec(ctx, `INSERT INTO suppressions (tenant_id, channel, address_hash, reason, source, created_at)
		VALUES ($1, 'sms', $2, 'opt_out', 'twilio', $3)`, a.ID, app.Deps.Pseudonyms.Address("sms", phone), now)
	require.NoError(t, err)
	resp := app.Do("POST", "/v1/privacy-requests", a.Key, map[string]any{"type": "deletion", "subject": "contact",
		"contact_id": "zq", "note": "Zelda Quixote called, wants out; reach her at " + email})
	require.Equalf(t, 201, resp.Status, "body: %s", resp.Body)
	// A note elsewhere naming her in another case, with her phone as typed.
	resp = app.Do("POST", "/v1/privacy-requests", a.Key, map[string]any{"type": "access", "subject": "tenant",
		"note": "asked by the owner after ZELDA quixote rang from (312) 555-0199"})
	require.Equalf(t, 201, resp.Status, "body: %s", resp.Body)
	resp = app.Do("POST", "/v1/messages", a.Key, map[string]any{"contact_id": "zq", "channel": "sms",
		"body": "Thanks ZELDA QUIXOTE", "send_at": now.Add(72 * time.Hour).Format(time.RFC3339)}, "Idempotency-Key", "k1")
	require.Equalf(t, 202, resp.Status, "body: %s", resp.Body)
	// A client list that names her, with rows of hers it rejected: one
	// with her name in lower case, one with only her phone as typed.
	resp = app.Do("POST", "/v1/imports", a.Key, "external_id,name,phone,email\r\n"+
		"zq,Zelda Quixote,(312) 555-0199,zelda.q@example.com\r\nzq2,zelda quixote,not a phone,\r\n"+
		"zq3,Z. Q.,(312) 555-01999,\r\not,Otto Other,not a phone,\r\n",
		"Content-Type", "text/csv")
	require.Equalf(t, 202, resp.Status, "body: %s", resp.Body)
	importID := resp.JSON()["id"].(string)
	app.Eventually(10*time.Second, "the import", func() bool {
		return app.Do("GET", "/v1/imports/"+importID, a.Key, nil).JSON()["status"] == "succeeded"
	})
	require.Equal(t, 3, count(t, "SELECT count(*) FROM import_errors WHERE tenant_id = $1", a.ID))
	f := fixture{app: app, tenant: a}
	f.exportNow(t, map[string]any{"scope": "contact", "contact_id": "zq", "format": "json"})
	f.exportNow(t, map[string]any{"scope": "tenant", "format": "csv"})
	require.NotEmpty(t, personTraces(t, app, name, phone, email), "the search must find her before the erasure")

	// A reason in free text is accepted (API.md lets the caller send
	// one) and recorded as "other": the record that outlives her data
	// must not name her, which the search of every table below proves.
	body, wantReason := map[string]any{"scope": "contact", "contact_id": "zq", "reason": "Zelda Quixote asked by phone"}, "other"
	if minor {
		body["reason"], wantReason = "minor", "minor"
	}
	resp = app.Do("POST", "/v1/deletions", a.Key, body)
	require.Equalf(t, 202, resp.Status, "body: %s", resp.Body)
	id := resp.JSON()["id"].(string)
	app.Eventually(10*time.Second, "erasure completed", func() bool {
		return deletionOf(t, app, a.Key, id)["status"] == "completed"
	})
	// personTraces ignores case; the phone is searched as stored and as
	// typed.
	require.Empty(t, personTraces(t, app, name, "ZELDA QUIXOTE", phone, "(312) 555-0199", email, "3125550199",
		"12 Elm St", "gate code"))
	got := deletionOf(t, app, a.Key, id)
	counts := got["counts"].(map[string]any)
	require.EqualValues(t, 1, counts["contacts"])
	require.EqualValues(t, 1, counts["appointments"])
	require.EqualValues(t, 1, counts["verifications"])
	require.EqualValues(t, 3, counts["export_files"], "hers, the account's, and the access request's")
	require.EqualValues(t, 1, counts["import_files"], "the client list that named her")
	require.EqualValues(t, 2, counts["import_errors"], "her rejected rows")
	require.GreaterOrEqual(t, counts["privacy_request_notes"], float64(2), "the notes on her request and the one naming her")
	require.Equal(t, wantReason, got["reason"])
	require.Equal(t, "succeeded", app.Do("GET", "/v1/imports/"+importID, a.Key, nil).JSON()["status"], "the import's record stays")
	// The opt-out stays, as its pseudonym; the other person is untouched.
	require.Equal(t, 1, count(t, "SELECT count(*) FROM suppressions WHERE tenant_id = $1", a.ID))
	require.Equal(t, "Hi there", app.Message(a.ID, kept).Body)
	require.Equal(t, 200, app.Do("GET", "/v1/contacts/other", a.Key, nil).Status)
	requireError(t, app.Do("GET", "/v1/contacts/zq", a.Key, nil), 404, "not_found")
	if minor {
		// A child's message log goes entirely.
		require.Equal(t, 1, count(t, "SELECT count(*) FROM messages WHERE tenant_id = $1", a.ID))
	} else {
		require.Equal(t, 4, count(t, "SELECT count(*) FROM messages WHERE tenant_id = $1", a.ID))
	}
	// Erasure cannot be undone; running it again changes nothing.
	requireError(t, app.Do("DELETE", "/v1/deletions/"+id, a.Key, nil), 409, "deletion_not_cancellable")
	require.NoError(t, app.Deletions.Run(ctx, a.ID, app.MustUUID(id)))
	again, _ := json.Marshal(deletionOf(t, app, a.Key, id)["counts"])
	before, _ := json.Marshal(counts)
	require.JSONEq(t, string(before), string(again))

	// The list's rejected row of someone else is not hers: it stays until
	// the import's own expiry, which the erasure must not have cancelled.
	require.Equal(t, 1, count(t, "SELECT count(*) FROM import_errors WHERE tenant_id = $1", a.ID))
	app.Clock.Advance(8 * 24 * time.Hour)
	_, err = jobs.NewImportExpire(app.Deps).Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, count(t, "SELECT count(*) FROM import_errors WHERE tenant_id = $1", a.ID),
		"the import's other rejected rows expire on their own schedule after an erasure")
}

// An approved deletion request starts an erasure, and completes when the
// erasure does.
func TestPrivacyDeletionRequestCompletesWithErasure(t *testing.T) {
	app := testapp.New(t)
	app.StartWorker(2)
	a := app.NewTenant("Acme")
	putContact(t, app, a.Key, "zq", map[string]any{"name": "Zelda", "phone": "+13125550199"})
	resp := app.Do("POST", "/v1/privacy-requests", a.Key, map[string]any{"type": "deletion", "subject": "contact", "contact_id": "zq"})
	require.Equalf(t, 201, resp.Status, "body: %s", resp.Body)
	pr := resp.JSON()["id"].(string)
	resp = app.Do("POST", "/v1/privacy-requests/"+pr+"/transitions", a.Key, map[string]any{"status": "approved"})
	require.Equalf(t, 200, resp.Status, "body: %s", resp.Body)
	app.Eventually(10*time.Second, "privacy request completed", func() bool {
		return app.Do("GET", "/v1/privacy-requests/"+pr, a.Key, nil).JSON()["status"] == "completed"
	})
	d := app.Do("GET", "/v1/privacy-requests/"+pr, a.Key, nil).JSON()["deletion_id"].(string)
	got := deletionOf(t, app, a.Key, d)
	require.Equal(t, "completed", got["status"])
	require.Equal(t, pr, got["privacy_request_id"])
}

// A tenant-scope deletion request is due in 30 days, before the 90-day
// grace ends: the deletion it starts purges by the request's deadline
// (a day ahead), and the request, readable while the account is
// cancelled, never goes overdue.
func TestPrivacyDeletionRequestPurgesByItsDeadline(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("Leaving By Request Co")
	putContact(t, app, a.Key, "c1", map[string]any{"name": "Pat Doe", "phone": "+13125550142"})
	ctx := context.Background()
	received := app.Clock.Now()
	resp := app.Do("POST", "/v1/privacy-requests", a.Key, map[string]any{"type": "deletion", "subject": "tenant"})
	require.Equalf(t, 201, resp.Status, "body: %s", resp.Body)
	pr := resp.JSON()
	due, err := time.Parse(time.RFC3339Nano, pr["due_at"].(string))
	require.NoError(t, err)
	require.True(t, due.Equal(received.Add(30*day)), "due_at %s", due)
	app.Clock.Advance(2 * day) // approved two days later
	resp = app.Do("POST", "/v1/privacy-requests/"+pr["id"].(string)+"/transitions", a.Key, map[string]any{"status": "approved"})
	require.Equalf(t, 200, resp.Status, "body: %s", resp.Body)
	got := resp.JSON()
	require.Equal(t, "in_progress", got["status"])
	id := got["deletion_id"].(string)

	// The account is cancelled, the request still readable.
	requireError(t, app.Do("GET", "/v1/contacts/c1", a.Key, nil), 403, "tenant_cancelled")
	require.Equal(t, 200, app.Do("GET", "/v1/privacy-requests/"+pr["id"].(string), a.Key, nil).Status)
	d := deletionOf(t, app, a.Key, id)
	require.Equal(t, "privacy_request", d["reason"])
	purgeAfter, err := time.Parse(time.RFC3339Nano, d["purge_after"].(string))
	require.NoError(t, err)
	require.True(t, purgeAfter.Equal(due.Add(-jobs.PrivacyPurgeMargin)), "purge_after %s, due %s", purgeAfter, due)

	watcher := jobs.NewPrivacyDeadlines(app.Deps)
	app.Clock.Set(purgeAfter.Add(-time.Minute))
	n, err := app.Deletions.Scan(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	app.Clock.Set(purgeAfter)
	n, err = app.Deletions.Scan(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, "completed", deletionOf(t, app, a.Key, id)["status"])
	require.Zero(t, count(t, "SELECT count(*) FROM contacts WHERE tenant_id = $1", a.ID))
	require.True(t, app.Clock.Now().Before(due))

	// Past the deadline nothing is overdue: the purge fulfilled it.
	app.Clock.Set(due.Add(day))
	res, err := watcher.Watch(ctx)
	require.NoError(t, err)
	require.Zero(t, res.MarkedOverdue)
	overdue, err := jobs.PrivacyOverdue(app.Store, app.Clock)(ctx)
	require.NoError(t, err)
	require.Zero(t, overdue["deletion"])
}

// asynq's archive (tasks that gave up) is trimmed by the retention sweep
// after ERRAND_ARCHIVED_TASK_RETENTION (30 days by default), not before.
func TestRetentionSweepTrimsAsynqArchive(t *testing.T) {
	app := testapp.New(t)
	app.StartWorker(1)
	_, err := app.Client.Enqueue(asynq.NewTask("test:no_such_kind", []byte(`{}`)),
		asynq.Queue(jobs.QueueMaintenance), asynq.MaxRetry(0), asynq.TaskID("doomed"))
	require.NoError(t, err)
	app.Eventually(10*time.Second, "task archived", func() bool {
		info, err := app.Inspector.GetTaskInfo(jobs.QueueMaintenance, "doomed")
		return err == nil && info.State == asynq.TaskStateArchived
	})
	sweep := jobs.NewRetentionSweep(app.Deps)
	app.Clock.Advance(29 * day)
	counts, err := sweep.Sweep(context.Background())
	require.NoError(t, err)
	require.Zero(t, counts["asynq_archived"])
	app.Clock.Advance(2 * day)
	counts, err = sweep.Sweep(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 1, counts["asynq_archived"])
	_, err = app.Inspector.GetTaskInfo(jobs.QueueMaintenance, "doomed")
	require.ErrorIs(t, err, asynq.ErrTaskNotFound)
}

// A hold on one person stops their erasure (and says so), not others'.
func TestLegalHoldOnAPersonBlocksTheirErasure(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("Acme")
	putContact(t, app, a.Key, "held", map[string]any{"name": "Held Person"})
	putContact(t, app, a.Key, "free", map[string]any{"name": "Free Person"})
	resp := app.Do("POST", "/admin/v1/legal-holds", app.AdminToken,
		map[string]any{"tenant_id": a.ID.String(), "contact_id": "held", "reason": "litigation"})
	require.Equalf(t, 201, resp.Status, "body: %s", resp.Body)
	ctx := context.Background()
	ids := map[string]string{}
	for _, c := range []string{"held", "free"} {
		resp := app.Do("POST", "/v1/deletions", a.Key, map[string]any{"scope": "contact", "contact_id": c})
		require.Equalf(t, 202, resp.Status, "body: %s", resp.Body)
		ids[c] = resp.JSON()["id"].(string)
	}
	_, err := app.Deletions.Scan(ctx)
	require.NoError(t, err)
	held := deletionOf(t, app, a.Key, ids["held"])
	require.Equal(t, "scheduled", held["status"])
	require.Equal(t, "litigation", held["waited_for"].(map[string]any)["reason"])
	require.Equal(t, "completed", deletionOf(t, app, a.Key, ids["free"])["status"])
	require.Equal(t, 200, app.Do("GET", "/v1/contacts/held", a.Key, nil).Status)
	requireError(t, app.Do("GET", "/v1/contacts/free", a.Key, nil), 404, "not_found")
}

// failingFolders is a file store that cannot empty one tenant's folder.
type failingFolders struct {
	*filestore.Local
	tenant string
}

func (f failingFolders) DeletePrefixStep(ctx context.Context, prefix, done string, limit int) ([]string, error) {
	if strings.Contains(prefix, f.tenant) {
		return nil, errors.New("the disk refused")
	}
	return f.Local.DeletePrefixStep(ctx, prefix, done, limit)
}

// A purge that fails does not stop the scan: the deletions after it are
// carried out, the failure is reported (so the periodic task is retried)
// and the failed one is tried again on the next scan.
func TestFailingDeletionDoesNotBlockOthers(t *testing.T) {
	app := testapp.New(t)
	a, b := app.NewTenant("Acme"), app.NewTenant("Other Co")
	var ids []string
	for _, tn := range []testapp.Tenant{a, b} {
		resp := app.Do("POST", "/v1/deletions", tn.Key, map[string]any{"scope": "tenant"})
		require.Equalf(t, 202, resp.Status, "body: %s", resp.Body)
		ids = append(ids, resp.JSON()["id"].(string))
		app.Clock.Advance(time.Second) // a's purge is due first
	}
	app.Clock.Advance(91 * 24 * time.Hour)
	app.Deletions.Files = failingFolders{Local: app.Files, tenant: a.ID.String()}

	n, err := app.Deletions.Scan(context.Background())
	require.ErrorContains(t, err, "the disk refused")
	require.Equal(t, 1, n, "the deletion after the failing one ran")
	require.Equal(t, "completed", deletionOf(t, app, b.Key, ids[1])["status"])
	require.NotEqual(t, "completed", deletionOf(t, app, a.Key, ids[0])["status"])

	app.Deletions.Files = app.Files
	n, err = app.Deletions.Scan(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, "completed", deletionOf(t, app, a.Key, ids[0])["status"])
}
