package main

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/notify"
)

var (
	adminTokenRe = regexp.MustCompile(`(?m)^\s+Admin token\s+(\S+)$`)
	apiKeyRe     = regexp.MustCompile(`(?m)^\s+API key\s+(ek_[0-9a-f]{12}_[A-Za-z0-9_-]{43})$`)
)

// TestDevEndToEnd runs `errand dev` as a newcomer would and follows one
// text from the intake through the worker to the development outbox.
func TestDevEndToEnd(t *testing.T) {
	const (
		name     = "Hortensia Vandermolen"
		phone    = "(312) 555-0187"
		e164     = "+13125550187"
		body     = "Your water heater visit is confirmed: e2e-body-4d2c"
		bodyMark = "e2e-body-4d2c"
	)
	p := start(t, devEnv(t), "dev")
	adminToken := p.waitFor(adminTokenRe, 10*time.Second)[1]
	key := p.waitFor(apiKeyRe, 10*time.Second)[1]
	p.waitFor(regexp.MustCompile(`errand dev: scheduler running`), 10*time.Second)

	status, out := call(t, http.MethodGet, p.URL+"/readyz", "", nil)
	require.Equal(t, http.StatusOK, status, "%s", out)
	require.Contains(t, p.stdout.String(), "DEVELOPMENT OUTBOX")

	// The contact lives where it is midday now, so quiet hours (21:00–08:00
	// in the recipient's zone) never hold this text, whenever the test runs.
	zone := notify.ZoneWhereItIs(time.Now(), 12)
	status, out = call(t, http.MethodPut, p.URL+"/v1/contacts/e2e-1", key, map[string]string{"name": name, "phone": phone, "timezone": zone})
	require.Equal(t, http.StatusCreated, status, "%s", out)
	require.Equal(t, e164, decodeJSON(t, out)["phone"])

	status, out = call(t, http.MethodPost, p.URL+"/v1/messages", key, map[string]string{
		"contact_id": "e2e-1", "channel": "sms", "body": body})
	require.Equal(t, http.StatusAccepted, status, "%s", out)
	id, _ := decodeJSON(t, out)["id"].(string)
	require.NotEmpty(t, id)

	var msg map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, out = call(t, http.MethodGet, p.URL+"/v1/messages/"+id, key, nil)
		require.Equal(t, http.StatusOK, status, "%s", out)
		msg = decodeJSON(t, out)
		if msg["status"] == "sent" {
			break
		}
		require.NotContains(t, []any{"failed", "suppressed", "cancelled"}, msg["status"], "%s", out)
		require.True(t, time.Now().Before(deadline), "message still %v after 30s: %s", msg["status"], out)
		time.Sleep(50 * time.Millisecond)
	}
	providerID, _ := msg["provider_message_id"].(string)
	require.True(t, strings.HasPrefix(providerID, "outbox-"), "provider_message_id %q", providerID)
	require.NotNil(t, msg["sent_at"])

	status, out = call(t, http.MethodGet, p.URL+"/monitoring/api/queues", "", nil,
		func(r *http.Request) { r.SetBasicAuth("ops", adminToken) })
	require.Equal(t, http.StatusOK, status, "%s", out)
	require.Contains(t, string(out), `"queue":"notifications"`)
	status, _ = call(t, http.MethodGet, p.URL+"/monitoring/api/queues", "", nil,
		func(r *http.Request) { r.SetBasicAuth("ops", adminToken+"x") })
	require.Equal(t, http.StatusUnauthorized, status)

	// Graceful shutdown: SIGTERM ends the context; run returns nil well
	// within ERRAND_SHUTDOWN_TIMEOUT (25s by default).
	began := time.Now()
	require.NoError(t, p.stop(30*time.Second))
	require.Less(t, time.Since(began), 25*time.Second)
	_, err := http.Get(p.URL + "/healthz")
	require.Error(t, err, "the listener must be closed after run returns")

	logs := p.stderr.String()
	require.Contains(t, logs, "dev outbox: message would have been sent", "the worker's log lines go to stderr")
	requireNoneOf(t, logs, "stderr (the logs)", name, "Hortensia", "Vandermolen", phone, e164, "5550187", body, bodyMark,
		adminToken, key)
	requireNoneOf(t, p.stdout.String(), "stdout", name, e164, bodyMark)
}
