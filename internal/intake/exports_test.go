package intake_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/testapp"
	"github.com/errandhq/errand/internal/testenv"
)

type fixture struct {
	app    *testapp.App
	tenant testapp.Tenant
}

func setup(t *testing.T) fixture {
	t.Helper()
	app := testapp.New(t)
	f := fixture{app: app, tenant: app.NewTenant("Acme Repair")}
	resp := app.Do("PUT", "/v1/contacts/cust-1", f.tenant.Key,
		map[string]any{"name": "=1+2 Pat Doe", "phone": "(312) 555-0142", "email": "pat@example.com"})
	require.Equal(t, http.StatusCreated, resp.Status, string(resp.Body))
	return f
}

func (f fixture) exportNow(t *testing.T, body map[string]any) map[string]any {
	t.Helper()
	resp := f.app.Do("POST", "/v1/exports", f.tenant.Key, body)
	require.Equal(t, http.StatusAccepted, resp.Status, string(resp.Body))
	id := resp.JSON()["id"].(string)
	require.Equal(t, "queued", resp.JSON()["status"])
	var got map[string]any
	f.app.Eventually(10*time.Second, "export succeeded", func() bool {
		got = f.app.Do("GET", "/v1/exports/"+id, f.tenant.Key, nil).JSON()
		return got["status"] == "succeeded"
	})
	return got
}

// fetch downloads a URL without any credentials.
func fetch(t *testing.T, link string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(link)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, b
}

func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	require.NoError(t, json.Unmarshal(body, &e), string(body))
	return e.Error.Code
}

func TestExportEndToEnd(t *testing.T) {
	f := setup(t)
	f.app.StartWorker(2)
	got := f.exportNow(t, map[string]any{"scope": "tenant", "format": "csv"})
	require.EqualValues(t, 100, got["progress"])
	link, _ := got["download_url"].(string)
	require.True(t, strings.HasPrefix(link, f.app.URL+"/v1/exports/"+got["id"].(string)+"/download?"), link)
	exp, err := time.Parse(time.RFC3339, got["expires_at"].(string))
	require.NoError(t, err)
	require.Equal(t, f.app.Clock.Now().Add(15*time.Minute).Truncate(time.Second), exp, "the link lives 15 minutes")
	require.NotEmpty(t, got["file_expires_at"])

	status, h, body := fetch(t, link)
	require.Equal(t, http.StatusOK, status, string(body))
	require.Equal(t, "application/zip", h.Get("Content-Type"))
	require.Contains(t, h.Get("Content-Disposition"), "attachment")
	sum := sha256.Sum256(body)
	require.Equal(t, got["sha256"], hex.EncodeToString(sum[:]))
	require.EqualValues(t, got["bytes"], len(body))
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	require.NoError(t, err)
	names := map[string]bool{}
	for _, zf := range zr.File {
		names[zf.Name] = true
	}
	require.True(t, names["manifest.json"] && names["README.txt"] && names["contacts.csv"])

	// The download is in the tenant's security log.
	resp := f.app.Do("GET", "/admin/v1/security-events?kind=export_downloaded&tenant_id="+f.tenant.ID.String(), f.app.AdminToken, nil)
	require.Equal(t, http.StatusOK, resp.Status)
	require.Len(t, resp.JSON()["events"], 1)
}

// A link works for its export until it expires; a changed one never does;
// each GET issues a fresh one.
func TestDownloadLinks(t *testing.T) {
	f := setup(t)
	f.app.StartWorker(2)
	a := f.exportNow(t, map[string]any{"scope": "tenant", "format": "csv"})
	b := f.exportNow(t, map[string]any{"scope": "contact", "contact_id": "cust-1", "format": "json"})
	linkA := a["download_url"].(string)
	u, err := url.Parse(linkA)
	require.NoError(t, err)

	tamper := func(mutate func(u *url.URL, q url.Values)) string {
		c := *u
		q := c.Query()
		mutate(&c, q)
		c.RawQuery = q.Encode()
		return c.String()
	}
	forged := map[string]string{
		"another export's path": tamper(func(u *url.URL, _ url.Values) {
			u.Path = strings.Replace(u.Path, a["id"].(string), b["id"].(string), 1)
		}),
		"later expiry": tamper(func(_ *url.URL, q url.Values) { q.Set("expires", "4102444800") }),
		"flipped signature": tamper(func(_ *url.URL, q url.Values) {
			s := q.Get("signature")
			q.Set("signature", strings.ToUpper(s[:1])+s[1:]+"A")
		}),
		"no signature":     tamper(func(_ *url.URL, q url.Values) { q.Del("signature") }),
		"another tenant":   tamper(func(_ *url.URL, q url.Values) { q.Set("tenant", uuid.NewString()) }),
		"not an export id": tamper(func(u *url.URL, _ url.Values) { u.Path = "/v1/exports/nope/download" }),
	}
	for name, link := range forged {
		status, _, body := fetch(t, link)
		require.Equal(t, http.StatusForbidden, status, name)
		require.Equal(t, "download_link_invalid", errorCode(t, body), name)
	}

	status, _, _ := fetch(t, linkA)
	require.Equal(t, http.StatusOK, status, "the genuine link still works")
	f.app.Clock.Advance(15 * time.Minute)
	status, _, body := fetch(t, linkA)
	require.Equal(t, http.StatusForbidden, status)
	require.Equal(t, "download_link_expired", errorCode(t, body))

	fresh := f.app.Do("GET", "/v1/exports/"+a["id"].(string), f.tenant.Key, nil).JSON()["download_url"].(string)
	require.NotEqual(t, linkA, fresh, "re-issued on each GET")
	status, _, _ = fetch(t, fresh)
	require.Equal(t, http.StatusOK, status)
}

