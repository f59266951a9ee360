package intake_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/intake"
	"github.com/errandhq/errand/internal/testapp"
	"github.com/errandhq/errand/internal/testenv"
)

// requireSameResponse asserts a repeat answered with the first response,
// marked as replayed.
func requireSameResponse(t *testing.T, first, again testapp.Response) {
	t.Helper()
	require.Empty(t, first.Header.Get("Idempotent-Replayed"), "a first response is not a replay")
	require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	require.Equal(t, first.Status, again.Status)
	require.Equal(t, first.Header.Get("Content-Type"), again.Header.Get("Content-Type"))
	require.Equal(t, string(first.Body), string(again.Body))
}

// requireReplayWithoutKey asserts a repeat answered with the first
// response except its API key: a key is shown once and never stored, so
// the replay carries api_key null and everything else unchanged.
func requireReplayWithoutKey(t *testing.T, first, again testapp.Response) {
	t.Helper()
	require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	require.Equal(t, first.Status, again.Status)
	want := first.JSON()
	require.NotEmpty(t, want["api_key"], "the first response shows the key")
	want["api_key"] = nil
	require.Equal(t, want, again.JSON())
	plain, _ := first.JSON()["api_key"].(string)
	require.Zero(t, count(t, "SELECT count(*) FROM idempotency_keys WHERE position($1::bytea in response_body) > 0", []byte(plain)),
		"the plain key is not stored for replays")
}

func requireNotReplayed(t *testing.T, resp testapp.Response, status int) {
	t.Helper()
	require.Equalf(t, status, resp.Status, "body: %s", resp.Body)
	require.Empty(t, resp.Header.Get("Idempotent-Replayed"))
}

func messagesOf(t *testing.T, tenant uuid.UUID) int {
	t.Helper()
	return count(t, "SELECT count(*) FROM messages WHERE tenant_id = $1", tenant)
}

func TestIdempotentMessageCreate(t *testing.T) {
	app := testapp.New(t)
	a, b := app.NewTenant("idem-a"), app.NewTenant("idem-b")
	for _, k := range []string{a.Key, b.Key} {
		putContact(t, app, k, "c1", map[string]any{"name": "Pat", "phone": "+13125550142"})
	}
	body := map[string]any{"contact_id": "c1", "channel": "sms", "body": "On our way"}
	key := "order-" + uuid.NewString()

	first := app.Do("POST", "/v1/messages", a.Key, body, "Idempotency-Key", key)
	requireNotReplayed(t, first, 202)
	firstID := first.JSON()["id"]

	t.Run("same key, same body: the first response, no new message", func(t *testing.T) {
		again := app.Do("POST", "/v1/messages", a.Key, body, "Idempotency-Key", key)
		requireSameResponse(t, first, again)
		require.Equal(t, 1, messagesOf(t, a.ID))
		require.NotEqual(t, first.Header.Get("X-Request-Id"), again.Header.Get("X-Request-Id"), "the replay is its own request")
	})
	t.Run("same key, different body: 409", func(t *testing.T) {
		other := map[string]any{"contact_id": "c1", "channel": "sms", "body": "On our way!"}
		requireError(t, app.Do("POST", "/v1/messages", a.Key, other, "Idempotency-Key", key), 409, "idempotency_key_reused")
		require.Equal(t, 1, messagesOf(t, a.ID))
	})
	t.Run("same body, no key: a new message", func(t *testing.T) {
		requireNotReplayed(t, app.Do("POST", "/v1/messages", a.Key, body), 202)
		require.Equal(t, 2, messagesOf(t, a.ID))
	})
	t.Run("keys are per tenant", func(t *testing.T) {
		theirs := app.Do("POST", "/v1/messages", b.Key, body, "Idempotency-Key", key)
		requireNotReplayed(t, theirs, 202)
		require.NotEqual(t, firstID, theirs.JSON()["id"])
		require.Equal(t, 1, messagesOf(t, b.ID))
		requireSameResponse(t, theirs, app.Do("POST", "/v1/messages", b.Key, body, "Idempotency-Key", key))
		// Tenant A's record is untouched by B's use of the key.
		requireSameResponse(t, first, app.Do("POST", "/v1/messages", a.Key, body, "Idempotency-Key", key))
		require.Equal(t, 2, messagesOf(t, a.ID))
		require.Equal(t, 1, messagesOf(t, b.ID))
	})
	t.Run("after 24 hours the key is new again", func(t *testing.T) {
		app.Clock.Advance(25 * time.Hour)
		later := app.Do("POST", "/v1/messages", a.Key, body, "Idempotency-Key", key)
		requireNotReplayed(t, later, 202)
		require.NotEqual(t, firstID, later.JSON()["id"])
		require.Equal(t, 3, messagesOf(t, a.ID))
		requireSameResponse(t, later, app.Do("POST", "/v1/messages", a.Key, body, "Idempotency-Key", key))
		require.Equal(t, 3, messagesOf(t, a.ID))
	})
}

