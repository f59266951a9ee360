package intake_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/ratelimit"
	"github.com/errandhq/errand/internal/testapp"
)

func TestMalformedBodiesAre400(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("malformed")

	cases := []struct{ name, body string }{
		{"cut short", `{"name":`},
		{"not JSON", `name=Pat`},
		{"syntax error", `{"name" "Pat"}`},
		{"trailing garbage", `{"name":"Pat"} x`},
		{"two objects", `{"name":"Pat"}{"name":"Sam"}`},
		{"empty", ``},
		{"only whitespace", "  \n "},
		{"array", `[{"name":"Pat"}]`},
		{"string", `"Pat"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			requireError(t, app.Do("PUT", "/v1/contacts/c1", a.Key, c.body), 400, "malformed_request")
		})
	}
	// None of them wrote anything.
	requireError(t, app.Do("GET", "/v1/contacts/c1", a.Key, nil), 404, "not_found")
}

func TestContentTypeMustBeJSON(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("media")
	body := `{"name":"Pat"}`

	for _, ct := range []string{"text/plain", "application/xml", "application/x-www-form-urlencoded", "application/json; charset"} {
		t.Run(ct, func(t *testing.T) {
			requireError(t, app.Do("PUT", "/v1/contacts/c1", a.Key, body, "Content-Type", ct), 415, "unsupported_media_type")
		})
	}
	requireError(t, app.Do("GET", "/v1/contacts/c1", a.Key, nil), 404, "not_found")

	resp := app.Do("PUT", "/v1/contacts/c1", a.Key, body, "Content-Type", "application/json; charset=utf-8")
	require.Equalf(t, 201, resp.Status, "body: %s", resp.Body)
}

func TestInvalidJSONFieldsAre422NamingTheField(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("fields")
	putContact(t, app, a.Key, "c1", map[string]any{"name": "Pat", "phone": "+13125550142"})

	cases := []struct {
		name, method, path, body string
		field, says              string // the field named, and what its problem mentions
	}{
		{"unknown contact field", "PUT", "/v1/contacts/c2", `{"name":"Pat","nickname":"P"}`, "nickname", "unknown"},
		{"unknown among known fields", "PUT", "/v1/contacts/c2", `{"name":"Pat","phone":"+13125550142","phone_number":"1"}`, "phone_number", "unknown"},
		{"number for a string", "PUT", "/v1/contacts/c2", `{"name":5}`, "name", "string"},
		{"bool for an optional string", "PUT", "/v1/contacts/c2", `{"name":"Pat","phone":true}`, "phone", "string"},
		{"object for a string", "PUT", "/v1/contacts/c2", `{"name":"Pat","notes":{"a":1}}`, "notes", "string"},
		{"unknown message field", "POST", "/v1/messages", `{"contact_id":"c1","channel":"sms","body":"hi","priority":1}`, "priority", "unknown"},
		{"array for the message body", "POST", "/v1/messages", `{"contact_id":"c1","channel":"sms","body":["hi"]}`, "body", "string"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := requireFields(t, app.Do(c.method, c.path, a.Key, c.body), c.field)
			require.Contains(t, e.Error.Details[c.field], c.says)
		})
	}
	requireError(t, app.Do("GET", "/v1/contacts/c2", a.Key, nil), 404, "not_found")
	require.Equal(t, 0, count(t, "SELECT count(*) FROM messages WHERE tenant_id = $1", a.ID))
}

func TestBodiesOverTheLimitAre413(t *testing.T) {
	app := testapp.New(t, func(o *testapp.Options) { o.MaxBody = 256 })
	a := app.NewTenant("too-large")
	putContact(t, app, a.Key, "c1", map[string]any{"name": "Pat", "phone": "+13125550142"})

	big := strings.Repeat("x", 4000)
	requireError(t, app.Do("PUT", "/v1/contacts/c2", a.Key, map[string]any{"name": "Pat", "notes": big}), 413, "payload_too_large")
	requireError(t, app.Do("POST", "/v1/messages", a.Key, map[string]any{"contact_id": "c1", "channel": "sms", "body": big}), 413, "payload_too_large")
	// Valid JSON first, the excess after it: still too large, not malformed.
	requireError(t, app.Do("PUT", "/v1/contacts/c2", a.Key, `{"name":"Pat"}`+strings.Repeat(" ", 4000)), 413, "payload_too_large")
	requireError(t, app.Do("GET", "/v1/contacts/c2", a.Key, nil), 404, "not_found")

	// Just under the limit is fine.
	under := `{"name":"Pat","notes":"` + strings.Repeat("y", 200) + `"}`
	require.Less(t, len(under), 256)
	require.Equal(t, 201, app.Do("PUT", "/v1/contacts/c2", a.Key, under).Status)
}

func TestUnknownRoutesAre404(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("routes")

	for _, path := range []string{"/", "/v1/nope", "/v1/contacts", "/v1/contacts/a/b", "/v2/messages", "/admin/v1/nope"} {
		for _, key := range []string{"", a.Key} {
			requireError(t, app.Do("GET", path, key, nil), 404, "not_found")
		}
	}
}

func TestWrongMethodIs405WithAllow(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("methods")

	cases := []struct {
		method, path string
		allow        []string
	}{
		{"POST", "/v1/contacts/c1", []string{"GET", "PUT"}},
		{"DELETE", "/v1/contacts/c1", []string{"GET", "PUT"}},
		{"GET", "/v1/messages", []string{"POST"}},
		{"PATCH", "/v1/messages/" + uuid.NewString(), []string{"GET", "DELETE"}},
		{"PUT", "/healthz", []string{"GET"}},
		{"GET", "/admin/v1/tenants", []string{"POST"}},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			resp := app.Do(c.method, c.path, a.Key, map[string]any{"name": "Pat"})
			requireError(t, resp, 405, "method_not_allowed")
			allow := strings.Split(resp.Header.Get("Allow"), ", ")
			require.Subset(t, allow, c.allow)
			require.NotContains(t, allow, c.method)
		})
	}
	requireError(t, app.Do("GET", "/v1/contacts/c1", a.Key, nil), 404, "not_found")
}

func TestRequestIDs(t *testing.T) {
	app := testapp.New(t)

	// A caller's own request ID is used, so both sides' logs line up.
	e := requireError(t, app.Do("GET", "/v1/nope", "", nil, "X-Request-Id", "caller-123"), 404, "not_found")
	require.Equal(t, "caller-123", e.Error.RequestID)

	// An absurdly long one is replaced.
	long := strings.Repeat("r", 65)
	e = requireError(t, app.Do("GET", "/v1/nope", "", nil, "X-Request-Id", long), 404, "not_found")
	require.NotEqual(t, long, e.Error.RequestID)

	// Otherwise every response gets a fresh one.
	first := requireError(t, app.Do("GET", "/v1/nope", "", nil), 404, "not_found")
	second := requireError(t, app.Do("GET", "/v1/nope", "", nil), 404, "not_found")
	require.NotEqual(t, first.Error.RequestID, second.Error.RequestID)
	require.NotEmpty(t, app.Do("GET", "/healthz", "", nil).Header.Get("X-Request-Id"))
}

// Another tenant's contact or message must look exactly like one that does
// not exist: same status, code, message and details.
func TestAnotherTenantsResourcesAre404(t *testing.T) {
	app := testapp.New(t)
	a, b := app.NewTenant("owner"), app.NewTenant("intruder")
	putContact(t, app, a.Key, "c-1", map[string]any{"name": "Pat Owner", "phone": "+13125550142"})
	msgID, _ := postMessage(t, app, a.Key, map[string]any{"contact_id": "c-1", "channel": "sms", "body": "see you",
		"send_at": app.Clock.Now().Add(48 * time.Hour).Format(time.RFC3339)})

	same := func(t *testing.T, theirs, missing testapp.Response) {
		t.Helper()
		x, y := requireError(t, theirs, 404, "not_found"), requireError(t, missing, 404, "not_found")
		require.Equal(t, y.Error.Message, x.Error.Message)
		require.Equal(t, y.Error.Details, x.Error.Details)
		require.Equal(t, len(missing.Body)-len(y.Error.RequestID), len(theirs.Body)-len(x.Error.RequestID))
	}
	t.Run("get contact", func(t *testing.T) {
		same(t, app.Do("GET", "/v1/contacts/c-1", b.Key, nil), app.Do("GET", "/v1/contacts/c-2", b.Key, nil))
	})
	t.Run("get message", func(t *testing.T) {
		same(t, app.Do("GET", "/v1/messages/"+msgID, b.Key, nil), app.Do("GET", "/v1/messages/"+uuid.NewString(), b.Key, nil))
	})
	t.Run("cancel message", func(t *testing.T) {
		same(t, app.Do("DELETE", "/v1/messages/"+msgID, b.Key, nil), app.Do("DELETE", "/v1/messages/"+uuid.NewString(), b.Key, nil))
	})
	t.Run("message to their contact", func(t *testing.T) {
		body := func(contact string) map[string]any {
			return map[string]any{"contact_id": contact, "channel": "sms", "body": "hello"}
		}
		theirs, missing := app.Do("POST", "/v1/messages", b.Key, body("c-1")), app.Do("POST", "/v1/messages", b.Key, body("c-2"))
		same(t, theirs, missing)
		require.Equal(t, map[string]string{"contact_id": "no such contact"}, requireError(t, theirs, 404, "not_found").Error.Details)
	})
	t.Run("same external ID is a different contact", func(t *testing.T) {
		resp := app.Do("PUT", "/v1/contacts/c-1", b.Key, map[string]any{"name": "Someone Else"})
		require.Equal(t, 201, resp.Status, "tenant B's c-1 is new")
	})

	// Tenant A's data is untouched by all of it.
	require.Equal(t, "Pat Owner", decodeAs[contact](t, app.Do("GET", "/v1/contacts/c-1", a.Key, nil)).Name)
	require.Equal(t, "scheduled", getMessage(t, app, a.Key, msgID).Status)
	require.Equal(t, 0, count(t, "SELECT count(*) FROM messages WHERE tenant_id = $1", b.ID))
}

func TestRateLimitIsPerKey(t *testing.T) {
	// One request a minute with a burst of two: the third request in a
	// row is refused however slow the machine is.
	app := testapp.New(t, func(o *testapp.Options) { o.RateLimit = ratelimit.Per(1, time.Minute, 2) })
	a, b := app.NewTenant("busy"), app.NewTenant("quiet")

	for range 2 {
		requireError(t, app.Do("GET", "/v1/contacts/c1", a.Key, nil), 404, "not_found")
	}
	resp := app.Do("GET", "/v1/contacts/c1", a.Key, nil)
	requireError(t, resp, 429, "rate_limited")
	retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After is whole seconds")
	require.GreaterOrEqual(t, retry, 1)
	require.LessOrEqual(t, retry, 60)
	// Refused requests do not run: this PUT would create a contact.
	requireError(t, app.Do("PUT", "/v1/contacts/c1", a.Key, map[string]any{"name": "Pat"}), 429, "rate_limited")

	// Another tenant's key is unaffected …
	requireError(t, app.Do("GET", "/v1/contacts/c1", b.Key, nil), 404, "not_found")
	// … and so is another key of the same tenant.
	resp = app.Do("POST", "/admin/v1/tenants/"+a.ID.String()+"/api-keys", app.AdminToken, nil)
	require.Equal(t, 201, resp.Status)
	second, _ := resp.JSON()["api_key"].(string)
	requireError(t, app.Do("GET", "/v1/contacts/c1", second, nil), 404, "not_found")
}

// encoding/json matches names case-insensitively; the contract rejects any
// field the API does not name exactly.
func TestFieldNamesAreExact(t *testing.T) {
	app := testapp.New(t)
	tenant := app.NewTenant("exact")
	resp := app.Do("PUT", "/v1/contacts/c1", tenant.Key, `{"NAME":"Pat","name":"Pat"}`)
	requireFields(t, resp, "NAME")
	resp = app.Do("PUT", "/v1/contacts/c1", tenant.Key, `{"Name":"Pat"}`)
	requireFields(t, resp, "Name")
	require.Equal(t, 201, app.Do("PUT", "/v1/contacts/c1", tenant.Key, `{"name":"Pat"}`).Status)
}