// Another tenant's export is unknown, exactly like one that does not exist.
func TestExportsAreTenantScoped(t *testing.T) {
	f := setup(t)
	other := f.app.NewTenant("Other Co")
	resp := f.app.Do("POST", "/v1/exports", f.tenant.Key, map[string]any{"scope": "tenant", "format": "csv"})
	require.Equal(t, http.StatusAccepted, resp.Status)
	id := resp.JSON()["id"].(string)

	theirs := f.app.Do("GET", "/v1/exports/"+id, other.Key, nil)
	unknown := f.app.Do("GET", "/v1/exports/"+uuid.NewString(), other.Key, nil)
	require.Equal(t, http.StatusNotFound, theirs.Status)
	require.Equal(t, unknown.Status, theirs.Status)
	require.Equal(t, unknown.JSON()["error"].(map[string]any)["message"], theirs.JSON()["error"].(map[string]any)["message"])
	require.Equal(t, http.StatusNotFound, f.app.Do("GET", "/v1/exports/not-a-uuid", f.tenant.Key, nil).Status)

	// Another tenant's contact cannot be exported either.
	resp = f.app.Do("POST", "/v1/exports", other.Key, map[string]any{"scope": "contact", "contact_id": "cust-1", "format": "csv"})
	require.Equal(t, http.StatusNotFound, resp.Status)
}

func TestExportRequestValidation(t *testing.T) {
	f := setup(t)
	cases := []struct {
		body  string
		field string
	}{
		{`{"scope": "everything", "format": "csv"}`, "scope"},
		{`{"scope": "tenant", "format": "xml"}`, "format"},
		{`{"scope": "tenant"}`, "format"},
		{`{"scope": "contact", "format": "csv"}`, "contact_id"},
		{`{"scope": "tenant", "contact_id": "cust-1", "format": "csv"}`, "contact_id"},
		{`{"scope": "tenant", "format": "csv", "password": "x"}`, "password"},
	}
	for _, c := range cases {
		resp := f.app.Do("POST", "/v1/exports", f.tenant.Key, c.body)
		require.Equal(t, http.StatusUnprocessableEntity, resp.Status, c.body)
		details := resp.JSON()["error"].(map[string]any)["details"].(map[string]any)
		require.Contains(t, details, c.field, c.body)
	}
	resp := f.app.Do("POST", "/v1/exports", f.tenant.Key, `{"scope": "contact", "contact_id": "nobody", "format": "csv"}`)
	require.Equal(t, http.StatusNotFound, resp.Status)
	require.Equal(t, http.StatusUnauthorized, f.app.Do("POST", "/v1/exports", "", `{"scope":"tenant","format":"csv"}`).Status)
}

func TestExportIdempotencyAndLimit(t *testing.T) {
	f := setup(t)
	body := map[string]any{"scope": "tenant", "format": "json"}
	first := f.app.Do("POST", "/v1/exports", f.tenant.Key, body, "Idempotency-Key", "k1")
	again := f.app.Do("POST", "/v1/exports", f.tenant.Key, body, "Idempotency-Key", "k1")
	require.Equal(t, first.JSON()["id"], again.JSON()["id"], "the same key does no new work")
	// No worker runs: these stay queued.
	f.app.Do("POST", "/v1/exports", f.tenant.Key, body)
	f.app.Do("POST", "/v1/exports", f.tenant.Key, body)
	resp := f.app.Do("POST", "/v1/exports", f.tenant.Key, body)
	require.Equal(t, http.StatusConflict, resp.Status)
	require.Equal(t, "too_many_exports", resp.ErrorCode())
}

