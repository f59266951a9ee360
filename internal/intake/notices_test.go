package intake_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/testapp"
	"github.com/errandhq/errand/internal/testenv"
)

// A policy change is announced to every active tenant's owner by email,
// once, at least 30 days ahead, with delivery tracked per tenant.
func TestNoticeEmailsEveryActiveOwnerOnce(t *testing.T) {
	app := testapp.New(t)
	a, b := app.NewTenant("Acme Repair"), app.NewTenant("Bolt Plumbing")
	c := app.NewTenant("No Owner Yet")
	gone := app.NewTenant("Gone Co")
	_, err := testenv.Owner(t).Exec(context.Background(), "UPDATE tenants SET status = 'cancelled' WHERE id = $1", gone.ID)
	require.NoError(t, err)

	admin := func(method, path string, body any, headers ...string) testapp.Response {
		return app.Do(method, path, app.AdminToken, body, headers...)
	}
	r := admin(http.MethodPut, "/admin/v1/tenants/"+a.ID.String()+"/owner", map[string]any{"email": " Owner@Acme.Example "})
	require.Equal(t, 200, r.Status, string(r.Body))
	require.Equal(t, "Owner@acme.example", r.JSON()["owner_email"], "trimmed, domain lower-cased")
	require.Equal(t, 200, admin(http.MethodPut, "/admin/v1/tenants/"+b.ID.String()+"/owner", map[string]any{"email": "boss@bolt.example"}).Status)
	require.Equal(t, 200, admin(http.MethodPut, "/admin/v1/tenants/"+gone.ID.String()+"/owner", map[string]any{"email": "x@gone.example"}).Status)
	require.Equal(t, 422, admin(http.MethodPut, "/admin/v1/tenants/"+a.ID.String()+"/owner", map[string]any{"email": "not an email"}).Status)
	require.Equal(t, 404, admin(http.MethodPut, "/admin/v1/tenants/00000000-0000-0000-0000-000000000000/owner", map[string]any{"email": "a@b.example"}).Status)
	require.Equal(t, 401, app.Do(http.MethodPut, "/admin/v1/tenants/"+a.ID.String()+"/owner", a.Key, map[string]any{"email": "a@b.example"}).Status)

	now := app.Clock.Now()
	soon := map[string]any{"subject": "Privacy policy update", "body": "We add a new processor.",
		"effective_at": now.Add(29 * 24 * time.Hour).Format(time.RFC3339)}
	r = admin(http.MethodPost, "/admin/v1/notices", soon)
	require.Equal(t, 422, r.Status)
	require.Contains(t, r.JSON()["error"].(map[string]any)["details"].(map[string]any)["effective_at"], "at least 30 days")

	effective := now.Add(31 * 24 * time.Hour).Truncate(time.Second)
	notice := map[string]any{"subject": "Privacy policy update", "body": "We add a new processor.",
		"effective_at": effective.Format(time.RFC3339)}
	r = admin(http.MethodPost, "/admin/v1/notices", notice, "Idempotency-Key", "notice-1")
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	require.EqualValues(t, 3, r.JSON()["recipients"], "active tenants only")
	id := r.JSON()["id"].(string)
	again := admin(http.MethodPost, "/admin/v1/notices", notice, "Idempotency-Key", "notice-1")
	require.Equal(t, r.Body, again.Body, "a retried request emails nobody twice")

	app.StartWorker(2)
	scan(t, app)
	var got map[string]any
	app.Eventually(10*time.Second, "notice delivered", func() bool {
		got = admin(http.MethodGet, "/admin/v1/notices/"+id, nil).JSON()
		counts := got["counts"].(map[string]any)
		return counts["sent"] == 2.0 && counts["suppressed"] == 1.0
	})
	byTenant := map[string]map[string]any{}
	for _, d := range got["deliveries"].([]any) {
		d := d.(map[string]any)
		byTenant[d["tenant_id"].(string)] = d
	}
	require.Equal(t, "suppressed", byTenant[c.ID.String()]["status"])
	require.Equal(t, "the tenant has no owner email address", byTenant[c.ID.String()]["error"])
	require.NotContains(t, byTenant, gone.ID.String())

	emails := app.Resend.Emails()
	require.Len(t, emails, 2)
	to := []string{emails[0].To[0], emails[1].To[0]}
	require.ElementsMatch(t, []string{"Owner@acme.example", "boss@bolt.example"}, to)
	require.Equal(t, "Privacy policy update", emails[0].Subject)
	require.True(t, strings.HasPrefix(emails[0].Text, "We add a new processor."))
	zone, err := time.LoadLocation(app.MiddayZone())
	require.NoError(t, err)
	require.Contains(t, emails[0].Text, "This change takes effect on "+effective.In(zone).Format("January 2, 2006")+".",
		"the date in the tenant's zone")

	// Tenants see nothing of it.
	require.Equal(t, 401, app.Do(http.MethodGet, "/admin/v1/notices/"+id, a.Key, nil).Status)
}
