package intake_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/internal/testapp"
	"github.com/errandhq/errand/jobs"
)

const sendTimeout = 10 * time.Second

// waitForStatus polls the API until the message has status want.
func waitForStatus(t *testing.T, app *testapp.App, key, id, want string) message {
	t.Helper()
	var m message
	app.Eventually(sendTimeout, "message "+id+" to be "+want, func() bool {
		m = getMessage(t, app, key, id)
		return m.Status == want
	})
	return m
}

// taskState is the asynq state of a message's task, or "" when asynq does
// not hold one.
func taskState(t *testing.T, app *testapp.App, tenant uuid.UUID, id string) string {
	t.Helper()
	job := jobs.NewMessageSendJob(tenant, app.MustUUID(id), "manual")
	info, err := app.Inspector.GetTaskInfo(job.Queue, job.ID)
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return ""
	}
	require.NoError(t, err)
	return info.State.String()
}

func TestMessageCreateQueuesOrSchedules(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("messages")
	putContact(t, app, a.Key, "c1", map[string]any{"name": "Pat", "phone": "(312) 555-0142"})
	now := app.Clock.Now()

	cases := []struct {
		name       string
		sendAt     any // nil: not sent
		wantStatus string
		wantSendAt time.Time
	}{
		{"immediate", nil, "queued", now},
		{"in the future", now.Add(2 * time.Hour).Format(time.RFC3339), "scheduled", now.Add(2 * time.Hour).Truncate(time.Second)},
		{"in another zone", now.Add(3 * time.Hour).In(time.FixedZone("CDT", -5*3600)).Format(time.RFC3339), "scheduled",
			now.Add(3 * time.Hour).Truncate(time.Second)},
		{"almost a year ahead", now.Add(364 * 24 * time.Hour).Format(time.RFC3339), "scheduled", now.Add(364 * 24 * time.Hour).Truncate(time.Second)},
		{"in the past means now", now.Add(-time.Hour).Format(time.RFC3339), "queued", now},
		{"empty means now", "", "queued", now},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := map[string]any{"contact_id": "c1", "channel": "sms", "body": "Your tech is booked."}
			if c.sendAt != nil {
				body["send_at"] = c.sendAt
			}
			resp := app.Do("POST", "/v1/messages", a.Key, body)
			require.Equalf(t, 202, resp.Status, "body: %s", resp.Body)
			created := decodeAs[struct {
				ID     string    `json:"id"`
				Status string    `json:"status"`
				SendAt time.Time `json:"send_at"`
			}](t, resp)
			require.Equal(t, c.wantStatus, created.Status)
			app.MustUUID(created.ID)

			got := getMessage(t, app, a.Key, created.ID)
			require.Equal(t, created.ID, got.ID)
			require.Equal(t, c.wantStatus, got.Status)
			require.Equal(t, "sms", got.Channel)
			require.Equal(t, "c1", *got.ContactID, "the contact is named by its external ID")
			sendAt, err := time.Parse(time.RFC3339, got.SendAt)
			require.NoError(t, err)
			require.True(t, c.wantSendAt.Equal(sendAt), "send_at %s, want %s", sendAt, c.wantSendAt)
			require.Nil(t, got.SentAt)
			require.Nil(t, got.ProviderMessageID)
			require.Nil(t, got.Error)
		})
	}
	require.Equal(t, len(cases), count(t, "SELECT count(*) FROM messages WHERE tenant_id = $1", a.ID))
}

