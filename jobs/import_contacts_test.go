package jobs_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
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
	"github.com/errandhq/errand/internal/testapp"
	"github.com/errandhq/errand/internal/testenv"
	"github.com/errandhq/errand/jobs"
)

type importFixture struct {
	app    *testapp.App
	tenant testapp.Tenant
	other  testapp.Tenant
}

func setupImport(t *testing.T, opts ...func(*testapp.Options)) importFixture {
	t.Helper()
	app := testapp.New(t, opts...)
	return importFixture{app: app, tenant: app.NewTenant("Acme Realty"), other: app.NewTenant("Other Realty")}
}

// upload posts a CSV body and returns the import's ID.
func (f importFixture) upload(t *testing.T, body []byte, query string) uuid.UUID {
	t.Helper()
	res := f.app.Do("POST", "/v1/imports"+query, f.tenant.Key, body, "Content-Type", "text/csv")
	require.Equal(t, http.StatusAccepted, res.Status, string(res.Body))
	require.Equal(t, "queued", res.JSON()["status"])
	return f.app.MustUUID(res.JSON()["id"])
}

func importTask(tenant, id uuid.UUID) *asynq.Task {
	j := jobs.NewImportContactsJob(tenant, id)
	return asynq.NewTask(j.Type, j.Payload)
}

func (f importFixture) run(t *testing.T, id uuid.UUID, h *jobs.ImportContacts) error {
	t.Helper()
	if h == nil {
		h = jobs.NewImportContacts(f.app.Deps)
	}
	return h.ProcessTask(context.Background(), importTask(f.tenant.ID, id))
}

func (f importFixture) get(t *testing.T, id uuid.UUID) map[string]any {
	t.Helper()
	res := f.app.Do("GET", "/v1/imports/"+id.String(), f.tenant.Key, nil)
	require.Equal(t, http.StatusOK, res.Status, string(res.Body))
	return res.JSON()
}

func counts(m map[string]any) [5]int {
	n := func(k string) int { return int(m[k].(float64)) }
	return [5]int{n("rows_total"), n("rows_created"), n("rows_updated"), n("rows_rejected"), n("rows_duplicates")}
}

