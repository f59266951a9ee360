package intake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/testapp"
	"github.com/errandhq/errand/internal/testenv"
)

// apiError is the one shape every failure must have. Decoding it with
// unknown fields disallowed also proves nothing else is in the body.
type apiError struct {
	Error struct {
		Code      string            `json:"code"`
		Message   string            `json:"message"`
		Details   map[string]string `json:"details"`
		RequestID string            `json:"request_id"`
	} `json:"error"`
}

// requireError asserts resp is an error in the API's format with this
// status and code, whose request_id is the X-Request-Id header.
func requireError(t *testing.T, resp testapp.Response, status int, code string) apiError {
	t.Helper()
	require.Equalf(t, status, resp.Status, "body: %s", resp.Body)
	require.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
	dec := json.NewDecoder(bytes.NewReader(resp.Body))
	dec.DisallowUnknownFields()
	var e apiError
	require.NoErrorf(t, dec.Decode(&e), "error body: %s", resp.Body)
	require.Equalf(t, code, e.Error.Code, "body: %s", resp.Body)
	require.NotEmpty(t, e.Error.Message)
	require.NotEmpty(t, e.Error.RequestID)
	require.Equal(t, resp.Header.Get("X-Request-Id"), e.Error.RequestID)
	return e
}

// requireFields asserts resp is a 422 whose details name exactly these
// fields.
func requireFields(t *testing.T, resp testapp.Response, fields ...string) apiError {
	t.Helper()
	e := requireError(t, resp, 422, "invalid_fields")
	require.ElementsMatchf(t, fields, slices.Collect(maps.Keys(e.Error.Details)), "details: %v", e.Error.Details)
	for f, problem := range e.Error.Details {
		require.NotEmptyf(t, problem, "details.%s", f)
	}
	return e
}

// decodeAs decodes a success body into T.
func decodeAs[T any](t *testing.T, resp testapp.Response) T {
	t.Helper()
	var v T
	require.NoErrorf(t, json.Unmarshal(resp.Body, &v), "body: %s", resp.Body)
	return v
}

// contact is a contact as the API returns it.
type contact struct {
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	Phone     *string `json:"phone"`
	Email     *string `json:"email"`
	Timezone  *string `json:"timezone"`
	Address   *string `json:"address"`
	Notes     *string `json:"notes"`
	CreatedAt string  `json:"created_at"`
	UpdatedAt string  `json:"updated_at"`
}

// message is a message as GET /v1/messages/{id} returns it.
type message struct {
	ID                string  `json:"id"`
	ContactID         *string `json:"contact_id"`
	Channel           string  `json:"channel"`
	Status            string  `json:"status"`
	SendAt            string  `json:"send_at"`
	SentAt            *string `json:"sent_at"`
	ProviderMessageID *string `json:"provider_message_id"`
	Error             *string `json:"error"`
}

// putContact creates or replaces a contact and requires success.
func putContact(t *testing.T, app *testapp.App, key, externalID string, body map[string]any) contact {
	t.Helper()
	resp := app.Do("PUT", "/v1/contacts/"+externalID, key, body)
	require.Containsf(t, []int{200, 201}, resp.Status, "body: %s", resp.Body)
	return decodeAs[contact](t, resp)
}

// postMessage creates a message and requires 202.
func postMessage(t *testing.T, app *testapp.App, key string, body map[string]any, headers ...string) (id, status string) {
	t.Helper()
	resp := app.Do("POST", "/v1/messages", key, body, headers...)
	require.Equalf(t, 202, resp.Status, "body: %s", resp.Body)
	m := resp.JSON()
	id, _ = m["id"].(string)
	status, _ = m["status"].(string)
	require.NotEmpty(t, id)
	return id, status
}

// getMessage reads a message and requires 200.
func getMessage(t *testing.T, app *testapp.App, key, id string) message {
	t.Helper()
	resp := app.Do("GET", "/v1/messages/"+id, key, nil)
	require.Equalf(t, 200, resp.Status, "body: %s", resp.Body)
	return decodeAs[message](t, resp)
}

// count runs a count(*) query as the schema owner, past row-level
// security.
func count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, testenv.Owner(t).QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

// securityEvent is an entry of GET /admin/v1/security-events.
type securityEvent struct {
	ID        int64          `json:"id,string"`
	TenantID  *string        `json:"tenant_id"`
	Kind      string         `json:"kind"`
	Actor     string         `json:"actor"`
	RequestID string         `json:"request_id"`
	Detail    map[string]any `json:"detail"`
}

// findSecurityEvent pages back through the security log (other tests
// write to it concurrently) for the event of kind written by requestID.
func findSecurityEvent(t *testing.T, app *testapp.App, kind, requestID string) (securityEvent, bool) {
	t.Helper()
	before := ""
	for range 50 {
		path := "/admin/v1/security-events?kind=" + kind + before
		resp := app.Do("GET", path, app.AdminToken, nil)
		require.Equalf(t, 200, resp.Status, "body: %s", resp.Body)
		page := decodeAs[struct {
			Events []securityEvent `json:"events"`
		}](t, resp)
		for _, e := range page.Events {
			require.Equal(t, kind, e.Kind, "the kind filter applies")
			if e.RequestID == requestID {
				return e, true
			}
		}
		if len(page.Events) < 100 {
			return securityEvent{}, false
		}
		before = "&before=" + strconv.FormatInt(page.Events[len(page.Events)-1].ID, 10)
	}
	return securityEvent{}, false
}

// keyPrefix is the public part of an API key "ek_<prefix>_<secret>".
func keyPrefix(t *testing.T, key string) string {
	t.Helper()
	parts := strings.SplitN(key, "_", 3)
	require.Len(t, parts, 3, "API key shape")
	return parts[1]
}
