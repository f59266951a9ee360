package intake_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/testapp"
	"github.com/errandhq/errand/internal/testenv"
)

// wrongSecret keeps a key's prefix and changes its secret.
func wrongSecret(key string) string {
	last := key[len(key)-1]
	if last == 'A' {
		return key[:len(key)-1] + "B"
	}
	return key[:len(key)-1] + "A"
}

func TestTenantAuthFailuresAre401AndLogged(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("auth-a")
	revoked := app.NewTenant("auth-revoked")
	require.Equal(t, 200, app.Do("DELETE", "/admin/v1/api-keys/"+keyPrefix(t, revoked.Key), app.AdminToken, nil).Status)

	unknown := "ek_000000000000_" + strings.Repeat("x", 43)
	cases := []struct {
		name       string
		header     string // the whole Authorization header; "" sends none
		reason     string
		wantPrefix string
	}{
		{"no header", "", "malformed or missing key", ""},
		{"not bearer", "Basic " + a.Key, "malformed or missing key", ""},
		{"malformed key", "Bearer not-a-key", "malformed or missing key", ""},
		{"admin token as tenant key", "Bearer " + app.AdminToken, "malformed or missing key", ""},
		{"unknown prefix", "Bearer " + unknown, "unknown or revoked key", "000000000000"},
		{"right prefix, wrong secret", "Bearer " + wrongSecret(a.Key), "wrong secret for key prefix", keyPrefix(t, a.Key)},
		{"revoked key", "Bearer " + revoked.Key, "unknown or revoked key", keyPrefix(t, revoked.Key)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reqID := "auth-" + uuid.NewString()
			headers := []string{"X-Request-Id", reqID}
			if c.header != "" {
				headers = append(headers, "Authorization", c.header)
			}
			resp := app.Do("GET", "/v1/contacts/someone", "", nil, headers...)
			e := requireError(t, resp, 401, "unauthenticated")
			require.Equal(t, reqID, e.Error.RequestID)

			ev, ok := findSecurityEvent(t, app, "auth_failed", reqID)
			require.True(t, ok, "an auth_failed security event names the request")
			require.Equal(t, "api_key", ev.Actor)
			require.Equal(t, c.reason, ev.Detail["reason"])
			if c.wantPrefix == "" {
				require.NotContains(t, ev.Detail, "key_prefix")
			} else {
				require.Equal(t, c.wantPrefix, ev.Detail["key_prefix"])
			}
			raw, err := json.Marshal(ev)
			require.NoError(t, err)
			if _, secret, ok := strings.Cut(strings.TrimPrefix(c.header, "Bearer "), "_"+c.wantPrefix+"_"); ok {
				require.NotContains(t, string(raw), secret, "the security log never holds a presented secret")
			}
		})
	}

	// The same key still works for the tenant it belongs to.
	requireError(t, app.Do("GET", "/v1/contacts/someone", a.Key, nil), 404, "not_found")
}

func TestAdminRoutesRefuseAnythingButTheAdminToken(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("admin-auth")

	routes := []struct{ method, path string }{
		{"POST", "/admin/v1/tenants"},
		{"GET", "/admin/v1/tenants/" + a.ID.String()},
		{"POST", "/admin/v1/tenants/" + a.ID.String() + "/api-keys"},
		{"DELETE", "/admin/v1/api-keys/" + keyPrefix(t, a.Key)},
		{"GET", "/admin/v1/security-events"},
	}
	credentials := []struct{ name, key string }{
		{"none", ""},
		{"tenant key", a.Key},
		{"wrong token", app.AdminToken + "x"},
		{"token prefix", app.AdminToken[:len(app.AdminToken)-1]},
	}
	for _, r := range routes {
		for _, c := range credentials {
			t.Run(r.method+" "+r.path+" with "+c.name, func(t *testing.T) {
				reqID := "admin-auth-" + uuid.NewString()
				resp := app.Do(r.method, r.path, c.key, map[string]any{"name": "x", "timezone": "UTC"}, "X-Request-Id", reqID)
				requireError(t, resp, 401, "unauthenticated")
				ev, ok := findSecurityEvent(t, app, "admin_auth_failed", reqID)
				require.True(t, ok, "an admin_auth_failed security event names the request")
				require.Equal(t, "admin", ev.Actor)
			})
		}
	}

	// Nothing was done by the refused calls: the key still works.
	requireError(t, app.Do("GET", "/v1/contacts/someone", a.Key, nil), 404, "not_found")
}

