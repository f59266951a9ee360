package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/internal/testapp"
)

// In a split deployment the job metrics live in the worker's process, so
// `errand worker` serves them itself on ERRAND_METRICS_ADDR, with
// /healthz and /readyz; so does `errand scheduler`.
func TestWorkerAndSchedulerServeOps(t *testing.T) {
	app := testapp.New(t) // the intake that takes the message; the worker below sends it
	tenant := app.NewTenant("Ops Listener")
	twilio := fakes.NewTwilio()
	t.Cleanup(twilio.Close)

	env := prodEnv(t)
	env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"] = twilio.AccountSID, twilio.AuthToken
	env["TWILIO_FROM_NUMBER"], env["TWILIO_API_BASE_URL"] = "+15005550006", twilio.URL
	env["ERRAND_METRICS_ADDR"] = "127.0.0.1:0"
	worker := start(t, env, "worker")
	scheduler := start(t, env, "scheduler")

	resp := app.Do("PUT", "/v1/contacts/c1", tenant.Key, map[string]any{"name": "Client", "phone": "+13125550100"})
	require.Equal(t, 201, resp.Status, string(resp.Body))
	resp = app.Do("POST", "/v1/messages", tenant.Key, map[string]any{"contact_id": "c1", "channel": "sms", "body": "metered"})
	require.Equal(t, 202, resp.Status, string(resp.Body))

	const succeeded = `errand_job_outcomes_total{outcome="succeeded",type="message:send"} 1`
	var metrics string
	app.Eventually(30*time.Second, "the worker's /metrics counting the send", func() bool {
		status, body := call(t, "GET", worker.URL+"/metrics", "", nil)
		metrics = string(body)
		return status == http.StatusOK && strings.Contains(metrics, succeeded)
	})
	require.Equal(t, 1, twilio.Count())
	require.Contains(t, metrics, `errand_job_duration_seconds_count{type="message:send"} 1`)

	for name, p := range map[string]*process{"worker": worker, "scheduler": scheduler} {
		status, body := call(t, "GET", p.URL+"/healthz", "", nil)
		require.Equal(t, http.StatusOK, status, "%s /healthz: %s", name, body)
		status, body = call(t, "GET", p.URL+"/readyz", "", nil)
		require.Equal(t, http.StatusOK, status, "%s /readyz: %s", name, body)
		require.JSONEq(t, `{"status":"ok","checks":{"postgres":"ok","redis":"ok"}}`, string(body), name)
		status, body = call(t, "GET", p.URL+"/metrics", "", nil)
		require.Equal(t, http.StatusOK, status, name)
		require.Contains(t, string(body), "errand_queue_scrape_ok 1", "%s reads the queue sizes", name)
		status, _ = call(t, "GET", p.URL+"/v1/messages", "", nil)
		require.Equal(t, http.StatusNotFound, status, "%s serves ops endpoints only", name)
	}
}