func TestIdempotencyKeyExpiresAfter24HoursNotBefore(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("idem-expiry")
	putContact(t, app, a.Key, "c1", map[string]any{"name": "Pat", "phone": "+13125550142"})
	key := uuid.NewString()
	body := map[string]any{"contact_id": "c1", "channel": "sms", "body": "hello"}

	first := app.Do("POST", "/v1/messages", a.Key, body, "Idempotency-Key", key)
	requireNotReplayed(t, first, 202)
	app.Clock.Advance(23 * time.Hour)
	requireSameResponse(t, first, app.Do("POST", "/v1/messages", a.Key, body, "Idempotency-Key", key))
	// A different request with the key is still refused at 23 h …
	requireError(t, app.Do("POST", "/v1/messages", a.Key, map[string]any{"contact_id": "c1", "channel": "sms", "body": "bye"},
		"Idempotency-Key", key), 409, "idempotency_key_reused")
	// … and allowed once the first is more than 24 h old.
	app.Clock.Advance(2 * time.Hour)
	requireNotReplayed(t, app.Do("POST", "/v1/messages", a.Key, map[string]any{"contact_id": "c1", "channel": "sms", "body": "bye"},
		"Idempotency-Key", key), 202)
	require.Equal(t, 2, messagesOf(t, a.ID))
}

func TestIdempotencyReplaysClientErrors(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("idem-4xx")
	key := uuid.NewString()
	body := map[string]any{"contact_id": "later", "channel": "sms", "body": "hello"}

	first := app.Do("POST", "/v1/messages", a.Key, body, "Idempotency-Key", key)
	requireError(t, first, 404, "not_found")
	require.Empty(t, first.Header.Get("Idempotent-Replayed"))

	// Even once the contact exists, the key answers with its first response.
	putContact(t, app, a.Key, "later", map[string]any{"name": "Pat", "phone": "+13125550142"})
	again := app.Do("POST", "/v1/messages", a.Key, body, "Idempotency-Key", key)
	requireSameResponse(t, first, again)
	require.Equal(t, 0, messagesOf(t, a.ID))

	// A 422 is replayed the same way.
	bad := map[string]any{"contact_id": "later", "channel": "fax", "body": "hello"}
	key2 := uuid.NewString()
	first = app.Do("POST", "/v1/messages", a.Key, bad, "Idempotency-Key", key2)
	requireFields(t, first, "channel")
	requireSameResponse(t, first, app.Do("POST", "/v1/messages", a.Key, bad, "Idempotency-Key", key2))

	// Refusals that happen before the request is accepted for processing
	// (authentication) do not use up the key.
	key3 := uuid.NewString()
	requireError(t, app.Do("POST", "/v1/messages", wrongSecret(a.Key), body, "Idempotency-Key", key3), 401, "unauthenticated")
	requireNotReplayed(t, app.Do("POST", "/v1/messages", a.Key, body, "Idempotency-Key", key3), 202)
	require.Equal(t, 1, messagesOf(t, a.ID))
}

// A server error means nothing durable happened (or we cannot tell): the
// key is not kept, so the client's retry with the same key does the work.
func TestIdempotencyDoesNotKeepServerErrors(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("idem-5xx")
	putContact(t, app, a.Key, "c1", map[string]any{"name": "Pat", "phone": "+13125550142"})

	// Make PostgreSQL refuse exactly this message body for a while.
	poison := "poison-" + uuid.NewString()
	owner := testenv.Owner(t)
	ctx := context.Background()
	_, err := owner.Exec(ctx, "ALTER TABLE messages ADD CONSTRAINT intake_test_poison CHECK (body <> '"+poison+"') NOT VALID")
	require.NoError(t, err)
	dropped := false
	drop := func() {
		if !dropped {
			_, err := owner.Exec(ctx, "ALTER TABLE messages DROP CONSTRAINT IF EXISTS intake_test_poison")
			require.NoError(t, err)
			dropped = true
		}
	}
	t.Cleanup(drop)

	key := uuid.NewString()
	body := map[string]any{"contact_id": "c1", "channel": "sms", "body": poison}
	first := app.Do("POST", "/v1/messages", a.Key, body, "Idempotency-Key", key)
	requireError(t, first, 500, "internal_error")
	require.Empty(t, first.Header.Get("Idempotent-Replayed"))
	again := app.Do("POST", "/v1/messages", a.Key, body, "Idempotency-Key", key)
	requireError(t, again, 500, "internal_error")
	require.Empty(t, again.Header.Get("Idempotent-Replayed"), "a 500 is never replayed")

	drop()
	requireNotReplayed(t, app.Do("POST", "/v1/messages", a.Key, body, "Idempotency-Key", key), 202)
	require.Equal(t, 1, messagesOf(t, a.ID))
}

