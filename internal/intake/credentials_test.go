package intake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/filestore"
	"github.com/errandhq/errand/internal/testapp"
	"github.com/errandhq/errand/internal/testenv"
	"github.com/errandhq/errand/jobs"
)

// upload is a credential upload as an app server would send it.
type upload struct {
	Kind, Number, Issuer, ExpiresOn string
	File                            []byte
	Filename                        string
	Declared                        string // the file part's Content-Type
	Extra                           map[string]string
	NoFile                          bool
}

func document(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "credential", "testdata", name))
	require.NoError(t, err)
	return b
}

// localDate is the fake clock's date in the test tenants' zone, plus days.
func localDate(app *testapp.App, days int) string {
	loc, _ := time.LoadLocation("America/Chicago")
	return app.Clock.Now().In(loc).AddDate(0, 0, days).Format(time.DateOnly)
}

// licence is a plausible Texas driver's licence, valid two years.
func (f vfix) licence(t *testing.T) upload {
	return upload{Kind: "drivers_license", Number: "1234-5679", Issuer: "TX", ExpiresOn: localDate(f.app, 730),
		File: document(t, "insurance.pdf"), Filename: "licence.pdf"}
}

func (u upload) body(t *testing.T) (*bytes.Buffer, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for name, v := range map[string]string{"kind": u.Kind, "number": u.Number, "issuer": u.Issuer, "expires_on": u.ExpiresOn} {
		if v != "" {
			require.NoError(t, w.WriteField(name, v))
		}
	}
	for name, v := range u.Extra {
		require.NoError(t, w.WriteField(name, v))
	}
	if !u.NoFile {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="file"; filename="`+u.Filename+`"`)
		declared := u.Declared
		if declared == "" {
			declared = "application/octet-stream"
		}
		h.Set("Content-Type", declared)
		part, err := w.CreatePart(h)
		require.NoError(t, err)
		_, err = part.Write(u.File)
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	return &b, w.FormDataContentType()
}

func (f vfix) upload(t *testing.T, key, pro string, u upload, headers ...string) testapp.Response {
	t.Helper()
	body, ct := u.body(t)
	req, err := http.NewRequest("POST", f.app.URL+"/v1/pros/"+pro+"/credentials", body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer "+key)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return testapp.Response{Status: resp.StatusCode, Header: resp.Header, Body: out}
}

// credentials lists a pro's credentials, by ID.
func (f vfix) credentials(t *testing.T, pro string) map[string]map[string]any {
	t.Helper()
	res := f.app.Do("GET", "/v1/pros/"+pro+"/credentials", f.tenant.Key, nil)
	require.Equal(t, 200, res.Status, string(res.Body))
	out := map[string]map[string]any{}
	for _, c := range res.JSON()["credentials"].([]any) {
		m := c.(map[string]any)
		out[m["id"].(string)] = m
	}
	return out
}

// checked uploads and waits for the checks' verdict.
func (f vfix) checked(t *testing.T, pro string, u upload) map[string]any {
	t.Helper()
	res := f.upload(t, f.tenant.Key, pro, u)
	require.Equal(t, 202, res.Status, string(res.Body))
	id := res.JSON()["id"].(string)
	var c map[string]any
	f.app.Eventually(10*time.Second, "the credential to be checked", func() bool {
		c = f.credentials(t, pro)[id]
		return c["status"] != "pending"
	})
	return c
}

func reasons(c map[string]any) map[string]string {
	out := map[string]string{}
	for _, r := range c["reasons"].([]any) {
		m := r.(map[string]any)
		out[m["check"].(string)] = m["outcome"].(string) + ": " + m["reason"].(string)
	}
	return out
}

func TestCredentialUploadIsCheckedAndVerified(t *testing.T) {
	f := vsetup(t)
	ctx := context.Background()
	u := f.licence(t)
	res := f.upload(t, f.tenant.Key, "pro-1", u)
	require.Equal(t, 202, res.Status, string(res.Body))
	created := res.JSON()
	require.Equal(t, "pending", created["status"])
	id := uuid.MustParse(created["id"].(string))

	job := jobs.NewCredentialVerifyJob(f.tenant.ID, id)
	info, err := f.app.Inspector.GetTaskInfo(jobs.QueueBulk, job.ID)
	require.NoError(t, err)
	var payload map[string]any
	require.NoError(t, json.Unmarshal(info.Payload, &payload))
	require.Equal(t, map[string]any{"tenant_id": f.tenant.ID.String(), "credential_id": id.String()}, payload)

	key := "tenants/" + f.tenant.ID.String() + "/credentials/" + id.String()
	raw, err := os.ReadFile(filepath.Join(f.app.FilesDir, filepath.FromSlash(key)))
	require.NoError(t, err)
	require.False(t, bytes.Contains(raw, []byte("%PDF")), "encrypted at rest")
	require.False(t, bytes.Contains(raw, []byte("Certificate of Insurance")))
	r, err := f.app.Files.Open(ctx, key)
	require.NoError(t, err)
	plain, err := io.ReadAll(r)
	r.Close()
	require.NoError(t, err)
	require.Equal(t, u.File, plain)

	f.app.StartWorker(2)
	var c map[string]any
	f.app.Eventually(10*time.Second, "checked", func() bool {
		c = f.credentials(t, "pro-1")[id.String()]
		return c["status"] != "pending"
	})
	require.Equal(t, "verified", c["status"], c)
	got := reasons(c)
	require.Equal(t, "pass: readable PDF", got["document"])
	require.Equal(t, "pass: valid until "+u.ExpiresOn+" (730 days from now)", got["expiry"])
	require.Equal(t, "pass: the number matches the format of TX driver's licenses", got["number_format"])
	require.Contains(t, got["duplicates"], "pass: ")
	require.Equal(t, "••••5679", c["number"], "tenants see the number masked")
	doc := c["document"].(map[string]any)
	require.Equal(t, "application/pdf", doc["type"])
	require.Len(t, doc["sha256"], 64)
	require.NotNil(t, c["checked_at"])

	// Running the task again (a duplicate delivery) changes nothing.
	h := jobs.NewCredentialVerify(f.app.Deps)
	require.NoError(t, h.ProcessTask(ctx, asynq.NewTask(job.Type, job.Payload)))
	var attempts int32
	require.NoError(t, testenv.Owner(t).QueryRow(ctx, "SELECT attempts FROM credentials WHERE id = $1", id).Scan(&attempts))
	require.EqualValues(t, 1, attempts)
	require.NotContains(t, f.app.Logs.String(), "12345679", "numbers stay out of the logs")
}

func TestUploadIsJudgedByContentNotName(t *testing.T) {
	f := vsetup(t)
	png, pdf := document(t, "license.png"), document(t, "insurance.pdf")
	cases := []struct {
		name     string
		file     []byte
		filename string
		declared string
		status   int
		message  string
	}{
		{"html named .pdf", document(t, "not-a-pdf.pdf"), "licence.pdf", "application/pdf", 415, "not a PDF, JPEG or PNG"},
		{"png named .pdf", png, "licence.pdf", "", 422, "name ends in .pdf but its content is a PNG image"},
		{"pdf named .exe", pdf, "licence.exe", "", 422, "its content is a PDF"},
		{"png declared as a pdf", png, "licence", "application/pdf", 422, "declared type does not match"},
		{"empty file", nil, "licence.pdf", "", 422, "empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := f.licence(t)
			u.File, u.Filename, u.Declared = c.file, c.filename, c.declared
			res := f.upload(t, f.tenant.Key, "pro-1", u)
			require.Equal(t, c.status, res.Status, string(res.Body))
			require.Contains(t, string(res.Body), c.message)
		})
	}
	u := f.licence(t)
	u.File, u.Filename, u.Declared = png, "scan.PNG", "image/png"
	require.Equal(t, 202, f.upload(t, f.tenant.Key, "pro-1", u).Status, "an honest PNG is fine")

	res := f.app.Do("POST", "/v1/pros/pro-1/credentials", f.tenant.Key, map[string]string{"kind": "insurance"})
	require.Equal(t, 415, res.Status, "JSON is not an upload")
	res = f.upload(t, f.tenant.Key, "pro-1", upload{NoFile: true, Extra: map[string]string{"colour": "red"}})
	require.Equal(t, 422, res.Status)
	details := res.JSON()["error"].(map[string]any)["details"].(map[string]any)
	for _, field := range []string{"kind", "number", "issuer", "expires_on", "file", "colour"} {
		require.Contains(t, details, field)
	}
	bad := f.licence(t)
	bad.Kind, bad.ExpiresOn, bad.Number = "passport", "31/03/2027", "<script>"
	res = f.upload(t, f.tenant.Key, "pro-1", bad)
	require.Equal(t, 422, res.Status)
	details = res.JSON()["error"].(map[string]any)["details"].(map[string]any)
	require.Len(t, details, 3, details)

	require.Equal(t, 1, storedFiles(t, f.app), "refused uploads leave no file behind")
	var n int
	require.NoError(t, testenv.Owner(t).QueryRow(context.Background(), "SELECT count(*) FROM credentials").Scan(&n))
	require.Equal(t, 1, n)
}

func storedFiles(t *testing.T, app *testapp.App) int {
	t.Helper()
	n := 0
	require.NoError(t, filepath.WalkDir(app.FilesDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	}))
	return n
}

func TestUploadOverTheLimitIsRefused(t *testing.T) {
	f := vsetup(t, func(o *testapp.Options) { o.Verify.CredentialMaxBytes = 2048 })
	u := f.licence(t)
	u.File, u.Filename = document(t, "license.jpg"), "licence.jpg" // 3808 bytes
	res := f.upload(t, f.tenant.Key, "pro-1", u)
	require.Equal(t, 413, res.Status, string(res.Body))
	require.Equal(t, "payload_too_large", res.ErrorCode())
	require.Zero(t, storedFiles(t, f.app))

	u.File = append(document(t, "insurance.pdf"), bytes.Repeat([]byte(" "), 200_000)...)
	u.Filename = "big.pdf"
	res = f.upload(t, f.tenant.Key, "pro-1", u)
	require.Equal(t, 413, res.Status, "refused as soon as the limit is passed")
	require.Zero(t, storedFiles(t, f.app))
}

func TestChecksRejectOrAskForReview(t *testing.T) {
	f := vsetup(t)
	f.app.StartWorker(2)
	cases := []struct {
		name   string
		edit   func(*upload)
		status string
		check  string
		reason string
	}{
		{"cut-off PDF", func(u *upload) { u.File = document(t, "truncated.pdf") }, "rejected", "document",
			"fail: the PDF is incomplete: it has no end-of-file marker"},
		{"too small to read", func(u *upload) { u.File, u.Filename = document(t, "tiny.png"), "x.png" }, "rejected", "document",
			"fail: the image is too small to read (12×12 pixels)"},
		{"expired", func(u *upload) { u.ExpiresOn = localDate(f.app, -3) }, "rejected", "expiry",
			"fail: expired on " + localDate(f.app, -3)},
		{"implausible number", func(u *upload) { u.Number = "A1234567" }, "needs_review", "number_format",
			"review: the number does not match any format of TX driver's licenses"},
		{"unknown issuer", func(u *upload) { u.Issuer = "Ontario" }, "needs_review", "number_format",
			"review: the issuer is not a US state"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := f.licence(t)
			u.Number = "7000000" + string(rune('1'+i)) // distinct, so no duplicate findings
			c.edit(&u)
			got := f.checked(t, "pro-"+c.name, u)
			require.Equal(t, c.status, got["status"], got)
			require.Contains(t, reasons(got)[c.check], c.reason)
		})
	}
}

func TestDuplicateNumberOrDocumentNeedsReview(t *testing.T) {
	f := vsetup(t)
	f.app.StartWorker(2)
	first := f.licence(t)
	require.Equal(t, "verified", f.checked(t, "pro-1", first)["status"])

	renewal := f.licence(t)
	renewal.File, renewal.Filename = document(t, "license.png"), "renewal.png"
	require.Equal(t, "verified", f.checked(t, "pro-1", renewal)["status"], "the same pro renewing is no duplicate")

	sameNumber := f.licence(t)
	sameNumber.Number = "12 345 679"
	sameNumber.File, sameNumber.Filename = document(t, "license.jpg"), "mine.jpg"
	got := f.checked(t, "pro-2", sameNumber)
	require.Equal(t, "needs_review", got["status"])
	require.Equal(t, `review: the same driver's license number is on a credential of pro "pro-1" (possible fraud)`,
		reasons(got)["duplicates"])

	sameDoc := f.licence(t)
	sameDoc.Kind, sameDoc.Number, sameDoc.Issuer = "insurance", "POL-99887766", "State Farm"
	got = f.checked(t, "pro-3", sameDoc)
	require.Equal(t, "needs_review", got["status"])
	require.Contains(t, reasons(got)["duplicates"], `the very same document was uploaded for pro "pro-1"`)

	other := f.app.NewTenantIn("Other Business", "America/Chicago")
	f2 := vfix{app: f.app, tenant: other}
	require.Equal(t, "verified", f2.checked(t, "pro-9", f.licence(t))["status"], "another tenant's pros are not compared")
}

