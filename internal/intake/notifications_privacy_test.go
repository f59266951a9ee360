package intake_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/internal/testapp"
)

// Names, numbers, addresses and message text never reach what ops see:
// Redis (asynqmon shows task payloads and errors) and the logs, whatever
// the notifications did: plan, send, fail, retry, hold, opt out, bounce.
func TestNotificationsKeepPersonalDataOutOfRedisAndLogs(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	s.putContact(t, "cust-1", map[string]any{"name": "Quincy Hollowell", "phone": custPhone, "email": custEmail,
		"address": "742 Evergreen Terrace"})
	s.putContact(t, "cust-2", map[string]any{"name": "Wilhelmina Night", "phone": "+13125550177", "timezone": nightZone(app)})
	app.StartWorker(2)
	app.Twilio.FailNext(1, fakes.Fault{Status: 429, RetryAfter: "1"})
	app.Resend.FailNext(1, fakes.Fault{Status: 422, Name: "validation_error"})

	startsAt := app.Clock.Now().Add(20 * time.Minute)
	r := s.putAppointment(t, "appt-1", startsAt, "scheduled", "technician", "Zebediah", "address", "Gate code 4411")
	require.Equal(t, 201, r.Status)
	require.Equal(t, 202, s.do(t, http.MethodPost, "/v1/appointments/appt-1/on-the-way", nil).Status)
	r = s.do(t, http.MethodPost, "/v1/messages", map[string]any{"contact_ids": []string{"cust-1", "cust-2"}, "channel": "sms",
		"body": "Open house on Elm Street"})
	require.Equal(t, 202, r.Status)
	app.Eventually(10*time.Second, "sends done", func() bool { return app.Twilio.Count() >= 3 })
	status, err := app.Twilio.Inbound(app.URL+"/webhooks/twilio/inbound", custPhone, ourNumber, "STOP")
	require.NoError(t, err)
	require.Equal(t, 200, status)
	for _, m := range app.Twilio.Messages() {
		_, err := app.Twilio.Report(m.SID, "undelivered", 30003)
		require.NoError(t, err)
	}
	payload := fakes.ResendEvent("email.bounced", "unknown-id", custEmail, app.Clock.Now())
	_, err = fakes.PostSvix(app.URL+"/webhooks/resend", fakes.SignSvix(app.ResendWebhookSecret, fakes.NewSvixID(), app.Clock.Now(), payload), payload)
	require.NoError(t, err)

	seen := app.DumpRedis() + "\n" + app.Logs.String()
	require.Contains(t, seen, "message:", "the dump holds the tasks")
	for _, secret := range []string{custPhone, "3125550142", "3125550177", custEmail, "Quincy", "Hollowell", "Wilhelmina",
		"Evergreen", "Gate code", "Zebediah", "Open house", "on the way", "Reply STOP"} {
		require.False(t, strings.Contains(seen, secret), "%q reached Redis or the logs", secret)
	}
}