// A handler that panics answers 500 in the error format, and its
// Idempotency-Key is let go like any other server error rather than held
// "in progress" until it goes stale.
func TestPanicIs500AndReleasesTheIdempotencyKey(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("idem-panic")
	putContact(t, app, a.Key, "c1", map[string]any{"name": "Pat", "phone": "+13125550142"})
	body := `{"contact_id":"c1","channel":"sms","body":"hello"}`
	key := uuid.NewString()

	// The same intake without a dispatcher panics creating a message.
	broken := intake.NewServer(serverDeps(app, func(d *intake.Deps) { d.Dispatcher = nil }))
	req := httptest.NewRequest("POST", "/v1/messages", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+a.Key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	rec := httptest.NewRecorder()
	broken.ServeHTTP(rec, req)
	requireError(t, testapp.Response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}, 500, "internal_error")
	require.Contains(t, app.Logs.String(), "panic serving request")

	requireNotReplayed(t, app.Do("POST", "/v1/messages", a.Key, body, "Idempotency-Key", key), 202)
	require.Equal(t, 1, messagesOf(t, a.ID))
}

func TestIdempotencyKeyInProgress(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("idem-pending")
	putContact(t, app, a.Key, "c1", map[string]any{"name": "Pat", "phone": "+13125550142"})
	body := map[string]any{"contact_id": "c1", "channel": "sms", "body": "hello"}
	key := uuid.NewString()

	// A first request holds the key (its process may have died).
	now := app.Clock.Now()
	_, err := testenv.Owner(t).Exec(context.Background(),
		`INSERT INTO idempotency_keys (scope, key, request_hash, state, created_at, expires_at)
		 VALUES ($1, $2, '', 'pending', $3, $4)`, a.ID.String(), key, now, now.Add(24*time.Hour))
	require.NoError(t, err)

	resp := app.Do("POST", "/v1/messages", a.Key, body, "Idempotency-Key", key)
	requireError(t, resp, 409, "idempotency_request_in_progress")
	require.Equal(t, "1", resp.Header.Get("Retry-After"))
	require.Equal(t, 0, messagesOf(t, a.ID))

	// A reservation that old belongs to a request that will never finish.
	app.Clock.Advance(11 * time.Minute)
	requireNotReplayed(t, app.Do("POST", "/v1/messages", a.Key, body, "Idempotency-Key", key), 202)
	require.Equal(t, 1, messagesOf(t, a.ID))
}

func TestIdempotencyKeyTooLong(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("idem-long")
	putContact(t, app, a.Key, "c1", map[string]any{"name": "Pat", "phone": "+13125550142"})
	body := map[string]any{"contact_id": "c1", "channel": "sms", "body": "hello"}

	requireFields(t, app.Do("POST", "/v1/messages", a.Key, body, "Idempotency-Key", strings.Repeat("k", 256)), "Idempotency-Key")
	require.Equal(t, 0, messagesOf(t, a.ID))
	requireNotReplayed(t, app.Do("POST", "/v1/messages", a.Key, body, "Idempotency-Key", strings.Repeat("k", 255)), 202)
}