func TestCredentialsAreTenantScoped(t *testing.T) {
	f := vsetup(t)
	require.Equal(t, 202, f.upload(t, f.tenant.Key, "pro-1", f.licence(t)).Status)
	other := f.app.NewTenantIn("Other Business", "America/Chicago")
	require.Equal(t, 404, f.app.Do("GET", "/v1/pros/pro-1/credentials", other.Key, nil).Status)
	require.Equal(t, 404, f.app.Do("GET", "/v1/pros/nobody/credentials", f.tenant.Key, nil).Status)
}

// A professional asks to be deleted (seed 000): their documents leave the
// file store and their credentials, with the numbers on them, the
// database; another professional and another tenant's are untouched, and
// another tenant cannot erase them.
func TestProErasureLeavesNoDocumentOrNumber(t *testing.T) {
	f := vsetup(t)
	f.app.StartWorker(2)
	require.Equal(t, "verified", f.checked(t, "pro-1", f.licence(t))["status"])
	second := f.licence(t)
	second.Kind, second.Number, second.Issuer = "insurance", "POL-55512345", "State Farm"
	second.File, second.Filename = document(t, "license.png"), "policy.png"
	f.checked(t, "pro-1", second)
	kept := f.licence(t)
	kept.Number, kept.File, kept.Filename = "7654-3210", document(t, "license.jpg"), "other.jpg"
	f.checked(t, "pro-2", kept)
	require.Equal(t, 3, storedFiles(t, f.app))

	other := f.app.NewTenantIn("Other Business", "America/Chicago")
	requireError(t, f.app.Do("DELETE", "/v1/pros/pro-1", other.Key, nil), 404, "not_found")
	requireError(t, f.app.Do("DELETE", "/v1/pros/nobody", f.tenant.Key, nil), 404, "not_found")

	resp := f.app.Do("DELETE", "/v1/pros/pro-1", f.tenant.Key, nil)
	require.Equalf(t, 200, resp.Status, "body: %s", resp.Body)
	require.EqualValues(t, 2, resp.JSON()["credentials_deleted"])
	require.Equal(t, 1, storedFiles(t, f.app), "only the other professional's document is left")
	requireError(t, f.app.Do("GET", "/v1/pros/pro-1/credentials", f.tenant.Key, nil), 404, "not_found")
	owner := testenv.Owner(t)
	for _, needle := range []string{"12345679", "1234-5679", "POL-55512345", "POL55512345", "pro-1"} {
		var n int
		require.NoError(t, owner.QueryRow(context.Background(), `SELECT count(*) FROM credentials c JOIN pros p ON p.id = c.pro_id
			WHERE c.number = $1 OR c.number_norm = $1 OR p.external_id = $1`, needle).Scan(&n))
		require.Zerof(t, n, "%s is still stored", needle)
	}
	require.Len(t, f.credentials(t, "pro-2"), 1)
	// Erasing again finds nothing; uploading again starts afresh.
	requireError(t, f.app.Do("DELETE", "/v1/pros/pro-1", f.tenant.Key, nil), 404, "not_found")
	require.Equal(t, 202, f.upload(t, f.tenant.Key, "pro-1", f.licence(t)).Status)
}