func TestKeyRotationAndRevocation(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("rotation")
	first := a.Key

	resp := app.Do("POST", "/admin/v1/tenants/"+a.ID.String()+"/api-keys", app.AdminToken, nil)
	require.Equalf(t, 201, resp.Status, "body: %s", resp.Body)
	issued := decodeAs[struct {
		APIKey string `json:"api_key"`
		Prefix string `json:"prefix"`
	}](t, resp)
	second := issued.APIKey
	require.NotEqual(t, first, second)
	require.Equal(t, keyPrefix(t, second), issued.Prefix)

	works := func(key string) bool {
		resp := app.Do("GET", "/v1/contacts/someone", key, nil)
		require.Contains(t, []int{401, 404}, resp.Status, "body: %s", resp.Body)
		return resp.Status == 404
	}
	require.True(t, works(first), "old keys keep working until revoked")
	require.True(t, works(second))

	// Both keys act for the same tenant: what one writes, the other reads.
	putContact(t, app, first, "shared", map[string]any{"name": "Pat"})
	require.Equal(t, 200, app.Do("GET", "/v1/contacts/shared", second, nil).Status)

	resp = app.Do("DELETE", "/admin/v1/api-keys/"+keyPrefix(t, first), app.AdminToken, nil)
	require.Equalf(t, 200, resp.Status, "body: %s", resp.Body)
	require.Equal(t, a.ID.String(), resp.JSON()["tenant_id"])
	require.NotEmpty(t, resp.JSON()["revoked_at"])
	require.False(t, works(first), "a revoked key is refused")
	require.True(t, works(second), "revoking one key leaves the others")

	requireError(t, app.Do("DELETE", "/admin/v1/api-keys/"+keyPrefix(t, first), app.AdminToken, nil), 404, "not_found")
	requireError(t, app.Do("DELETE", "/admin/v1/api-keys/000000000000", app.AdminToken, nil), 404, "not_found")
	requireError(t, app.Do("POST", "/admin/v1/tenants/"+uuid.NewString()+"/api-keys", app.AdminToken, nil), 404, "not_found")
	requireError(t, app.Do("POST", "/admin/v1/tenants/garbage/api-keys", app.AdminToken, nil), 404, "not_found")

	for _, kind := range []string{"api_key_created", "api_key_revoked"} {
		resp := app.Do("GET", "/admin/v1/security-events?kind="+kind+"&tenant_id="+a.ID.String(), app.AdminToken, nil)
		require.Equal(t, 200, resp.Status)
		events := decodeAs[struct {
			Events []securityEvent `json:"events"`
		}](t, resp).Events
		require.NotEmpty(t, events, kind)
		require.Equal(t, a.ID.String(), *events[0].TenantID)
	}
}

type tenantBody struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Timezone      string `json:"timezone"`
	DefaultRegion string `json:"default_region"`
	Status        string `json:"status"`
	APIKey        string `json:"api_key"`
}

func TestTenantCreate(t *testing.T) {
	app := testapp.New(t)
	name := "Acme Plumbing " + uuid.NewString()

	resp := app.Do("POST", "/admin/v1/tenants", app.AdminToken, map[string]any{"name": name, "timezone": "America/Denver"})
	require.Equalf(t, 201, resp.Status, "body: %s", resp.Body)
	created := decodeAs[tenantBody](t, resp)
	require.Equal(t, name, created.Name)
	require.Equal(t, "America/Denver", created.Timezone)
	require.Equal(t, "US", created.DefaultRegion)
	require.Equal(t, "active", created.Status)
	require.True(t, strings.HasPrefix(created.APIKey, "ek_"), created.APIKey)

	// The key works, for that tenant.
	putContact(t, app, created.APIKey, "c1", map[string]any{"name": "Pat"})

	// The key is shown once: reading the tenant does not show it, and the
	// database holds only its hash.
	resp = app.Do("GET", "/admin/v1/tenants/"+created.ID, app.AdminToken, nil)
	require.Equal(t, 200, resp.Status)
	got := decodeAs[map[string]any](t, resp)
	require.NotContains(t, got, "api_key")
	require.NotContains(t, string(resp.Body), created.APIKey)
	require.Equal(t, name, got["name"])
	require.Equal(t, 0, count(t, "SELECT count(*) FROM api_keys WHERE key_hash = convert_to($1, 'UTF8') OR prefix = $1", created.APIKey))
	require.Equal(t, 1, count(t, "SELECT count(*) FROM api_keys WHERE key_hash = sha256(convert_to($1, 'UTF8'))", created.APIKey))
}

func TestTenantCreateValidation(t *testing.T) {
	app := testapp.New(t)

	cases := []struct {
		name   string
		body   map[string]any
		fields []string
	}{
		{"everything wrong at once", map[string]any{"name": " ", "timezone": "Mars/Olympus", "default_region": "ZZ"},
			[]string{"name", "timezone", "default_region"}},
		{"empty name", map[string]any{"name": "", "timezone": "UTC"}, []string{"name"}},
		{"missing timezone", map[string]any{"name": "x"}, []string{"timezone"}},
		{"server-local timezone", map[string]any{"name": "x", "timezone": "Local"}, []string{"timezone"}},
		{"unknown region", map[string]any{"name": "x", "timezone": "UTC", "default_region": "XX"}, []string{"default_region"}},
		{"unknown field", map[string]any{"name": "x", "timezone": "UTC", "plan": "gold"}, []string{"plan"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			requireFields(t, app.Do("POST", "/admin/v1/tenants", app.AdminToken, c.body), c.fields...)
		})
	}
}

