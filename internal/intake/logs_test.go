package intake_test

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/internal/testapp"
	"github.com/errandhq/errand/jobs"
)

// logLines decodes the app's JSON log lines.
func logLines(t *testing.T, app *testapp.App) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(app.Logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), "not a JSON log line: %s", sc.Text())
		lines = append(lines, l)
	}
	return lines
}

// A real request and the job it starts log through the ordinary stack:
// the intake's request lines carry the request's ID, and the worker's
// lines — the handler's own and the observe middleware's — carry the job's.
func TestLogLinesCarryRequestAndJobIDs(t *testing.T) {
	app := testapp.New(t)
	tenant := app.NewTenant("Log IDs")
	app.StartWorker(2)
	app.Twilio.FailNext(1, fakes.Fault{Status: 500}) // one failed run, so the middleware logs too

	resp := app.Do("PUT", "/v1/contacts/c-logs", tenant.Key, map[string]any{"name": "Pat", "phone": "+13125550142"},
		"X-Request-Id", "req-contact-1")
	require.Equal(t, 201, resp.Status, string(resp.Body))
	resp = app.Do("POST", "/v1/messages", tenant.Key, map[string]any{"contact_id": "c-logs", "channel": "sms", "body": "hello"},
		"X-Request-Id", "req-message-1")
	require.Equal(t, 202, resp.Status, string(resp.Body))
	id := app.MustUUID(resp.JSON()["id"])
	app.Eventually(10*time.Second, "sent", func() bool { return app.Message(tenant.ID, id).Status == "sent" })
	jobID := jobs.NewMessageSendJob(tenant.ID, id, "manual").ID

	byMsg := map[string][]map[string]any{}
	for _, l := range logLines(t, app) {
		msg, _ := l["msg"].(string)
		byMsg[msg] = append(byMsg[msg], l)
	}

	requestIDs := map[string]string{}
	require.NotEmpty(t, byMsg["request"], "the intake logs its requests")
	for _, l := range byMsg["request"] {
		rid, _ := l["request_id"].(string)
		require.NotEmpty(t, rid, "request line without request_id: %v", l)
		require.NotContains(t, l, "job_id", "a request line is no job's")
		requestIDs[l["route"].(string)] = rid
	}
	require.Equal(t, "req-contact-1", requestIDs["PUT /v1/contacts/{external_id}"])
	require.Equal(t, "req-message-1", requestIDs["POST /v1/messages"])

	for _, msg := range []string{"job did not succeed", "message sent"} {
		require.Len(t, byMsg[msg], 1, "one %q line", msg)
		l := byMsg[msg][0]
		require.Equal(t, jobID, l["job_id"], "%q line: %v", msg, l)
		require.Equal(t, jobs.TypeMessageSend, l["job_type"], "%q line: %v", msg, l)
	}
}