// Losing Redis loses no credential check: the dispatcher re-enqueues
// pending rows from PostgreSQL.
func TestCredentialCheckSurvivesRedisLoss(t *testing.T) {
	f := vsetup(t)
	ctx := context.Background()
	_, err := f.app.Dispatcher.Scan(ctx) // sets the epoch
	require.NoError(t, err)
	res := f.upload(t, f.tenant.Key, "pro-1", f.licence(t))
	require.Equal(t, 202, res.Status)
	id := res.JSON()["id"].(string)
	require.NoError(t, f.app.Redis.FlushDB(ctx).Err())
	scan, err := f.app.Dispatcher.Scan(ctx)
	require.NoError(t, err)
	require.True(t, scan.RedisLost)
	require.EqualValues(t, 1, scan.Forgotten)
	require.Equal(t, 1, scan.Enqueued)
	f.app.StartWorker(2)
	f.app.Eventually(10*time.Second, "checked", func() bool { return f.credentials(t, "pro-1")[id]["status"] == "verified" })
}

type brokenFiles struct{ filestore.Store }

func (brokenFiles) Open(context.Context, string) (io.ReadCloser, error) {
	return nil, errors.New("file store unreachable")
}

// A check that cannot run is retried (the row says why and when); when
// asynq gives up, a person looks.
func TestCredentialChecksRetryThenGoToAPerson(t *testing.T) {
	f := vsetup(t)
	ctx := context.Background()
	res := f.upload(t, f.tenant.Key, "pro-1", f.licence(t))
	id := uuid.MustParse(res.JSON()["id"].(string))
	job := jobs.NewCredentialVerifyJob(f.tenant.ID, id)
	deps := f.app.Deps
	deps.Files = brokenFiles{f.app.Files}
	h := jobs.NewCredentialVerify(deps)
	err := h.ProcessTask(ctx, asynq.NewTask(job.Type, job.Payload))
	require.Error(t, err)
	require.False(t, errors.Is(err, asynq.SkipRetry))
	var c db.Credential
	load := func() db.Credential {
		require.NoError(t, f.app.Store.InTenant(ctx, f.tenant.ID, func(q *db.Queries) (err error) {
			c, err = q.CredentialGet(ctx, db.CredentialGetParams{TenantID: f.tenant.ID, ID: id})
			return err
		}))
		return c
	}
	require.Equal(t, "pending", load().Status)
	require.Contains(t, *c.Error, "file store unreachable")
	require.True(t, c.DueAt.After(f.app.Clock.Now()), "the retry time is on the row")

	require.NoError(t, h.GiveUp(ctx, job.Payload, err))
	require.Equal(t, "needs_review", load().Status)
	got := f.credentials(t, "pro-1")[id.String()]
	require.Equal(t, "review: automatic checks could not run: check document: file store unreachable", reasons(got)["pipeline"])
}