// A cancelled tenant's keys still authenticate but reach nothing (only
// its deletion and exports, which are not routes yet).
func TestCancelledTenantIs403(t *testing.T) {
	app := testapp.New(t)
	a, b := app.NewTenant("cancelled"), app.NewTenant("active")
	putContact(t, app, a.Key, "c1", map[string]any{"name": "Pat"})
	_, err := testenv.Owner(t).Exec(context.Background(), "UPDATE tenants SET status = 'cancelled' WHERE id = $1", a.ID)
	require.NoError(t, err)

	requireError(t, app.Do("GET", "/v1/contacts/c1", a.Key, nil), 403, "tenant_cancelled")
	requireError(t, app.Do("PUT", "/v1/contacts/c2", a.Key, map[string]any{"name": "Sam"}), 403, "tenant_cancelled")
	requireError(t, app.Do("POST", "/v1/messages", a.Key, map[string]any{"contact_id": "c1", "channel": "sms", "body": "hi"}), 403, "tenant_cancelled")
	require.Equal(t, 1, count(t, "SELECT count(*) FROM contacts WHERE tenant_id = $1", a.ID))
	// A wrong secret is still a 401: the 403 is only for the real key.
	requireError(t, app.Do("GET", "/v1/contacts/c1", wrongSecret(a.Key), nil), 401, "unauthenticated")
	requireError(t, app.Do("GET", "/v1/contacts/c1", b.Key, nil), 404, "not_found")
}

func TestSecurityEventsQueryValidation(t *testing.T) {
	app := testapp.New(t)
	requireFields(t, app.Do("GET", "/admin/v1/security-events?before=yesterday&tenant_id=acme", app.AdminToken, nil),
		"before", "tenant_id")
}

func TestTenantGetUnknownIs404(t *testing.T) {
	app := testapp.New(t)

	for _, id := range []string{uuid.NewString(), "garbage", "00000000-0000-0000-0000-000000000000"} {
		requireError(t, app.Do("GET", "/admin/v1/tenants/"+id, app.AdminToken, nil), 404, "not_found")
	}
	a := app.NewTenant("get-me")
	resp := app.Do("GET", "/admin/v1/tenants/"+a.ID.String(), app.AdminToken, nil)
	require.Equal(t, 200, resp.Status)
	require.Equal(t, a.ID.String(), resp.JSON()["id"])
}

// With the API key cache on, a key revoked through this process is refused
// at once; revoked elsewhere (another api process, SQL), it works for at
// most the cache's TTL; a wrong secret and an unknown key are never
// answered from the cache.
func TestAPIKeyCacheRevocation(t *testing.T) {
	const ttl = time.Second
	app := testapp.New(t, func(o *testapp.Options) { o.KeyCacheTTL = ttl })
	a, b := app.NewTenant("cache-a"), app.NewTenant("cache-b")
	get := func(key string) int { return app.Do("GET", "/v1/contacts/nobody", key, nil).Status }
	require.Equal(t, 404, get(a.Key), "a live key reaches the route")
	require.Equal(t, 404, get(b.Key))
	require.Equal(t, 401, get(wrongSecret(a.Key)), "a remembered key still needs its secret")

	// Revoked through the admin API of this process: refused at once.
	require.Equal(t, 200, app.Do("DELETE", "/admin/v1/api-keys/"+keyPrefix(t, a.Key), app.AdminToken, nil).Status)
	require.Equal(t, 401, get(a.Key))

	// Revoked behind this process's back: remembered until the TTL ends.
	_, err := testenv.Owner(t).Exec(context.Background(), "UPDATE api_keys SET revoked_at = now() WHERE prefix = $1", keyPrefix(t, b.Key))
	require.NoError(t, err)
	app.Clock.Advance(ttl - time.Millisecond)
	require.Equal(t, 404, get(b.Key), "within the TTL the cached key still works")
	app.Clock.Advance(time.Millisecond)
	require.Equal(t, 401, get(b.Key), "at the TTL the database is asked again")
	require.Equal(t, 401, get(b.Key))
}

// With the API key cache on, cancelling the account through this process
// locks its keys out at once, and restoring it lets them in at once.
func TestAPIKeyCacheFollowsCancellationAndRestore(t *testing.T) {
	app := testapp.New(t, func(o *testapp.Options) { o.KeyCacheTTL = time.Hour })
	a := app.NewTenant("cache-cancel")
	get := func() testapp.Response { return app.Do("GET", "/v1/contacts/nobody", a.Key, nil) }
	require.Equal(t, 404, get().Status, "remembered as live")

	del := app.Do("POST", "/v1/deletions", a.Key, map[string]any{"scope": "tenant"})
	require.Equal(t, 202, del.Status, string(del.Body))
	resp := get()
	require.Equal(t, 403, resp.Status)
	require.Equal(t, "tenant_cancelled", resp.ErrorCode())

	require.Equal(t, 200, app.Do("DELETE", "/v1/deletions/"+del.JSON()["id"].(string), a.Key, nil).Status)
	require.Equal(t, 404, get().Status, "restored at once")
}
