package intake_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func (f fixture) privacyRequest(t *testing.T, body map[string]any) map[string]any {
	t.Helper()
	resp := f.app.Do("POST", "/v1/privacy-requests", f.tenant.Key, body)
	require.Equal(t, http.StatusCreated, resp.Status, string(resp.Body))
	return resp.JSON()
}

func (f fixture) move(t *testing.T, id, status string, want int) map[string]any {
	t.Helper()
	resp := f.app.Do("POST", "/v1/privacy-requests/"+id+"/transitions", f.tenant.Key,
		map[string]any{"status": status, "note": "checked the requester's identity"})
	require.Equal(t, want, resp.Status, string(resp.Body))
	return resp.JSON()
}

func trail(r map[string]any) []string {
	var out []string
	for _, e := range r["events"].([]any) {
		ev := e.(map[string]any)
		from, _ := ev["from"].(string)
		out = append(out, ev["action"].(string)+":"+from+"→"+ev["to"].(string))
	}
	return out
}

func mustTime(t *testing.T, v any) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, v.(string))
	require.NoError(t, err)
	return tm
}

// An access request starts an export of that person at once and is
// completed when the export is ready; the trail shows every step.
func TestAccessRequestIsFulfilledByAnExport(t *testing.T) {
	f := setup(t)
	received := f.app.Clock.Now().Add(-48 * time.Hour).Truncate(time.Second)
	r := f.privacyRequest(t, map[string]any{"type": "access", "subject": "contact", "contact_id": "cust-1",
		"received_at": received.Format(time.RFC3339), "note": "emailed privacy@"})
	require.Equal(t, "in_progress", r["status"])
	require.Equal(t, "cust-1", r["contact_id"])
	require.Equal(t, received.AddDate(0, 0, 30), mustTime(t, r["due_at"]), "due 30 days after it was received")
	require.Equal(t, false, r["overdue"])
	exportID, _ := r["export_id"].(string)
	require.NotEmpty(t, exportID)

	f.app.StartWorker(2)
	var got map[string]any
	f.app.Eventually(10*time.Second, "request completed", func() bool {
		got = f.app.Do("GET", "/v1/privacy-requests/"+r["id"].(string), f.tenant.Key, nil).JSON()
		return got["status"] == "completed"
	})
	require.NotEmpty(t, got["closed_at"])
	require.Equal(t, []string{"received:→received", "export_started:received→in_progress",
		"export_succeeded:in_progress→completed"}, trail(got))
	ev := got["events"].([]any)
	require.Equal(t, "emailed privacy@", ev[0].(map[string]any)["note"])
	require.True(t, strings.HasPrefix(ev[0].(map[string]any)["actor"].(string), "api_key:"), "who: the key that recorded it")

	exp := f.app.Do("GET", "/v1/exports/"+exportID, f.tenant.Key, nil).JSON()
	require.Equal(t, "contact", exp["scope"])
	require.Equal(t, "cust-1", exp["contact_id"])
	require.Equal(t, r["id"], exp["privacy_request_id"])
	require.NotEmpty(t, exp["download_url"])
}

type fakeDeletions struct {
	mu    sync.Mutex
	calls []string
	fail  bool
	id    uuid.UUID
}

func (d *fakeDeletions) StartDeletion(_ context.Context, tenantID uuid.UUID, scope string, contactID *uuid.UUID, requestID uuid.UUID) (uuid.UUID, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, scope+":"+requestID.String())
	if contactID == nil && scope == "contact" {
		return uuid.Nil, errors.New("contact scope without a contact")
	}
	if d.fail {
		return uuid.Nil, errors.New("deletions are down")
	}
	return d.id, nil
}

// A deletion request waits for approval; approved, it starts a deletion
// when a starter is wired, and otherwise stays approved.
func TestDeletionRequestStartsADeletionOnceApproved(t *testing.T) {
	f := setup(t)
	r := f.privacyRequest(t, map[string]any{"type": "deletion", "subject": "contact", "contact_id": "cust-1"})
	require.Equal(t, "received", r["status"])
	id := r["id"].(string)

	// Without a starter: approved, awaiting fulfilment. (testapp wires the
	// real deletions service; this test is about the wiring itself.)
	f.app.Server.Deletions = nil
	got := f.move(t, id, "approved", http.StatusOK)
	require.Equal(t, "approved", got["status"])
	require.Nil(t, got["deletion_id"])

	// With a starter that fails: still approved, 503; approving again retries.
	d := &fakeDeletions{fail: true, id: uuid.New()}
	f.app.Server.Deletions = d
	resp := f.app.Do("POST", "/v1/privacy-requests/"+id+"/transitions", f.tenant.Key, map[string]any{"status": "approved"})
	require.Equal(t, http.StatusServiceUnavailable, resp.Status)
	d.fail = false
	got = f.move(t, id, "approved", http.StatusOK)
	require.Equal(t, "in_progress", got["status"])
	require.Equal(t, d.id.String(), got["deletion_id"])
	require.Equal(t, []string{"contact:" + id, "contact:" + id}, d.calls)
	require.Equal(t, []string{"received:→received", "status_changed:received→approved",
		"deletion_started:approved→in_progress"}, trail(got))

	got = f.move(t, id, "completed", http.StatusOK)
	require.Equal(t, "completed", got["status"])
	resp = f.app.Do("POST", "/v1/privacy-requests/"+id+"/transitions", f.tenant.Key, map[string]any{"status": "rejected"})
	require.Equal(t, http.StatusConflict, resp.Status)
	require.Equal(t, "invalid_transition", resp.ErrorCode())
}