func (f importFixture) contacts(t *testing.T) []db.Contact {
	t.Helper()
	var out []db.Contact
	ctx := context.Background()
	require.NoError(t, f.app.Store.InTenantTx(ctx, f.tenant.ID, pgx.TxOptions{}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, external_id, name, phone, email, address, notes, property_type,
			closing_date FROM contacts WHERE tenant_id = $1 ORDER BY name`, f.tenant.ID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var c db.Contact
			if err := rows.Scan(&c.ID, &c.ExternalID, &c.Name, &c.Phone, &c.Email, &c.Address, &c.Notes, &c.PropertyType,
				&c.ClosingDate); err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	}))
	return out
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "internal", "importer", "testdata", name))
	require.NoError(t, err)
	return b
}

// Every messy-file fixture imports end to end: through the API, the file
// store and the job, with the counts the parser's own tests expect.
func TestImportMessyFiles(t *testing.T) {
	f := setupImport(t)
	cases := []struct {
		file              string
		created, rejected int
	}{
		{"utf8_bom.csv", 2, 0}, {"windows1252.csv", 2, 0}, {"utf16le.txt", 2, 0}, {"utf16be.csv", 1, 0},
		{"crlf.csv", 2, 0}, {"semicolon.csv", 2, 0}, {"tab.tsv", 2, 0}, {"quoted_newlines.csv", 2, 1},
		{"ragged.csv", 2, 1}, {"blank_lines.csv", 2, 0}, {"wide40.csv", 2, 0}, {"first_last.csv", 2, 0},
		{"dates.csv", 4, 1}, {"late_bad_bytes.csv", 701, 1}, {"utf8_stray_byte.csv", 3, 1},
	}
	before := 0
	for _, c := range cases {
		id := f.upload(t, readFixture(t, c.file), "")
		require.NoError(t, f.run(t, id, nil), c.file)
		got := f.get(t, id)
		require.Equal(t, "succeeded", got["status"], c.file)
		require.Equal(t, [5]int{c.created + c.rejected, c.created, 0, c.rejected, 0}, counts(got), c.file)
		require.EqualValues(t, 100, got["progress"])
		after := len(f.contacts(t))
		require.Equal(t, c.created, after-before, c.file)
		before = after
	}
	byName := map[string]db.Contact{}
	for _, c := range f.contacts(t) {
		byName[c.Name] = c
	}
	require.Equal(t, "+13125550144", *byName["José Müller"].Phone) // Windows-1252, transcoded
	require.Equal(t, "lukasz@example.com", *byName["Łukasz Nowak"].Email)
	require.Equal(t, "Gate code 12\nring twice\n\"back door\"", *byName["Nia Long"].Notes)
	require.Equal(t, "c-1", byName["Zoë Adams"].ExternalID)
	require.True(t, strings.HasPrefix(byName["Mia Chen"].ExternalID, "import-"))
	_, garbled := byName["Bad Bytes \uFFFD"]
	require.False(t, garbled)
	require.Equal(t, "Café regular", *byName["Zoë Vermeulen"].Notes) // a stray byte elsewhere garbles nothing
	// Property type and closing date are stored as read (05/01/2024 is
	// May 1 for a US tenant).
	require.Equal(t, "Condo", *byName["Wes Ward"].PropertyType)
	require.Equal(t, "2024-05-01", byName["Wes Ward"].ClosingDate.Time.Format(time.DateOnly))
	require.Nil(t, byName["Solo"].PropertyType)
	require.False(t, byName["Solo"].ClosingDate.Valid)
	for _, n := range []string{"D One", "D Two", "D Three"} {
		require.Equal(t, "2024-05-01", byName[n].ClosingDate.Time.Format(time.DateOnly), n)
	}
	require.Contains(t, byName, "Chloë Brontë")
}

func TestImportWithoutIdentityColumnFailsWithAReason(t *testing.T) {
	f := setupImport(t)
	id := f.upload(t, readFixture(t, "no_identity.csv"), "")
	err := f.run(t, id, nil)
	require.Error(t, err)
	got := f.get(t, id)
	require.Equal(t, "failed", got["status"])
	require.Contains(t, got["error"], "no phone or email column was recognised")
}

// A dry run counts exactly what the real import then does, and writes no
// contact.
func TestImportDryRunThenReal(t *testing.T) {
	f := setupImport(t)
	res := f.app.Do("PUT", "/v1/contacts/crm-1", f.tenant.Key, map[string]any{"name": "Known", "phone": "+13125550120"})
	require.Less(t, res.Status, 300, string(res.Body))
	body := []byte("ID,Name,Phone,Email\n" +
		"a1,Ann,3125550101,ann@example.com\n" +
		"a2,Ben,3125550102,\n" +
		"a3,Cat,bad,\n" + // rejected
		",Walk-in,3125550110,\n" +
		"a1,Ann Again,,ann@example.com\n" + // a1 again: duplicate, merged
		",Known Client,3125550120,\n" + // the existing contact: updated
		"a4,Dan,,dan@example.com\n" +
		",Walk-in Later,(312) 555-0110,\n" + // the same phone key: duplicate
		",Dan's Email,,DAN@example.com\n" + // an email key; a4 is another key: a new contact
		",Known Again,3125550120,\n") // the existing contact again: duplicate
	h := jobs.NewImportContacts(f.app.Deps)
	h.BatchRows = 2 // duplicates across batches too

	dry := f.upload(t, body, "?dry_run=true")
	require.NoError(t, f.run(t, dry, h))
	gotDry := f.get(t, dry)
	require.Equal(t, true, gotDry["dry_run"])
	require.Equal(t, "succeeded", gotDry["status"])
	require.Len(t, f.contacts(t), 1)

	real := f.upload(t, body, "")
	require.NoError(t, f.run(t, real, h))
	gotReal := f.get(t, real)
	require.Equal(t, [5]int{10, 5, 1, 1, 3}, counts(gotReal))
	require.Equal(t, counts(gotReal), counts(gotDry))
	cs := f.contacts(t)
	require.Len(t, cs, 6)
	names := []string{}
	for _, c := range cs {
		names = append(names, c.Name)
	}
	// Last wins: the later row's non-blank cells replace the earlier's.
	require.ElementsMatch(t, []string{"Ann Again", "Ben", "Walk-in Later", "Known Again", "Dan", "Dan's Email"}, names)

	// Nothing is left in the working tables.
	var staged int
	require.NoError(t, f.app.Store.InTenantTx(context.Background(), f.tenant.ID, pgx.TxOptions{}, func(tx pgx.Tx) error {
		return tx.QueryRow(context.Background(),
			`SELECT (SELECT count(*) FROM import_rows) + (SELECT count(*) FROM import_seen)`).Scan(&staged)
	}))
	require.Zero(t, staged)
}

// Importing the same file again updates, never duplicates.
func TestImportTwiceIsIdempotent(t *testing.T) {
	f := setupImport(t)
	body := []byte("Name,Phone,Email,Notes\nAnn,3125550101,ann@example.com,first\nBen,,ben@example.com,\n")
	first := f.upload(t, body, "")
	require.NoError(t, f.run(t, first, nil))
	require.Equal(t, [5]int{2, 2, 0, 0, 0}, counts(f.get(t, first)))
	again := f.upload(t, body, "")
	require.NoError(t, f.run(t, again, nil))
	require.Equal(t, [5]int{2, 0, 2, 0, 0}, counts(f.get(t, again)))
	require.Len(t, f.contacts(t), 2)

	// An existing contact (made through the API) is matched by phone and
	// keeps its external ID; a blank cell keeps what it had.
	res := f.app.Do("PUT", "/v1/contacts/crm-9", f.tenant.Key, map[string]any{"name": "Cy", "phone": "+13125550109",
		"address": "1 Old Rd"})
	require.Less(t, res.Status, 300, string(res.Body))
	third := f.upload(t, []byte("Name,Phone,Address\nCy Updated,(312) 555-0109,\n"), "")
	require.NoError(t, f.run(t, third, nil))
	require.Equal(t, [5]int{1, 0, 1, 0, 0}, counts(f.get(t, third)))
	for _, c := range f.contacts(t) {
		if c.ExternalID == "crm-9" {
			require.Equal(t, "Cy Updated", c.Name)
			require.Equal(t, "1 Old Rd", *c.Address)
		}
	}
	require.Len(t, f.contacts(t), 3)
}

func bigFile(n int) []byte {
	var b bytes.Buffer
	b.WriteString("Client ID,Name,Phone\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "k%d,Person %d,312555%04d\n", i, i, 2000+i)
	}
	return b.Bytes()
}

// A worker that dies after some batches leaves the row running; once its
// heartbeat is stale the next attempt resumes after the last committed
// batch, and the end result equals an uninterrupted import.
func TestImportKillAndResume(t *testing.T) {
	f := setupImport(t)
	body := bigFile(23)
	id := f.upload(t, body, "")
	killed := errors.New("worker killed")
	h := jobs.NewImportContacts(f.app.Deps)
	h.BatchRows = 5
	h.AfterBatch = func(batch int32) error {
		if batch == 2 {
			return killed
		}
		return nil
	}
	require.ErrorIs(t, f.run(t, id, h), killed)
	mid := f.get(t, id)
	require.Equal(t, "running", mid["status"])
	require.Equal(t, [5]int{10, 10, 0, 0, 0}, counts(mid))
	require.Len(t, f.contacts(t), 10)

	// A retry too soon finds the attempt still (apparently) alive.
	h.AfterBatch = nil
	err := f.run(t, id, h)
	require.Error(t, err)
	require.Equal(t, "running", f.get(t, id)["status"])

	f.app.Clock.Advance(3 * time.Minute)
	require.NoError(t, f.run(t, id, h))
	done := f.get(t, id)
	require.Equal(t, "succeeded", done["status"])
	require.Equal(t, [5]int{23, 23, 0, 0, 0}, counts(done))
	require.Len(t, f.contacts(t), 23)
}

// A transient failure mid-file (the database went away) puts the import
// back in line with its counts; the retry resumes.
func TestImportResumesAfterATransientFailure(t *testing.T) {
	f := setupImport(t)
	id := f.upload(t, bigFile(12), "")
	h := jobs.NewImportContacts(f.app.Deps)
	h.BatchRows = 4
	ctx, cancel := context.WithCancel(context.Background())
	h.AfterBatch = func(batch int32) error {
		if batch == 1 {
			cancel() // the next batch's transaction fails
		}
		return nil
	}
	err := h.ProcessTask(ctx, importTask(f.tenant.ID, id))
	require.Error(t, err)
	mid := f.get(t, id)
	require.Equal(t, "queued", mid["status"])
	require.Equal(t, [5]int{4, 4, 0, 0, 0}, counts(mid))
	require.Contains(t, mid["error"], "retrying")

	h.AfterBatch = nil
	f.app.Clock.Advance(time.Hour)
	require.NoError(t, f.run(t, id, h))
	require.Equal(t, [5]int{12, 12, 0, 0, 0}, counts(f.get(t, id)))
	require.Len(t, f.contacts(t), 12)
}

// DELETE stops a running import between batches: the batch after it is
// rolled back and nothing more is written.
func TestImportCancel(t *testing.T) {
	f := setupImport(t)
	id := f.upload(t, bigFile(20), "")
	h := jobs.NewImportContacts(f.app.Deps)
	h.BatchRows = 5
	h.AfterBatch = func(batch int32) error {
		if batch == 1 {
			res := f.app.Do("DELETE", "/v1/imports/"+id.String(), f.tenant.Key, nil)
			require.Equal(t, http.StatusOK, res.Status, string(res.Body))
			require.Equal(t, "cancelled", res.JSON()["status"])
		}
		return nil
	}
	require.NoError(t, f.run(t, id, h))
	got := f.get(t, id)
	require.Equal(t, "cancelled", got["status"])
	require.Equal(t, [5]int{5, 5, 0, 0, 0}, counts(got))
	require.Len(t, f.contacts(t), 5)

	// A finished import cannot be cancelled; a later task does nothing.
	res := f.app.Do("DELETE", "/v1/imports/"+id.String(), f.tenant.Key, nil)
	require.Equal(t, http.StatusConflict, res.Status)
	require.NoError(t, f.run(t, id, nil))
	require.Len(t, f.contacts(t), 5)
}

func TestImportCrossTenantIsNotFound(t *testing.T) {
	f := setupImport(t)
	id := f.upload(t, []byte("Phone\n3125550101\n"), "")
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/imports/" + id.String()},
		{"GET", "/v1/imports/" + id.String() + "/errors"},
		{"DELETE", "/v1/imports/" + id.String()},
		{"GET", "/v1/imports/not-a-uuid"},
	} {
		res := f.app.Do(c.method, c.path, f.other.Key, nil)
		require.Equal(t, http.StatusNotFound, res.Status, c.method+" "+c.path)
	}
	require.Equal(t, "queued", f.get(t, id)["status"])
}

// The rejected rows come back as uploaded, with line and reason, and no
// cell can run as a spreadsheet formula.
func TestImportErrorsCSVIsFormulaSafe(t *testing.T) {
	f := setupImport(t)
	body := []byte("Name,Phone,Notes\n" +
		"=HYPERLINK(\"http://evil.example\"),not a phone,@SUM(A1)\n" +
		"Good,3125550101,ok\n" +
		"+cmd,,\"\tTabbed\"\n" +
		"-2,,x\n")
	id := f.upload(t, body, "")
	require.NoError(t, f.run(t, id, nil))
	require.Equal(t, [5]int{4, 1, 0, 3, 0}, counts(f.get(t, id)))
	res := f.app.Do("GET", "/v1/imports/"+id.String()+"/errors", f.tenant.Key, nil)
	require.Equal(t, http.StatusOK, res.Status)
	require.Contains(t, res.Header.Get("Content-Type"), "text/csv")
	rows, err := csv.NewReader(bytes.NewReader(res.Body)).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"line", "reason", "Name", "Phone", "Notes"}, rows[0])
	require.Len(t, rows, 4)
	require.Equal(t, "2", rows[1][0])
	require.Equal(t, `'=HYPERLINK("http://evil.example")`, rows[1][2])
	require.Equal(t, "'@SUM(A1)", rows[1][4])
	require.Equal(t, "4", rows[2][0])
	require.Equal(t, "'+cmd", rows[2][2])
	require.Equal(t, "'\tTabbed", rows[2][4])
	require.Equal(t, "5", rows[3][0])
	require.Equal(t, "-2", rows[3][2]) // a plain number stays as it is
	for _, r := range rows[1:] {
		require.NotEmpty(t, r[1])
	}
}

// An imported contact whose number is on the opt-out list stays opted out.
func TestImportKeepsOptOuts(t *testing.T) {
	f := setupImport(t)
	ctx := context.Background()
	hash := f.app.Deps.Pseudonyms.Address("sms", "+13125550177")
	require.NoError(t, f.app.Store.InTenant(ctx, f.tenant.ID, func(q *db.Queries) error {
		return q.SuppressionAdd(ctx, db.SuppressionAddParams{TenantID: f.tenant.ID, Channel: "sms", AddressHash: hash,
			Reason: "opt_out", Source: "inbound_sms", Now: f.app.Clock.Now()})
	}))
	id := f.upload(t, []byte("ID,Name,Phone\nopt-1,Opted Out,312-555-0177\n"), "")
	require.NoError(t, f.run(t, id, nil))
	require.Equal(t, [5]int{1, 1, 0, 0, 0}, counts(f.get(t, id)))
	cs := f.contacts(t)
	require.Len(t, cs, 1)
	require.NoError(t, f.app.Store.InTenant(ctx, f.tenant.ID, func(q *db.Queries) error {
		s, err := q.SuppressionGet(ctx, db.SuppressionGetParams{TenantID: f.tenant.ID, Channel: "sms",
			AddressHash: f.app.Deps.Pseudonyms.Address("sms", *cs[0].Phone)})
		require.Equal(t, "opt_out", s.Reason)
		return err
	}))

	// A text to the imported contact is not sent.
	res := f.app.Do("POST", "/v1/messages", f.tenant.Key, map[string]any{"contact_id": "opt-1", "channel": "sms",
		"body": "Happy anniversary of your new home!"})
	require.Equal(t, http.StatusAccepted, res.Status, string(res.Body))
	m := f.app.Message(f.tenant.ID, f.app.MustUUID(res.JSON()["id"]))
	j := jobs.NewMessageSendJob(m.TenantID, m.ID, m.Kind)
	require.NoError(t, jobs.NewMessageSend(f.app.Deps).ProcessTask(ctx, asynq.NewTask(j.Type, j.Payload)))
	require.Equal(t, "suppressed", f.app.Message(f.tenant.ID, m.ID).Status)
	require.Zero(t, f.app.Twilio.Requests())
}

// An email address that is not one is rejected with its line and a
// reason; the file's other rows are imported.
func TestImportRejectsAnInvalidEmail(t *testing.T) {
	f := setupImport(t)
	id := f.upload(t, []byte("Name,Email\nGood,good@example.com\nBad,not-an-email@\nAlso Bad,two@@example.com\n"), "")
	require.NoError(t, f.run(t, id, nil))
	require.Equal(t, [5]int{3, 1, 0, 2, 0}, counts(f.get(t, id)))
	res := f.app.Do("GET", "/v1/imports/"+id.String()+"/errors", f.tenant.Key, nil)
	rows, err := csv.NewReader(bytes.NewReader(res.Body)).ReadAll()
	require.NoError(t, err)
	require.Equal(t, [][]string{{"line", "reason", "Name", "Email"},
		{"3", "the email address is not valid", "Bad", "not-an-email@"},
		{"4", "the email address is not valid", "Also Bad", "two@@example.com"}}, rows)
	require.Len(t, f.contacts(t), 1)
}

// A tenant outside the US reads phones without a country code in its own
// region and 05/01/2024 as 5 January.
func TestImportInATenantOutsideTheUS(t *testing.T) {
	f := setupImport(t)
	_, err := testenv.Owner(t).Exec(context.Background(), "UPDATE tenants SET default_region = 'GB' WHERE id = $1",
		f.tenant.ID)
	require.NoError(t, err)
	id := f.upload(t, []byte("Name,Phone,Closing Date\n"+
		"Nigel,020 7946 0018,05/01/2024\n"+
		"Visitor,+1 312 555 0101,2024-05-01\n"+
		"Local Format,(312) 555-0102,\n"), "")
	require.NoError(t, f.run(t, id, nil))
	require.Equal(t, [5]int{3, 2, 0, 1, 0}, counts(f.get(t, id)))
	byName := map[string]db.Contact{}
	for _, c := range f.contacts(t) {
		byName[c.Name] = c
	}
	require.Equal(t, "+442079460018", *byName["Nigel"].Phone)
	require.Equal(t, "2024-01-05", byName["Nigel"].ClosingDate.Time.Format(time.DateOnly))
	require.Equal(t, "+13125550101", *byName["Visitor"].Phone)
	require.Equal(t, "2024-05-01", byName["Visitor"].ClosingDate.Time.Format(time.DateOnly))
}

func TestImportTooLargeIs413AndKeepsNothing(t *testing.T) {
	f := setupImport(t, func(o *testapp.Options) { o.ImportMaxBytes = 1000 })
	res := f.app.Do("POST", "/v1/imports", f.tenant.Key, bigFile(100), "Content-Type", "text/csv")
	require.Equal(t, http.StatusRequestEntityTooLarge, res.Status, string(res.Body))
	entries, err := os.ReadDir(filepath.Join(f.app.FilesDir, "tenants", f.tenant.ID.String(), "imports"))
	if err == nil {
		require.Empty(t, entries)
	}
	// Just under the limit is accepted.
	res = f.app.Do("POST", "/v1/imports", f.tenant.Key, bigFile(20), "Content-Type", "text/csv")
	require.Equal(t, http.StatusAccepted, res.Status, string(res.Body))
}

func TestImportMultipartWithMapping(t *testing.T) {
	f := setupImport(t)
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	require.NoError(t, mw.WriteField("mapping", `{"phone": "Digits", "name": "Who"}`))
	fw, err := mw.CreateFormFile("file", "clients.csv")
	require.NoError(t, err)
	fw.Write([]byte("Who,Digits,Shoe Size\nAmy,3125550170,9\n")) //nolint:errcheck
	require.NoError(t, mw.Close())
	res := f.app.Do("POST", "/v1/imports", f.tenant.Key, b.Bytes(), "Content-Type", mw.FormDataContentType())
	require.Equal(t, http.StatusAccepted, res.Status, string(res.Body))
	id := f.app.MustUUID(res.JSON()["id"])
	require.NoError(t, f.run(t, id, nil))
	got := f.get(t, id)
	require.Equal(t, [5]int{1, 1, 0, 0, 0}, counts(got))
	require.Equal(t, []any{"Shoe Size"}, got["unknown_columns"])
	require.Equal(t, "Amy", f.contacts(t)[0].Name)

	bad := f.app.Do("POST", `/v1/imports?mapping={"shoe":"x"}`, f.tenant.Key, "Phone\n1\n", "Content-Type", "text/csv")
	require.Equal(t, http.StatusUnprocessableEntity, bad.Status)
	bad = f.app.Do("POST", "/v1/imports", f.tenant.Key, "{}", "Content-Type", "application/json")
	require.Equal(t, http.StatusUnsupportedMediaType, bad.Status)
}

// Through the real worker: the task's result in asynqmon carries the
// progress and counts.
func TestImportThroughTheWorker(t *testing.T) {
	f := setupImport(t)
	f.app.StartWorker(2)
	id := f.upload(t, bigFile(30), "")
	f.app.Eventually(30*time.Second, "import to finish", func() bool {
		return f.get(t, id)["status"] == "succeeded"
	})
	var info *asynq.TaskInfo
	f.app.Eventually(10*time.Second, "task result", func() bool {
		var err error
		info, err = f.app.Inspector.GetTaskInfo(jobs.QueueBulk, "import:"+id.String())
		return err == nil && len(info.Result) > 0 && info.State == asynq.TaskStateCompleted
	})
	var r jobs.ImportResult
	require.NoError(t, json.Unmarshal(info.Result, &r))
	require.Equal(t, jobs.ImportResult{Status: "succeeded", Progress: 100, Total: 30, Created: 30}, r)
}

// The upload and the rejected rows are deleted a week after the import
// ends; the row and its counts stay.
func TestImportFilesExpire(t *testing.T) {
	f := setupImport(t)
	id := f.upload(t, []byte("Name,Phone\nAmy,3125550170\nBad,nope\n"), "")
	require.NoError(t, f.run(t, id, nil))
	ctx := context.Background()
	key := fmt.Sprintf(jobs.ImportFileKey, f.tenant.ID, id)
	ok, err := f.app.Files.Exists(ctx, key)
	require.NoError(t, err)
	require.True(t, ok)
	sweep := jobs.NewImportExpire(f.app.Deps)
	n, err := sweep.Sweep(ctx)
	require.NoError(t, err)
	require.Zero(t, n)

	f.app.Clock.Advance(jobs.DefaultImportFilesTTL + time.Minute)
	n, err = sweep.Sweep(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	ok, err = f.app.Files.Exists(ctx, key)
	require.NoError(t, err)
	require.False(t, ok)
	res := f.app.Do("GET", "/v1/imports/"+id.String()+"/errors", f.tenant.Key, nil)
	rows, err := csv.NewReader(bytes.NewReader(res.Body)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 1) // the header only
	require.Equal(t, [5]int{2, 1, 0, 1, 0}, counts(f.get(t, id)))
}

// Batches follow the database's pace, so progress is committed about every
// two seconds however slowly the merges run: a batch that took ten
// seconds makes the next one a fifth the size; a fast one lets it grow,
// at most doubling, never past the limit nor below 100 rows.
func TestImportBatchRowsFollowTheCommitPace(t *testing.T) {
	for _, c := range []struct {
		rows  int
		took  time.Duration
		limit int
		want  int
	}{
		{5000, 10 * time.Second, 5000, 1000},
		{1000, 100 * time.Millisecond, 5000, 2000},
		{4000, time.Second, 5000, 5000},
		{1000, 2 * time.Second, 5000, 1000},
		{1000, time.Minute, 5000, 100},
		{5, time.Minute, 5, 5},
		{1000, 0, 5000, 2000},
	} {
		require.Equal(t, c.want, jobs.NextImportBatchRows(c.rows, c.took, c.limit), "%+v", c)
	}
}

// Between batches the API shows a running import with its progress and
// the rows committed so far.
func TestImportProgressIsVisibleMidImport(t *testing.T) {
	f := setupImport(t)
	const rows = 7000
	id := f.upload(t, bigFile(rows), "")
	h := jobs.NewImportContacts(f.app.Deps)
	h.BatchRows = 1000
	var seen []map[string]any
	h.AfterBatch = func(int32) error {
		seen = append(seen, f.get(t, id))
		return nil
	}
	require.NoError(t, f.run(t, id, h))
	require.Greater(t, len(seen), 2)
	first := seen[0]
	require.Equal(t, "running", first["status"])
	p := first["progress"].(float64)
	require.Greater(t, p, 0.0)
	require.Less(t, p, 100.0)
	n := counts(first)[0]
	require.Positive(t, n)
	require.Less(t, n, rows)
	for i := 1; i < len(seen); i++ {
		require.GreaterOrEqual(t, seen[i]["progress"].(float64), seen[i-1]["progress"].(float64))
		require.GreaterOrEqual(t, counts(seen[i])[0], counts(seen[i-1])[0]) // the last batch may be empty
	}
	require.EqualValues(t, 100, f.get(t, id)["progress"])
}

// serveImports runs h as the only import handler on the test's Redis,
// as a worker would: the upload's task is already queued there.
func serveImports(t *testing.T, f importFixture, h *jobs.ImportContacts) {
	t.Helper()
	srv := asynq.NewServer(f.app.RedisOpt, asynq.Config{Concurrency: 1, Queues: map[string]int{jobs.QueueBulk: 1},
		TaskCheckInterval: 20 * time.Millisecond, LogLevel: asynq.FatalLevel})
	mux := asynq.NewServeMux()
	mux.Handle(jobs.TypeImportContacts, h)
	require.NoError(t, srv.Start(mux))
	t.Cleanup(srv.Shutdown)
}

// taskResult waits for the import's task to reach state and returns its
// result as asynqmon shows it.
func taskResult(t *testing.T, f importFixture, id uuid.UUID, state asynq.TaskState) jobs.ImportResult {
	t.Helper()
	var info *asynq.TaskInfo
	f.app.Eventually(30*time.Second, "task "+state.String(), func() bool {
		var err error
		info, err = f.app.Inspector.GetTaskInfo(jobs.QueueBulk, "import:"+id.String())
		return err == nil && info.State == state
	})
	var r jobs.ImportResult
	require.NoError(t, json.Unmarshal(info.Result, &r))
	return r
}

// A cancelled or failed import's task result says so (not the "running"
// of its last batch).
func TestImportTaskResultAfterCancelAndFailure(t *testing.T) {
	f := setupImport(t)
	id := f.upload(t, bigFile(20), "")
	h := jobs.NewImportContacts(f.app.Deps)
	h.BatchRows = 5
	h.AfterBatch = func(batch int32) error {
		if batch == 1 {
			res := f.app.Do("DELETE", "/v1/imports/"+id.String(), f.tenant.Key, nil)
			require.Equal(t, http.StatusOK, res.Status, string(res.Body))
		}
		return nil
	}
	serveImports(t, f, h)
	require.Equal(t, jobs.ImportResult{Status: "cancelled", Progress: 99, Total: 5, Created: 5},
		taskResult(t, f, id, asynq.TaskStateCompleted))

	failed := f.upload(t, readFixture(t, "no_identity.csv"), "")
	r := taskResult(t, f, failed, asynq.TaskStateArchived)
	require.Equal(t, "failed", r.Status)
	require.Contains(t, r.Error, "no phone or email column was recognised")
}

// crashRestart does to the database what a PostgreSQL crash and restart
// does to it: every unlogged table comes back empty.
func crashRestart(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	owner := testenv.Owner(t)
	rows, err := owner.Query(ctx, `SELECT quote_ident(relname) FROM pg_class
		WHERE relkind = 'r' AND relpersistence = 'u' AND relnamespace = 'public'::regnamespace`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	for _, table := range tables {
		_, err := owner.Exec(ctx, "TRUNCATE "+table)
		require.NoError(t, err)
	}
}

// A dry run whose worker died and whose database crashed and restarted
// resumes with what it had counted: a row repeating one counted before
// the crash is still a duplicate, so the counts equal the real import's.
func TestImportDryRunResumesAfterADatabaseCrash(t *testing.T) {
	f := setupImport(t)
	var b bytes.Buffer
	b.WriteString("Name,Phone\n")
	for i := 0; i < 15; i++ {
		fmt.Fprintf(&b, "Person %d,312555%04d\n", i, 2000+i%10) // the last 5 repeat the first 5
	}
	id := f.upload(t, b.Bytes(), "?dry_run=true")
	killed := errors.New("worker killed")
	h := jobs.NewImportContacts(f.app.Deps)
	h.BatchRows = 5
	h.AfterBatch = func(batch int32) error {
		if batch == 2 {
			return killed
		}
		return nil
	}
	require.ErrorIs(t, f.run(t, id, h), killed)
	require.Equal(t, [5]int{10, 10, 0, 0, 0}, counts(f.get(t, id)))
	crashRestart(t)

	h.AfterBatch = nil
	f.app.Clock.Advance(3 * time.Minute)
	require.NoError(t, f.run(t, id, h))
	got := f.get(t, id)
	require.Equal(t, "succeeded", got["status"])
	require.Equal(t, [5]int{15, 10, 0, 0, 5}, counts(got))
	require.Empty(t, f.contacts(t))
}

// The dedupe rule: a row's key is its external_id, else its phone, else
// its email; rows with the same key are one client, rows with different
// keys never merge (whatever else they share); a key matches the contacts
// the import did not create (external_id: that contact; phone or email:
// the oldest with it). The same file cut into batches anywhere gives the
// same contacts and counts.
func TestImportDedupeDoesNotDependOnBatchBoundaries(t *testing.T) {
	body := []byte("ID,Name,Phone,Email,Notes\n" +
		"x1,Ann,3125550101,ann@example.com,first\n" + // 2
		"x2,Ann's Husband,3125550101,,\n" + // 3: same phone, other ID: another client
		",Walk-in,3125550101,,walked in\n" + // 4: no ID: keyed by phone; the ID'd rows are other keys
		"x1,Ann Smith,,ann@example.com,\n" + // 5: x1 again: merged, blanks keep
		",Walk-in Again,3125550101,walkin@example.com,\n" + // 6: phone key again
		",Email Only,,WALKIN@example.com,\n" + // 7: email key; the phone row above is another key
		",Old Friend,3125550199,,\n" + // 8: matches the existing contact by phone
		"x9,Friend's ID,3125550199,,\n") // 9: an ID: never merged by phone
	type result struct {
		counts   [5]int
		contacts []string
	}
	var results []result
	for _, batch := range []int{1, 2, 3, 4, 100} {
		f := setupImport(t)
		res := f.app.Do("PUT", "/v1/contacts/crm-9", f.tenant.Key, map[string]any{"name": "Friend", "phone": "+13125550199"})
		require.Less(t, res.Status, 300, string(res.Body))
		h := jobs.NewImportContacts(f.app.Deps)
		h.BatchRows = batch
		dry := f.upload(t, body, "?dry_run=true")
		require.NoError(t, f.run(t, dry, h))
		id := f.upload(t, body, "")
		require.NoError(t, f.run(t, id, h))
		got := result{counts: counts(f.get(t, id))}
		require.Equal(t, got.counts, counts(f.get(t, dry)), "the dry run, batches of %d rows", batch)
		require.Equal(t, got.counts[0], got.counts[1]+got.counts[2]+got.counts[3]+got.counts[4], "counts add up")
		for _, c := range f.contacts(t) {
			ext := c.ExternalID
			if strings.HasPrefix(ext, "import-") {
				ext = "import-…"
			}
			got.contacts = append(got.contacts, fmt.Sprintf("%s|%s|%s|%s|%s", ext, c.Name, str(c.Phone), str(c.Email), str(c.Notes)))
		}
		results = append(results, got)
	}
	require.Equal(t, result{counts: [5]int{8, 5, 1, 0, 2}, contacts: []string{
		"x1|Ann Smith|+13125550101|ann@example.com|first",
		"x2|Ann's Husband|+13125550101||",
		"import-…|Email Only||WALKIN@example.com|",
		"x9|Friend's ID|+13125550199||",
		"crm-9|Old Friend|+13125550199||",
		"import-…|Walk-in Again|+13125550101|walkin@example.com|walked in",
	}}, results[0])
	for i, r := range results[1:] {
		require.Equal(t, results[0], r, "batches of %d rows", []int{2, 3, 4, 100}[i])
	}
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// A contact created by someone else while a batch merges (a PUT of the
// same external_id, committed after the merge looked for it) is not
// dropped: the batch is merged again, its row updates that contact, and
// the counts add up (rows_total = created + updated + rejected +
// duplicates).
func TestImportConcurrentContactWithTheSameExternalID(t *testing.T) {
	f := setupImport(t)
	id := f.upload(t, []byte("ID,Name,Phone\nr1,Rae,3125550131\nr2,Sol,3125550132\n"), "")
	ctx := context.Background()
	other := testenv.Owner(t)
	watcher := testenv.Owner(t)
	h := jobs.NewImportContacts(f.app.Deps)
	raced := make(chan error, 1)
	started := false
	h.BeforeMerge = func() {
		if started {
			return
		}
		started = true
		// Another writer holds r2, not yet committed: the merge cannot see
		// it and its insert waits for it; once it waits, r2 commits.
		tx, err := other.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, `INSERT INTO contacts (tenant_id, external_id, name, created_at, updated_at)
			VALUES ($1, 'r2', 'Put', now(), now())`, f.tenant.ID)
		require.NoError(t, err)
		go func() {
			for {
				var waiting bool
				err := watcher.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
					WHERE wait_event_type = 'Lock' AND query LIKE '%ImportMergeBatch%')`).Scan(&waiting)
				if err != nil || waiting {
					if err == nil {
						err = tx.Commit(ctx)
					}
					raced <- err
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	require.NoError(t, f.run(t, id, h))
	require.NoError(t, <-raced)
	got := f.get(t, id)
	require.Equal(t, "succeeded", got["status"])
	require.Equal(t, [5]int{2, 1, 1, 0, 0}, counts(got))
	names := map[string]string{}
	for _, c := range f.contacts(t) {
		names[c.ExternalID] = c.Name
	}
	require.Equal(t, map[string]string{"r1": "Rae", "r2": "Sol"}, names)
}