func TestIdempotentTenantCreate(t *testing.T) {
	app := testapp.New(t)
	name := "Idempotent Inc " + uuid.NewString()
	body := map[string]any{"name": name, "timezone": "America/Chicago"}
	key := uuid.NewString()
	tenants := func() int { return count(t, "SELECT count(*) FROM tenants WHERE name = $1", name) }

	first := app.Do("POST", "/admin/v1/tenants", app.AdminToken, body, "Idempotency-Key", key)
	requireNotReplayed(t, first, 201)
	again := app.Do("POST", "/admin/v1/tenants", app.AdminToken, body, "Idempotency-Key", key)
	requireReplayWithoutKey(t, first, again)
	require.Equal(t, 1, tenants())
	// The first response's key is the tenant's one key, and it works.
	created := decodeAs[tenantBody](t, first)
	require.Equal(t, 1, count(t, "SELECT count(*) FROM api_keys WHERE tenant_id = $1", created.ID))
	putContact(t, app, created.APIKey, "c1", map[string]any{"name": "Pat"})

	requireError(t, app.Do("POST", "/admin/v1/tenants", app.AdminToken, map[string]any{"name": name, "timezone": "UTC"},
		"Idempotency-Key", key), 409, "idempotency_key_reused")
	require.Equal(t, 1, tenants())

	// Without a key every call is a new tenant.
	requireNotReplayed(t, app.Do("POST", "/admin/v1/tenants", app.AdminToken, body), 201)
	require.Equal(t, 2, tenants())

	// A validation failure is replayed too.
	badKey := uuid.NewString()
	bad := app.Do("POST", "/admin/v1/tenants", app.AdminToken, map[string]any{"name": name}, "Idempotency-Key", badKey)
	requireFields(t, bad, "timezone")
	requireSameResponse(t, bad, app.Do("POST", "/admin/v1/tenants", app.AdminToken, map[string]any{"name": name}, "Idempotency-Key", badKey))
	require.Equal(t, 2, tenants())
}

func TestIdempotentKeyIssue(t *testing.T) {
	app := testapp.New(t)
	a, b := app.NewTenant("issue-a"), app.NewTenant("issue-b")
	key := uuid.NewString()
	keys := func(tenant uuid.UUID) int {
		return count(t, "SELECT count(*) FROM api_keys WHERE tenant_id = $1", tenant)
	}

	first := app.Do("POST", "/admin/v1/tenants/"+a.ID.String()+"/api-keys", app.AdminToken, nil, "Idempotency-Key", key)
	requireNotReplayed(t, first, 201)
	requireReplayWithoutKey(t, first, app.Do("POST", "/admin/v1/tenants/"+a.ID.String()+"/api-keys", app.AdminToken, nil, "Idempotency-Key", key))
	require.Equal(t, 2, keys(a.ID))

	// The path is part of the request: the same key for another tenant is
	// a different request.
	requireError(t, app.Do("POST", "/admin/v1/tenants/"+b.ID.String()+"/api-keys", app.AdminToken, nil, "Idempotency-Key", key),
		409, "idempotency_key_reused")
	require.Equal(t, 1, keys(b.ID))
}

// cancelOnWrite is a client that hangs up as the response arrives: the
// server cancels the request's context, as net/http does when the
// connection closes.
type cancelOnWrite struct {
	*httptest.ResponseRecorder
	cancel context.CancelFunc
}

func (c cancelOnWrite) WriteHeader(code int) {
	c.cancel()
	c.ResponseRecorder.WriteHeader(code)
}

// A client that gives up just as its message is accepted retries with the
// same key; it must get the first response, not a second message (nor a
// 409 "in progress" for the next ten minutes).
func TestIdempotencyKeyIsKeptWhenTheClientHangsUp(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("idem-hangup")
	putContact(t, app, a.Key, "c1", map[string]any{"name": "Pat", "phone": "+13125550142"})
	body := `{"contact_id":"c1","channel":"sms","body":"hello"}`
	key := uuid.NewString()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, "POST", "/v1/messages", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+a.Key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	w := cancelOnWrite{ResponseRecorder: httptest.NewRecorder(), cancel: cancel}
	app.Server.ServeHTTP(w, req)
	require.Equal(t, 202, w.Code, w.Body.String())
	require.Equal(t, 1, messagesOf(t, a.ID))

	again := app.Do("POST", "/v1/messages", a.Key, body, "Idempotency-Key", key)
	require.Equalf(t, 202, again.Status, "body: %s", again.Body)
	require.Equal(t, "true", again.Header.Get("Idempotent-Replayed"))
	require.JSONEq(t, w.Body.String(), string(again.Body))
	// Nor once a stale reservation would have been taken over.
	app.Clock.Advance(11 * time.Minute)
	require.Equal(t, "true", app.Do("POST", "/v1/messages", a.Key, body, "Idempotency-Key", key).Header.Get("Idempotent-Replayed"))
	require.Equal(t, 1, messagesOf(t, a.ID))
}