func TestMessageValidation(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("message-validation")
	putContact(t, app, a.Key, "c1", map[string]any{"name": "Pat", "phone": "+13125550142", "email": "pat@example.com"})
	now := app.Clock.Now()

	cases := []struct {
		name   string
		body   map[string]any
		fields []string
	}{
		{"everything wrong at once", map[string]any{"channel": "fax", "body": "", "send_at": "tomorrow"},
			[]string{"contact_id", "channel", "body", "send_at"}},
		{"unknown channel", map[string]any{"contact_id": "c1", "channel": "fax", "body": "hi"}, []string{"channel"}},
		{"no channel", map[string]any{"contact_id": "c1", "body": "hi"}, []string{"channel"}},
		{"channel in capitals", map[string]any{"contact_id": "c1", "channel": "SMS", "body": "hi"}, []string{"channel"}},
		{"empty body", map[string]any{"contact_id": "c1", "channel": "sms", "body": ""}, []string{"body"}},
		{"blank body", map[string]any{"contact_id": "c1", "channel": "email", "body": " \n\t "}, []string{"body"}},
		{"text too long", map[string]any{"contact_id": "c1", "channel": "sms", "body": strings.Repeat("a", 1601)}, []string{"body"}},
		{"NUL in the body", map[string]any{"contact_id": "c1", "channel": "sms", "body": "a\x00b"}, []string{"body"}},
		{"subject on a text", map[string]any{"contact_id": "c1", "channel": "sms", "subject": "Hi", "body": "hi"}, []string{"subject"}},
		{"subject too long", map[string]any{"contact_id": "c1", "channel": "email", "subject": strings.Repeat("s", 201), "body": "hi"}, []string{"subject"}},
		{"NUL in the subject", map[string]any{"contact_id": "c1", "channel": "email", "subject": "a\x00b", "body": "hi"}, []string{"subject"}},
		{"send_at not RFC 3339", map[string]any{"contact_id": "c1", "channel": "sms", "body": "hi", "send_at": "2030-05-01 15:04:05"}, []string{"send_at"}},
		{"send_at without a zone", map[string]any{"contact_id": "c1", "channel": "sms", "body": "hi", "send_at": "2030-05-01T15:04:05"}, []string{"send_at"}},
		{"send_at over a year ahead", map[string]any{"contact_id": "c1", "channel": "sms", "body": "hi",
			"send_at": now.Add(400 * 24 * time.Hour).Format(time.RFC3339)}, []string{"send_at"}},
		{"no contact", map[string]any{"channel": "sms", "body": "hi"}, []string{"contact_id"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			requireFields(t, app.Do("POST", "/v1/messages", a.Key, c.body), c.fields...)
		})
	}

	for _, id := range []string{"nobody", "C1", "c1\x01"} {
		e := requireError(t, app.Do("POST", "/v1/messages", a.Key, map[string]any{"contact_id": id, "channel": "sms", "body": "hi"}), 404, "not_found")
		require.Equal(t, map[string]string{"contact_id": "no such contact"}, e.Error.Details)
	}
	require.Equal(t, 0, count(t, "SELECT count(*) FROM messages WHERE tenant_id = $1", a.ID))
}

func TestMessageGetUnknownIs404(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("unknown-message")

	for _, id := range []string{uuid.NewString(), "not-a-uuid", "00000000-0000-0000-0000-000000000000"} {
		requireError(t, app.Do("GET", "/v1/messages/"+id, a.Key, nil), 404, "not_found")
		requireError(t, app.Do("DELETE", "/v1/messages/"+id, a.Key, nil), 404, "not_found")
	}
}

func TestSMSIsSentToTheContactsNumber(t *testing.T) {
	app := testapp.New(t)
	app.StartWorker(4)
	a := app.NewTenant("sms")
	putContact(t, app, a.Key, "c1", map[string]any{"name": "Pat", "phone": "(312) 555-0142"})

	id, status := postMessage(t, app, a.Key, map[string]any{"contact_id": "c1", "channel": "sms", "body": "Your tech arrives at 3pm."})
	require.Equal(t, "queued", status)
	sent := waitForStatus(t, app, a.Key, id, "sent")

	texts := app.Twilio.Messages()
	require.Len(t, texts, 1)
	require.Equal(t, "+13125550142", texts[0].To)
	require.Equal(t, "Your tech arrives at 3pm.", texts[0].Body)
	require.NotNil(t, sent.ProviderMessageID)
	require.Equal(t, texts[0].SID, *sent.ProviderMessageID)
	require.NotNil(t, sent.SentAt)
	require.Nil(t, sent.Error)
	require.Zero(t, app.Resend.Count())

	// Once sent it can no longer be cancelled.
	e := requireError(t, app.Do("DELETE", "/v1/messages/"+id, a.Key, nil), 409, "message_not_cancellable")
	require.Contains(t, e.Error.Message, "sent")
	require.Equal(t, "sent", getMessage(t, app, a.Key, id).Status)
}

func TestTextToAContactWithoutAPhoneIsSuppressed(t *testing.T) {
	app := testapp.New(t)
	app.StartWorker(2)
	a := app.NewTenant("no-phone")
	putContact(t, app, a.Key, "c1", map[string]any{"name": "Pat", "email": "pat@example.com"})

	id, _ := postMessage(t, app, a.Key, map[string]any{"contact_id": "c1", "channel": "sms", "body": "hello"})
	m := waitForStatus(t, app, a.Key, id, "suppressed")
	require.NotNil(t, m.Error)
	require.Zero(t, app.Twilio.Count())
	requireError(t, app.Do("DELETE", "/v1/messages/"+id, a.Key, nil), 409, "message_not_cancellable")
}