func TestCorrectionRequestIsTrackedByHand(t *testing.T) {
	f := setup(t)
	r := f.privacyRequest(t, map[string]any{"type": "correction", "subject": "tenant"})
	id := r["id"].(string)
	f.move(t, id, "approved", http.StatusConflict)
	require.Equal(t, "in_progress", f.move(t, id, "in_progress", http.StatusOK)["status"])
	got := f.move(t, id, "rejected", http.StatusOK)
	require.Equal(t, "rejected", got["status"])
	require.Equal(t, "checked the requester's identity", got["events"].([]any)[2].(map[string]any)["note"])
}

func TestPrivacyRequestValidation(t *testing.T) {
	f := setup(t)
	future := f.app.Clock.Now().Add(time.Hour).Format(time.RFC3339)
	cases := []struct {
		body  string
		field string
	}{
		{`{"type": "erase", "subject": "tenant"}`, "type"},
		{`{"type": "access", "subject": "everyone"}`, "subject"},
		{`{"type": "access", "subject": "contact"}`, "contact_id"},
		{`{"type": "access", "subject": "tenant", "contact_id": "cust-1"}`, "contact_id"},
		{`{"type": "access", "subject": "tenant", "received_at": "yesterday"}`, "received_at"},
		{`{"type": "access", "subject": "tenant", "received_at": "` + future + `"}`, "received_at"},
		{`{"type": "access", "subject": "tenant", "format": "xml"}`, "format"},
		{`{"type": "deletion", "subject": "tenant", "format": "csv"}`, "format"},
	}
	for _, c := range cases {
		resp := f.app.Do("POST", "/v1/privacy-requests", f.tenant.Key, c.body)
		require.Equal(t, http.StatusUnprocessableEntity, resp.Status, c.body)
		require.Contains(t, resp.JSON()["error"].(map[string]any)["details"], c.field, c.body)
	}
	resp := f.app.Do("POST", "/v1/privacy-requests", f.tenant.Key, `{"type": "access", "subject": "contact", "contact_id": "nobody"}`)
	require.Equal(t, http.StatusNotFound, resp.Status)

	other := f.app.NewTenant("Other Co")
	r := f.privacyRequest(t, map[string]any{"type": "correction", "subject": "tenant"})
	require.Equal(t, http.StatusNotFound, f.app.Do("GET", "/v1/privacy-requests/"+r["id"].(string), other.Key, nil).Status,
		"another tenant's request is unknown")
	resp = f.app.Do("POST", "/v1/privacy-requests/"+r["id"].(string)+"/transitions", other.Key, map[string]any{"status": "completed"})
	require.Equal(t, http.StatusNotFound, resp.Status)
}

// The deadline is per tenant; overdue requests show in the tenant's list,
// the admin API and the Prometheus gauge.
func TestDeadlinesAndOverdue(t *testing.T) {
	f := setup(t)
	resp := f.app.Do("PUT", "/admin/v1/tenants/"+f.tenant.ID.String()+"/privacy-settings", f.app.AdminToken,
		map[string]any{"response_days": 20})
	require.Equal(t, http.StatusOK, resp.Status, string(resp.Body))
	now := f.app.Clock.Now().Truncate(time.Second)
	r := f.privacyRequest(t, map[string]any{"type": "correction", "subject": "tenant", "received_at": now.Format(time.RFC3339)})
	require.Equal(t, now.AddDate(0, 0, 20), mustTime(t, r["due_at"]))
	// Sooner than the promised 30 days, never later.
	for _, days := range []int{0, 31, 45} {
		requireFields(t, f.app.Do("PUT", "/admin/v1/tenants/"+f.tenant.ID.String()+"/privacy-settings",
			f.app.AdminToken, map[string]any{"response_days": days}), "response_days")
	}

	old := now.AddDate(0, 0, -50)
	late := f.privacyRequest(t, map[string]any{"type": "deletion", "subject": "tenant", "received_at": old.Format(time.RFC3339)})
	require.Equal(t, true, late["overdue"])

	list := f.app.Do("GET", "/v1/privacy-requests?overdue=true", f.tenant.Key, nil).JSON()["privacy_requests"].([]any)
	require.Len(t, list, 1)
	require.Equal(t, late["id"], list[0].(map[string]any)["id"])
	require.Len(t, f.app.Do("GET", "/v1/privacy-requests", f.tenant.Key, nil).JSON()["privacy_requests"], 2)

	admin := f.app.Do("GET", "/admin/v1/privacy-requests?overdue=true", f.app.AdminToken, nil)
	require.Equal(t, http.StatusOK, admin.Status)
	rows := admin.JSON()["privacy_requests"].([]any)
	require.Len(t, rows, 1)
	require.Equal(t, f.tenant.ID.String(), rows[0].(map[string]any)["tenant_id"])
	require.Equal(t, http.StatusUnauthorized, f.app.Do("GET", "/admin/v1/privacy-requests?overdue=true", f.tenant.Key, nil).Status)

	metrics := scrape(t, f)
	require.Contains(t, metrics, `errand_privacy_requests_overdue{type="deletion"} 1`)
	require.Contains(t, metrics, `errand_privacy_requests_overdue{type="correction"} 0`)

	// Answered, it is no longer overdue.
	f.move(t, late["id"].(string), "rejected", http.StatusOK)
	require.Contains(t, scrape(t, f), `errand_privacy_requests_overdue{type="deletion"} 0`)
}

func scrape(t *testing.T, f fixture) string {
	t.Helper()
	resp, err := http.Get(f.app.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}
