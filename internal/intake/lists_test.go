package intake_test

import (
	"net/http"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/testapp"
)

// listAll follows next_cursor through every page of a list, checking that
// no page is larger than asked, that only the last page has no cursor and
// that items come newest first ((created_at, id) descending), and returns
// the items' IDs in order.
func listAll(t *testing.T, app *testapp.App, key, path, field string, limit int) []string {
	t.Helper()
	var ids []string
	var lastAt, lastID string
	cursor := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 100, "the pages never end")
		url := path + "?limit=" + itoa(limit)
		if cursor != "" {
			url += "&cursor=" + cursor
		}
		resp := app.Do("GET", url, key, nil)
		require.Equal(t, http.StatusOK, resp.Status, string(resp.Body))
		body := resp.JSON()
		items := body[field].([]any)
		require.LessOrEqual(t, len(items), limit)
		for _, it := range items {
			m := it.(map[string]any)
			at, id := m["created_at"].(string), m["id"].(string)
			if lastAt != "" {
				require.True(t, at < lastAt || (at == lastAt && id < lastID),
					"%s comes after %s/%s: not newest first", at+"/"+id, lastAt, lastID)
			}
			lastAt, lastID = at, id
			ids = append(ids, id)
		}
		next, _ := body["next_cursor"].(string)
		if next == "" {
			require.Nil(t, body["next_cursor"])
			return ids
		}
		require.Len(t, items, limit, "a page with a next_cursor is full")
		cursor = next
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestListsPageNewestFirstAndStayInTheirTenant(t *testing.T) {
	app := testapp.New(t)
	mine, other := app.NewTenant("Mine Co"), app.NewTenant("Other Co")

	var imports, exports []string
	for i := 0; i < 5; i++ {
		resp := app.Do("POST", "/v1/imports?dry_run=true", mine.Key, "name,phone\nPat,+13125550142\n", "Content-Type", "text/csv")
		require.Equal(t, http.StatusAccepted, resp.Status, string(resp.Body))
		imports = append(imports, resp.JSON()["id"].(string))
	}
	for i := 0; i < 3; i++ {
		resp := app.Do("POST", "/v1/exports", mine.Key, map[string]any{"scope": "tenant", "format": "json"})
		require.Equal(t, http.StatusAccepted, resp.Status, string(resp.Body))
		exports = append(exports, resp.JSON()["id"].(string))
	}
	resp := app.Do("PUT", "/v1/contacts/cust-1", mine.Key, map[string]any{"name": "Pat Doe", "phone": "+13125550142"})
	require.Equal(t, http.StatusCreated, resp.Status, string(resp.Body))
	var messages []string
	for i := 0; i < 4; i++ {
		resp := app.Do("POST", "/v1/messages", mine.Key, map[string]any{"contact_id": "cust-1", "channel": "sms",
			"body": "Your filter is due", "send_at": app.Clock.Now().AddDate(0, 1, i).Format("2006-01-02T15:04:05Z07:00")})
		require.Equal(t, http.StatusAccepted, resp.Status, string(resp.Body))
		messages = append(messages, resp.JSON()["id"].(string))
	}

	for _, limit := range []int{1, 2, 50} {
		got := listAll(t, app, mine.Key, "/v1/imports", "imports", limit)
		require.ElementsMatch(t, imports, got, "limit %d", limit)
		got = listAll(t, app, mine.Key, "/v1/exports", "exports", limit)
		require.ElementsMatch(t, exports, got, "limit %d", limit)
		got = listAll(t, app, mine.Key, "/v1/contacts/cust-1/messages", "messages", limit)
		require.ElementsMatch(t, messages, got, "limit %d", limit)
	}
	page := app.Do("GET", "/v1/contacts/cust-1/messages", mine.Key, nil).JSON()["messages"].([]any)
	for _, m := range page {
		require.Equal(t, "cust-1", m.(map[string]any)["contact_id"])
		require.Equal(t, "scheduled", m.(map[string]any)["status"])
	}
	export := app.Do("GET", "/v1/exports", mine.Key, nil).JSON()["exports"].([]any)[0].(map[string]any)
	require.Contains(t, []any{0.0, 100.0}, export["progress"], "export progress is a percentage, as for imports")

	// Another tenant sees none of it, and not the contact.
	require.Empty(t, listAll(t, app, other.Key, "/v1/imports", "imports", 10))
	require.Empty(t, listAll(t, app, other.Key, "/v1/exports", "exports", 10))
	require.Empty(t, listAll(t, app, other.Key, "/v1/deletions", "deletions", 10))
	requireError(t, app.Do("GET", "/v1/contacts/cust-1/messages", other.Key, nil), 404, "not_found")
	requireError(t, app.Do("GET", "/v1/imports", "", nil), 401, "unauthenticated")

	// A bad page is named.
	requireFields(t, app.Do("GET", "/v1/imports?limit=0", mine.Key, nil), "limit")
	requireFields(t, app.Do("GET", "/v1/exports?limit=1001", mine.Key, nil), "limit")
	requireFields(t, app.Do("GET", "/v1/deletions?cursor=bm90LWEtY3Vyc29y", mine.Key, nil), "cursor")
	requireFields(t, app.Do("GET", "/v1/contacts/cust-1/messages?cursor=not*base64", mine.Key, nil), "cursor")
}

func TestCancelledTenantListsItsDeletionsAndExports(t *testing.T) {
	app := testapp.New(t)
	tn := app.NewTenant("Leaving Co")
	resp := app.Do("PUT", "/v1/contacts/cust-1", tn.Key, map[string]any{"name": "Pat Doe", "phone": "+13125550142"})
	require.Equal(t, http.StatusCreated, resp.Status, string(resp.Body))
	resp = app.Do("POST", "/v1/deletions", tn.Key, map[string]any{"scope": "contact", "contact_id": "cust-1"})
	require.Equal(t, http.StatusAccepted, resp.Status, string(resp.Body))
	erasure := resp.JSON()["id"].(string)
	resp = app.Do("POST", "/v1/deletions", tn.Key, map[string]any{"scope": "tenant"})
	require.Equal(t, http.StatusAccepted, resp.Status, string(resp.Body))
	cancellation := resp.JSON()["id"].(string)

	got := listAll(t, app, tn.Key, "/v1/deletions", "deletions", 1)
	require.ElementsMatch(t, []string{erasure, cancellation}, got)
	require.True(t, slices.Contains(got, cancellation))
	require.Empty(t, listAll(t, app, tn.Key, "/v1/exports", "exports", 5), "a cancelled account may still list its exports")
	requireError(t, app.Do("GET", "/v1/imports", tn.Key, nil), 403, "tenant_cancelled")
}