func TestEmailIsSentToTheContactsAddress(t *testing.T) {
	app := testapp.New(t)
	app.StartWorker(4)
	a := app.NewTenant("Sparkle Cleaning")
	putContact(t, app, a.Key, "c1", map[string]any{"name": "Pat", "email": "Pat@Example.COM"})

	withSubject, _ := postMessage(t, app, a.Key, map[string]any{"contact_id": "c1", "channel": "email",
		"subject": "Your visit", "body": "See you Tuesday."})
	withoutSubject, _ := postMessage(t, app, a.Key, map[string]any{"contact_id": "c1", "channel": "email",
		"body": "Thanks for having us."})
	first := waitForStatus(t, app, a.Key, withSubject, "sent")
	second := waitForStatus(t, app, a.Key, withoutSubject, "sent")

	emails := map[string]fakes.ResendEmail{}
	for _, e := range app.Resend.Emails() {
		require.Equal(t, []string{"Pat@example.com"}, e.To)
		emails[e.Text] = e
	}
	require.Len(t, emails, 2)
	require.Equal(t, "Your visit", emails["See you Tuesday."].Subject)
	require.Equal(t, "A message from Sparkle Cleaning", emails["Thanks for having us."].Subject)
	require.Equal(t, emails["See you Tuesday."].ID, *first.ProviderMessageID)
	require.Equal(t, emails["Thanks for having us."].ID, *second.ProviderMessageID)
	require.Equal(t, "email", first.Channel)
	require.Zero(t, app.Twilio.Count())
}

func TestCancelledMessageIsNeverSent(t *testing.T) {
	app := testapp.New(t)
	app.StartWorker(4)
	a := app.NewTenant("cancel")
	putContact(t, app, a.Key, "c1", map[string]any{"name": "Pat", "phone": "+13125550142"})
	// The dispatcher has been running (its first scan marks Redis as
	// holding Errand's tasks).
	_, err := app.Dispatcher.Scan(context.Background())
	require.NoError(t, err)

	// Both are due within the dispatcher's horizon, so both have a task
	// waiting in asynq; only one is cancelled.
	sendAt := app.Clock.Now().Add(5 * time.Minute).Format(time.RFC3339)
	cancelled, status := postMessage(t, app, a.Key, map[string]any{"contact_id": "c1", "channel": "sms", "body": "cancel me", "send_at": sendAt})
	require.Equal(t, "scheduled", status)
	kept, _ := postMessage(t, app, a.Key, map[string]any{"contact_id": "c1", "channel": "sms", "body": "keep me", "send_at": sendAt})
	require.Equal(t, "scheduled", taskState(t, app, a.ID, cancelled))
	require.Equal(t, "scheduled", taskState(t, app, a.ID, kept))

	resp := app.Do("DELETE", "/v1/messages/"+cancelled, a.Key, nil)
	require.Equalf(t, 200, resp.Status, "body: %s", resp.Body)
	require.Equal(t, "cancelled", decodeAs[message](t, resp).Status)
	require.Equal(t, "cancelled", getMessage(t, app, a.Key, cancelled).Status)
	require.Empty(t, taskState(t, app, a.ID, cancelled), "the cancelled message's task is gone from asynq")
	require.Equal(t, "scheduled", taskState(t, app, a.ID, kept))

	e := requireError(t, app.Do("DELETE", "/v1/messages/"+cancelled, a.Key, nil), 409, "message_not_cancellable")
	require.Contains(t, e.Error.Message, "cancelled")

	// Past the send time, the dispatcher's scan sends what is due …
	app.Clock.Advance(10 * time.Minute)
	res, err := app.Dispatcher.Scan(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, res.Rekicked, "only the message still scheduled is due")
	waitForStatus(t, app, a.Key, kept, "sent")
	// … and a second scan finds nothing more to do.
	_, err = app.Dispatcher.Scan(context.Background())
	require.NoError(t, err)

	for _, m := range app.Twilio.Messages() {
		require.NotEqual(t, "cancel me", m.Body, "a cancelled message is never sent")
	}
	require.Equal(t, 1, app.Twilio.Count())
	got := getMessage(t, app, a.Key, cancelled)
	require.Equal(t, "cancelled", got.Status)
	require.Nil(t, got.SentAt)
}