// A retried upload carries a new multipart boundary (every client picks a
// random one per attempt): with the same Idempotency-Key it is the same
// request and gets the first response; another document is a conflict.
func TestRetriedUploadWithANewBoundaryIsReplayed(t *testing.T) {
	f := vsetup(t)
	doc := document(t, "insurance.pdf")
	post := func(boundary string, file []byte) testapp.Response {
		t.Helper()
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		require.NoError(t, w.SetBoundary(boundary))
		for _, kv := range [][2]string{{"kind", "insurance"}, {"number", "POL-778812"}, {"issuer", "Acme Mutual"},
			{"expires_on", localDate(f.app, 365)}} {
			require.NoError(t, w.WriteField(kv[0], kv[1]))
		}
		part, err := w.CreateFormFile("file", "policy.pdf")
		require.NoError(t, err)
		_, err = part.Write(file)
		require.NoError(t, err)
		require.NoError(t, w.Close())
		req, err := http.NewRequest("POST", f.app.URL+"/v1/pros/pro-7/credentials", &b)
		require.NoError(t, err)
		req.Header.Set("Content-Type", w.FormDataContentType())
		req.Header.Set("Authorization", "Bearer "+f.tenant.Key)
		req.Header.Set("Idempotency-Key", "upload-pro-7")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return testapp.Response{Status: resp.StatusCode, Header: resp.Header, Body: out}
	}
	first := post("------------------------1f2e3d4c5b6a7980", doc)
	require.Equal(t, http.StatusAccepted, first.Status, string(first.Body))
	again := post("------------------------0a9b8c7d6e5f4a3b", doc)
	requireSameResponse(t, first, again)
	require.Len(t, f.credentials(t, "pro-7"), 1, "the retry stored no second credential")

	other := append(bytes.Clone(doc[:len(doc)-6]), []byte("%%EOF\n")...)
	other[20] ^= 1
	requireError(t, post("------------------------5555", other), http.StatusConflict, "idempotency_key_reused")
}
