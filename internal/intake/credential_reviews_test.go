package intake_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/testenv"
	"github.com/errandhq/errand/jobs"
)

// needsReview uploads a credential whose number another pro already uses.
func needsReview(t *testing.T, f vfix) (string, upload) {
	t.Helper()
	require.Equal(t, "verified", f.checked(t, "pro-1", f.licence(t))["status"])
	dup := f.licence(t)
	dup.File, dup.Filename = document(t, "license.png"), "dup.png"
	got := f.checked(t, "pro-2", dup)
	require.Equal(t, "needs_review", got["status"])
	return got["id"].(string), dup
}

func TestReviewQueueDecisionsAreAudited(t *testing.T) {
	f := vsetup(t)
	f.app.StartWorker(2)
	ctx := context.Background()
	id, dup := needsReview(t, f)
	admin := f.app.AdminToken

	require.Equal(t, 401, f.app.Do("GET", "/admin/v1/credentials", f.tenant.Key, nil).Status, "tenants cannot see the queue")
	res := f.app.Do("GET", "/admin/v1/credentials", admin, nil)
	require.Equal(t, 200, res.Status, string(res.Body))
	queue := res.JSON()["credentials"].([]any)
	require.Len(t, queue, 1)
	item := queue[0].(map[string]any)
	require.Equal(t, id, item["id"])
	require.Equal(t, "pro-2", item["pro_id"])
	require.Equal(t, "1234-5679", item["number_full"], "reviewers compare the number with the document")
	require.Equal(t, f.tenant.ID.String(), item["tenant_id"])
	res = f.app.Do("GET", "/admin/v1/credentials?tenant_id="+uuid.NewString(), admin, nil)
	require.Empty(t, res.JSON()["credentials"])
	require.Equal(t, 422, f.app.Do("GET", "/admin/v1/credentials?status=lost", admin, nil).Status)

	req, _ := http.NewRequest("GET", f.app.URL+item["document_url"].(string), nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	doc, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	require.Equal(t, dup.File, doc)
	require.Equal(t, "image/png", resp.Header.Get("Content-Type"))
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	require.Contains(t, resp.Header.Get("Content-Disposition"), "attachment")
	require.Equal(t, 401, f.app.Do("GET", item["document_url"].(string), f.tenant.Key, nil).Status)

	path := "/admin/v1/credentials/" + id + "/review"
	res = f.app.Do("POST", path, admin, map[string]string{"decision": "reject", "reviewer": "sam@ops"})
	requireFields(t, res, "note") // a rejection needs a reason
	res = f.app.Do("POST", path, admin, map[string]string{"decision": "maybe", "note": "?", "reviewer": "sam@ops"})
	require.Equal(t, 422, res.Status)
	// The admin token names no person, so the audit's "who" is the
	// reviewer's name, which a decision cannot go without.
	requireFields(t, f.app.Do("POST", path, admin, map[string]string{"decision": "approve", "note": "ok"}), "reviewer")
	requireFields(t, f.app.Do("POST", path, admin, map[string]string{"decision": "approve", "reviewer": "  "}), "reviewer")

	res = f.app.Do("POST", path, admin, map[string]string{"decision": "approve", "note": "twins; checked with the TX DPS",
		"reviewer": "sam@ops"}, "X-Request-Id", "review-req-1")
	require.Equal(t, 200, res.Status, string(res.Body))
	require.Equal(t, "verified", res.JSON()["status"])
	res = f.app.Do("POST", path, admin, map[string]string{"decision": "reject", "note": "changed my mind", "reviewer": "sam@ops"})
	require.Equal(t, 409, res.Status)
	require.Equal(t, "credential_not_reviewable", res.ErrorCode())

	var trail []db.CredentialReview
	require.NoError(t, f.app.Store.InTenant(ctx, f.tenant.ID, func(q *db.Queries) (err error) {
		trail, err = q.CredentialReviewList(ctx, db.CredentialReviewListParams{TenantID: f.tenant.ID, CredentialID: uuid.MustParse(id)})
		return err
	}))
	require.Len(t, trail, 1, "one decision, one audit entry")
	a := trail[0]
	require.Equal(t, "admin", a.Actor)
	require.Equal(t, "sam@ops", a.Reviewer)
	require.Equal(t, "approve", a.Decision)
	require.Equal(t, "twins; checked with the TX DPS", a.Note)
	require.Equal(t, "needs_review", a.FromStatus)
	require.Equal(t, "verified", a.ToStatus)
	require.Equal(t, "review-req-1", a.RequestID)
	require.WithinDuration(t, f.app.Clock.Now(), a.CreatedAt, time.Second)

	events, err := f.app.Store.Q().SecurityEventList(ctx, db.SecurityEventListParams{TenantID: &f.tenant.ID, BeforeID: 1 << 62, MaxRows: 50})
	require.NoError(t, err)
	actions := map[string]int{}
	for _, e := range events {
		if e.Kind == "admin_action" {
			require.Contains(t, string(e.Detail), id)
			require.NotContains(t, string(e.Detail), "twins", "notes stay in the review trail")
			for _, action := range []string{"credential_review", "credential_document_viewed"} {
				if strings.Contains(string(e.Detail), action) {
					actions[action]++
				}
			}
		}
	}
	require.Equal(t, map[string]int{"credential_review": 1, "credential_document_viewed": 1}, actions)

	got := f.credentials(t, "pro-2")[id]
	require.Equal(t, "verified", got["status"])
	require.Equal(t, "pass: approved on review: twins; checked with the TX DPS", reasons(got)["review"])
	res = f.app.Do("GET", "/admin/v1/credentials/"+id, admin, nil)
	require.Len(t, res.JSON()["reviews"], 1)
	require.Equal(t, 404, f.app.Do("GET", "/admin/v1/credentials/"+uuid.NewString(), admin, nil).Status)
}

func TestExpiryWarningsAreSentOncePerThreshold(t *testing.T) {
	f := vsetup(t)
	f.app.StartWorker(2)
	ctx := context.Background()
	owner := "owner@acme.example"
	_, err := f.app.Store.Q().TenantSetOwnerEmail(ctx, db.TenantSetOwnerEmailParams{ID: f.tenant.ID, OwnerEmail: &owner, Now: f.app.Clock.Now()})
	require.NoError(t, err)
	watch := jobs.NewCredentialExpiryWatch(f.app.Deps)
	run := func() jobs.ExpiryWatchResult {
		t.Helper()
		res, err := watch.Run(ctx)
		require.NoError(t, err)
		return res
	}
	emails := func(n int) {
		t.Helper()
		f.app.Eventually(10*time.Second, "the warning emails", func() bool { return f.app.Resend.Count() >= n })
		require.Equal(t, n, f.app.Resend.Count())
	}

	a := f.licence(t)
	a.ExpiresOn = localDate(f.app, 40)
	idA := f.checked(t, "pro-1", a)["id"].(string)
	require.Zero(t, run().Warned, "40 days out: no threshold crossed")

	f.app.Clock.Advance(10 * 24 * time.Hour) // 30 days left
	require.Equal(t, jobs.ExpiryWatchResult{Warned: 1, Emails: 1}, run())
	require.Zero(t, run().Warned, "a re-run sends nothing twice")
	emails(1)
	first := f.app.Resend.Emails()[0]
	require.Equal(t, []string{owner}, first.To)
	require.Contains(t, first.Text, `pro "pro-1": driver's license ••••5679 (TX), expires on `+a.ExpiresOn+", in 30 days")
	require.NotContains(t, first.Text, "12345679", "numbers are masked")
	require.NotContains(t, first.Text, "1234-5679")

	f.app.Clock.Advance(23 * 24 * time.Hour) // 7 days left
	require.Equal(t, 1, run().Warned)
	require.Zero(t, run().Warned)
	emails(2)
	require.Contains(t, f.app.Resend.Emails()[1].Text, "in 7 days")

	b := f.licence(t)
	b.Number, b.ExpiresOn = "87654321", localDate(f.app, 5)
	idB := f.checked(t, "pro-2", b)["id"].(string)
	require.Equal(t, 1, run().Warned, "first seen 5 days out: the 7-day warning only")
	emails(3)
	var thresholds []int32
	require.NoError(t, f.app.Store.InTenant(ctx, f.tenant.ID, func(q *db.Queries) error {
		for _, id := range []string{idA, idB} {
			notices, err := q.CredentialExpiryNoticeList(ctx, db.CredentialExpiryNoticeListParams{TenantID: f.tenant.ID, CredentialID: uuid.MustParse(id)})
			if err != nil {
				return err
			}
			for _, n := range notices {
				require.NotNil(t, n.MessageID, "each notice names its email")
				thresholds = append(thresholds, n.ThresholdDays)
			}
		}
		return nil
	}))
	require.Equal(t, []int32{30, 7, 7}, thresholds)

	f.app.Clock.Advance(8 * 24 * time.Hour) // both past their date
	res := run()
	require.EqualValues(t, 2, res.Expired)
	require.Zero(t, res.Warned)
	require.Zero(t, run().Expired)
	for pro, id := range map[string]string{"pro-1": idA, "pro-2": idB} {
		got := f.credentials(t, pro)[id]
		require.Equal(t, "expired", got["status"])
		require.Contains(t, reasons(got)["expiry_watch"], "fail: expired on ")
		require.NotNil(t, got["expired_at"])
	}
	require.Equal(t, 3, f.app.Resend.Count(), "expiry itself sends no more mail")
}

// A tenant without an owner email cannot be warned; the warning is not
// spent on nobody (a suppressed email, the threshold marked done) but
// waits, counted in the watch's result, and goes out once an owner email
// is set.
func TestExpiryWarningWaitsForAnOwnerEmail(t *testing.T) {
	f := vsetup(t)
	f.app.StartWorker(2)
	ctx := context.Background()
	watch := jobs.NewCredentialExpiryWatch(f.app.Deps)
	run := func() jobs.ExpiryWatchResult {
		t.Helper()
		res, err := watch.Run(ctx)
		require.NoError(t, err)
		return res
	}
	a := f.licence(t)
	a.ExpiresOn = localDate(f.app, 20)
	id := f.checked(t, "pro-1", a)["id"].(string)

	for range 2 {
		res := run()
		require.Zero(t, res.Warned, "no one to warn")
		require.Equal(t, 1, res.WaitingForOwner, "the warning waits, and says so")
	}
	var messages int
	require.NoError(t, f.app.Store.InTenant(ctx, f.tenant.ID, func(q *db.Queries) error {
		notices, err := q.CredentialExpiryNoticeList(ctx, db.CredentialExpiryNoticeListParams{TenantID: f.tenant.ID, CredentialID: uuid.MustParse(id)})
		require.Empty(t, notices, "the threshold is not marked done")
		return err
	}))
	require.NoError(t, testenv.Owner(t).QueryRow(ctx, "SELECT count(*) FROM messages WHERE tenant_id = $1 AND kind = $2",
		f.tenant.ID, jobs.MessageKindCredentialExpiry).Scan(&messages))
	require.Zero(t, messages, "no email to nobody")

	resp := f.app.Do("PUT", "/admin/v1/tenants/"+f.tenant.ID.String()+"/owner", f.app.AdminToken, map[string]any{"email": "owner@acme.example"})
	require.Equal(t, 200, resp.Status, string(resp.Body))
	require.Equal(t, jobs.ExpiryWatchResult{Warned: 1, Emails: 1}, run())
	f.app.Eventually(10*time.Second, "the warning email", func() bool { return f.app.Resend.Count() >= 1 })
	require.Equal(t, []string{"owner@acme.example"}, f.app.Resend.Emails()[0].To)
	require.Contains(t, f.app.Resend.Emails()[0].Text, "in 20 days")
	require.Zero(t, run().Warned, "sent once")
}