// A cancelled account can still export everything (and only that).
func TestCancelledTenantCanExport(t *testing.T) {
	f := setup(t)
	_, err := testenv.Owner(t).Exec(context.Background(), "UPDATE tenants SET status = 'cancelled' WHERE id = $1", f.tenant.ID)
	require.NoError(t, err)
	f.app.StartWorker(2)
	got := f.exportNow(t, map[string]any{"scope": "tenant", "format": "csv"})
	status, _, _ := fetch(t, got["download_url"].(string))
	require.Equal(t, http.StatusOK, status)
	resp := f.app.Do("POST", "/v1/privacy-requests", f.tenant.Key, map[string]any{"type": "correction", "subject": "tenant"})
	require.Equal(t, http.StatusForbidden, resp.Status)
	require.Equal(t, "tenant_cancelled", resp.ErrorCode())
}

// An expired export says so, and its file cannot be fetched.
func TestExpiredExport(t *testing.T) {
	f := setup(t)
	f.app.StartWorker(2)
	got := f.exportNow(t, map[string]any{"scope": "tenant", "format": "csv"})
	f.app.Clock.Advance(7 * 24 * time.Hour)
	f.app.Eventually(10*time.Second, "the sweep ran", func() bool {
		f.app.Scheduler().Enqueue(context.Background())
		after := f.app.Do("GET", "/v1/exports/"+got["id"].(string), f.tenant.Key, nil).JSON()
		return after["status"] == "expired" && after["download_url"] == nil
	})
	var key *string
	require.NoError(t, f.app.Store.InTenant(context.Background(), f.tenant.ID, func(q *db.Queries) error {
		e, err := q.ExportGet(context.Background(), db.ExportGetParams{TenantID: f.tenant.ID, ID: f.app.MustUUID(got["id"])})
		key = e.FileKey
		return err
	}))
	require.Nil(t, key)
}

// "If you cancel your subscription, you can export everything": a tenant
// export carries the locations, appointments, verification records (never
// their codes), credentials with their documents as uploaded, and the
// deletion history, each in its own file.
func TestTenantExportHoldsEverything(t *testing.T) {
	f := setup(t)
	f.app.StartWorker(2)
	key := f.tenant.Key
	require.Equal(t, 201, f.app.Do("PUT", "/v1/locations/main", key, map[string]any{"name": "Main shop", "timezone": "America/Chicago"}).Status)
	require.Equal(t, 201, f.app.Do("PUT", "/v1/appointments/apt-1", key, map[string]any{"contact_id": "cust-1",
		"location_id": "main", "starts_at": f.app.Clock.Now().Add(72 * time.Hour).Format(time.RFC3339),
		"technician": "Sam Okafor"}).Status)
	require.Equal(t, 202, f.app.Do("POST", "/v1/verifications", key, map[string]any{"channel": "sms", "to": "+13125550199"}).Status)
	v := vfix{app: f.app, tenant: f.tenant}
	lic := v.licence(t)
	cred := v.checked(t, "pro-7", lic)

	got := f.exportNow(t, map[string]any{"scope": "tenant", "format": "csv"})
	_, _, body := fetch(t, got["download_url"].(string))
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	require.NoError(t, err)
	files := map[string][]byte{}
	for _, zf := range zr.File {
		rc, err := zf.Open()
		require.NoError(t, err)
		files[zf.Name], err = io.ReadAll(rc)
		require.NoError(t, err)
		rc.Close()
	}
	require.Contains(t, string(files["locations.csv"]), "Main shop")
	require.Contains(t, string(files["appointments.csv"]), "apt-1,cust-1,main,")
	require.Contains(t, string(files["appointments.csv"]), "Sam Okafor")
	require.Contains(t, string(files["verifications.csv"]), "+13125550199")
	require.NotContains(t, string(files["verifications.csv"]), "code_hash")
	require.NotContains(t, string(files["verifications.csv"]), "nonce")
	require.Contains(t, string(files["credentials.csv"]), cred["id"].(string))
	require.Contains(t, string(files["deletions.csv"]), "id,scope")
	doc := "documents/credentials/pro-7-drivers_license-" + cred["id"].(string) + ".pdf"
	require.Equal(t, lic.File, files[doc], "the document as uploaded (decrypted), in %v", keys(files))
}

func keys(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