func TestCancelFarFutureMessage(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("cancel-far")
	putContact(t, app, a.Key, "c1", map[string]any{"name": "Pat", "phone": "+13125550142"})

	id, _ := postMessage(t, app, a.Key, map[string]any{"contact_id": "c1", "channel": "sms", "body": "next month",
		"send_at": app.Clock.Now().Add(30 * 24 * time.Hour).Format(time.RFC3339)})
	require.Equal(t, 200, app.Do("DELETE", "/v1/messages/"+id, a.Key, nil).Status)

	// When its time comes the dispatcher does not pick it up.
	app.Clock.Advance(31 * 24 * time.Hour)
	res, err := app.Dispatcher.Scan(context.Background())
	require.NoError(t, err)
	require.Zero(t, res.Enqueued)
	require.Zero(t, res.Rekicked)
	require.Empty(t, taskState(t, app, a.ID, id))
	require.Equal(t, "cancelled", getMessage(t, app, a.Key, id).Status)
}

// The contact is looked up by the insert itself, under the caller's
// row-level security: another tenant's contact ID is no contact at all.
func TestMessageCreateToAnotherTenantsContactIs404(t *testing.T) {
	app := testapp.New(t)
	a, b := app.NewTenant("msg-owner"), app.NewTenant("msg-other")
	putContact(t, app, a.Key, "only-a", map[string]any{"name": "Pat", "phone": "+13125550100"})
	e := requireError(t, app.Do("POST", "/v1/messages", b.Key, map[string]any{"contact_id": "only-a", "channel": "sms", "body": "hi"}), 404, "not_found")
	require.Equal(t, map[string]string{"contact_id": "no such contact"}, e.Error.Details)
	require.Equal(t, 0, count(t, "SELECT count(*) FROM messages WHERE tenant_id IN ($1, $2)", a.ID, b.ID))
	resp := app.Do("POST", "/v1/messages", a.Key, map[string]any{"contact_id": "only-a", "channel": "sms", "body": "hi"})
	require.Equal(t, 202, resp.Status)
	require.Equal(t, 1, count(t, "SELECT count(*) FROM messages WHERE tenant_id = $1 AND status = 'queued' AND enqueued_at IS NOT NULL", a.ID))
}

// A message back in line after an attempt whose outcome is unknown (the
// provider may have accepted it) cannot simply be cancelled: DELETE
// records the request (202), and the message's next run asks Twilio. If
// Twilio has the text the row says sent; if not, cancelled. It is never
// sent again either way.
func TestCancellingAClaimedMessageAsksTheProviderFirst(t *testing.T) {
	for _, c := range []struct {
		name     string
		accepted bool
		want     string
	}{
		{"the provider had accepted it", true, "sent"},
		{"the provider never had it", false, "cancelled"},
	} {
		t.Run(c.name, func(t *testing.T) {
			app := testapp.New(t)
			s := newShop(t, app, "Acme Repair")
			r := s.do(t, "POST", "/v1/messages", map[string]any{"contact_id": "cust-1", "channel": "sms", "body": "See you at 9"})
			require.Equal(t, 202, r.Status, string(r.Body))
			id := r.JSON()["id"].(string)
			app.Twilio.FailNext(1, fakes.Fault{AcceptThenFail: c.accepted, Status: 500})
			require.Error(t, runSend(t, app, s.tenant.ID, id, "manual"))
			m := s.message(t, id)
			require.Equal(t, "queued", m.Status, "back in line for a retry")
			require.NotNil(t, m.ClaimedAt)

			del := s.do(t, "DELETE", "/v1/messages/"+id, nil)
			require.Equal(t, 202, del.Status, string(del.Body))
			require.Equal(t, "queued", del.JSON()["status"])
			require.NotEmpty(t, del.JSON()["cancel_requested_at"])
			require.Equal(t, 202, s.do(t, "DELETE", "/v1/messages/"+id, nil).Status, "asking again changes nothing")

			require.NoError(t, runSend(t, app, s.tenant.ID, id, "manual"))
			m = s.message(t, id)
			require.Equal(t, c.want, m.Status)
			accepted := 0
			if c.accepted {
				accepted = 1
				require.Equal(t, app.Twilio.Messages()[0].SID, *m.ProviderMessageID)
			}
			require.Len(t, app.Twilio.Messages(), accepted, "never sent after the cancellation")
			require.NoError(t, runSend(t, app, s.tenant.ID, id, "manual"))
			require.Len(t, app.Twilio.Messages(), accepted, "a later run does nothing")
			requireError(t, s.do(t, "DELETE", "/v1/messages/"+id, nil), 409, "message_not_cancellable")
		})
	}
}
