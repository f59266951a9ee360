package intake_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/internal/testapp"
	"github.com/errandhq/errand/internal/testenv"
)

const ourNumber = "+15005550006"

// sendText and sendEmail create a manual message to cust-1 and wait until
// it is sent or not sent.
func (s shop) sendText(t *testing.T, body string) db.Message {
	t.Helper()
	return s.send(t, "sms", body)
}

func (s shop) sendEmail(t *testing.T, body string) db.Message {
	t.Helper()
	return s.send(t, "email", body)
}

func (s shop) send(t *testing.T, channel, body string) db.Message {
	t.Helper()
	r := s.do(t, http.MethodPost, "/v1/messages", map[string]any{"contact_id": "cust-1", "channel": channel, "body": body})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	id := r.JSON()["id"].(string)
	s.waitStatus(t, []string{id}, "sent", "suppressed", "failed")
	return s.message(t, id)
}

// STOP and its synonyms, in any case and with spaces around, opt the
// number out for the tenant; START and its synonyms opt it back in; HELP
// is recorded. Each is kept as a record: who (a pseudonym), when, what
// was said, from where.
func TestInboundKeywordsOptOutAndIn(t *testing.T) {
	cases := []struct {
		body   string
		action string
	}{
		{"STOP", "opt_out"}, {" stop ", "opt_out"}, {"StopAll", "opt_out"}, {"unsubscribe", "opt_out"},
		{"CANCEL", "opt_out"}, {"end", "opt_out"}, {"Quit\n", "opt_out"},
		{"START", "opt_in"}, {"unstop", "opt_in"}, {" yes", "opt_in"},
		{"HELP", "help"},
	}
	for _, c := range cases {
		t.Run(strings.TrimSpace(c.body), func(t *testing.T) {
			app := testapp.New(t)
			s := newShop(t, app, "Acme Repair")
			other := newShop(t, app, "Unrelated Co") // has no contact with this number
			other.putContact(t, "cust-1", map[string]any{"name": "Someone Else", "phone": "+13125550199"})
			app.StartWorker(2)
			if c.action == "opt_in" {
				status, err := app.Twilio.Inbound(app.URL+"/webhooks/twilio/inbound", custPhone, ourNumber, "STOP")
				require.NoError(t, err)
				require.Equal(t, 200, status)
			}
			status, err := app.Twilio.Inbound(app.URL+"/webhooks/twilio/inbound", custPhone, ourNumber, c.body)
			require.NoError(t, err)
			require.Equal(t, 200, status)

			events := suppressionEvents(t, app, s.tenant.ID, "sms", custPhone)
			last := events[len(events)-1]
			require.Equal(t, c.action, last.Action)
			require.Equal(t, strings.ToUpper(strings.TrimSpace(c.body)), last.Keyword)
			require.Equal(t, "twilio_inbound", last.Source)
			require.True(t, strings.HasPrefix(last.Reference, "SM"))
			require.Empty(t, suppressionEvents(t, app, other.tenant.ID, "sms", custPhone), "only tenants that know the number")

			m := s.sendText(t, "Your visit is tomorrow")
			if c.action == "opt_out" {
				require.Equal(t, "suppressed", m.Status)
				require.Equal(t, "recipient opted out", *m.Error)
				require.Zero(t, app.Twilio.Count())
			} else {
				require.Equal(t, "sent", m.Status)
			}
			require.Equal(t, "sent", s.sendEmail(t, "Same by email").Status, "an SMS opt-out leaves email alone")
		})
	}
}

// A number with a dedicated webhook URL (?tenant_id=) opts out of that
// tenant only; an ordinary reply is not a keyword; a redelivered webhook
// is recorded once.
func TestInboundForOneTenantAndReplays(t *testing.T) {
	app := testapp.New(t)
	a, b := newShop(t, app, "Acme Repair"), newShop(t, app, "Bolt Plumbing")
	target := app.URL + "/webhooks/twilio/inbound?tenant_id=" + a.tenant.ID.String()
	form := url.Values{"MessageSid": {"SM0123"}, "From": {custPhone}, "To": {ourNumber}, "Body": {"STOP"}}
	for range 2 {
		status, err := fakes.PostTwilioForm(target, app.Twilio.AuthToken, form)
		require.NoError(t, err)
		require.Equal(t, 200, status)
	}
	require.Len(t, suppressionEvents(t, app, a.tenant.ID, "sms", custPhone), 1, "a replay is recorded once")
	require.Empty(t, suppressionEvents(t, app, b.tenant.ID, "sms", custPhone))
	unknown := app.URL + "/webhooks/twilio/inbound?tenant_id=00000000-0000-0000-0000-000000000001"
	status, err := fakes.PostTwilioForm(unknown, app.Twilio.AuthToken, form)
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, status)

	status, err = app.Twilio.Inbound(app.URL+"/webhooks/twilio/inbound", custPhone, ourNumber, "stop texting me at night")
	require.NoError(t, err)
	require.Equal(t, 200, status)
	require.Empty(t, suppressionEvents(t, app, b.tenant.ID, "sms", custPhone), "not a keyword")
}

// A forged or misdirected signature is refused with 403, changes nothing
// and is written to the security log.
func TestForgedTwilioWebhooksAreRefused(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	form := url.Values{"MessageSid": {"SM1"}, "From": {custPhone}, "To": {ourNumber}, "Body": {"STOP"}}
	target := app.URL + "/webhooks/twilio/inbound"
	cases := map[string]string{
		"wrong token":      fakes.SignTwilio("not-the-token", target, form),
		"other url":        fakes.SignTwilio(app.Twilio.AuthToken, "https://evil.example/webhooks/twilio/inbound", form),
		"no signature":     "",
		"tampered params":  fakes.SignTwilio(app.Twilio.AuthToken, target, url.Values{"MessageSid": {"SM1"}, "From": {custPhone}, "Body": {"START"}}),
		"signature for ?x": fakes.SignTwilio(app.Twilio.AuthToken, target+"?tenant_id="+s.tenant.ID.String(), form),
	}
	for name, sig := range cases {
		req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusForbidden, resp.StatusCode, name)
	}
	require.Empty(t, suppressionEvents(t, app, s.tenant.ID, "sms", custPhone))
	r := app.Do(http.MethodGet, "/admin/v1/security-events?kind=webhook_signature_invalid", app.AdminToken, nil)
	require.Len(t, r.JSON()["events"], len(cases))
	require.NotContains(t, string(r.Body), custPhone)

	// Status callbacks too.
	status, err := fakes.PostTwilioForm(app.URL+"/webhooks/twilio/status", "not-the-token",
		url.Values{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}})
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, status)
}

// Delivery reports move a message forward only: a late "sent" after
// "delivered" changes nothing, a repeat changes nothing, and a report that
// arrives before the worker recorded the send still lands.
func TestDeliveryStatusCallbacks(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	app.StartWorker(2)
	m := s.sendText(t, "Your tech is on the way")
	require.Equal(t, "sent", m.Status)
	sid := *m.ProviderMessageID
	report := func(status string, code int) {
		t.Helper()
		got, err := app.Twilio.Report(sid, status, code)
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, got)
	}
	report("queued", 0)
	require.Equal(t, "sent", s.message(t, m.ID.String()).Status)
	report("delivered", 0)
	got := s.message(t, m.ID.String())
	require.Equal(t, "delivered", got.Status)
	require.NotNil(t, got.DeliveredAt)
	report("sent", 0)
	report("undelivered", 30003)
	report("delivered", 0)
	again := s.message(t, m.ID.String())
	require.Equal(t, "delivered", again.Status, "a late report never moves a message back")
	require.Equal(t, got.DeliveredAt, again.DeliveredAt)

	failed := s.sendText(t, "Second text")
	got2, err := app.Twilio.Report(*failed.ProviderMessageID, "undelivered", 30005)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, got2)
	f := s.message(t, failed.ID.String())
	require.Equal(t, "undelivered", f.Status)
	require.Equal(t, "the carrier did not deliver it (twilio error 30005)", *f.Error)

	// The report arrives while the worker has not recorded the send yet
	// (the row still says sending): it lands, and the worker's late
	// record does not undo it.
	early := s.sendText(t, "Third text")
	_, err = testenv.Owner(t).Exec(context.Background(),
		"UPDATE messages SET status = 'sending', provider_message_id = NULL, sent_at = NULL WHERE id = $1", early.ID)
	require.NoError(t, err)
	status, err := app.Twilio.Report(*early.ProviderMessageID, "delivered", 0)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, status)
	e := s.message(t, early.ID.String())
	require.Equal(t, "delivered", e.Status)
	require.Equal(t, early.ProviderMessageID, e.ProviderMessageID)
	require.NoError(t, app.Store.InTenant(context.Background(), s.tenant.ID, func(q *db.Queries) error {
		return q.MessageMarkSent(context.Background(), db.MessageMarkSentParams{TenantID: s.tenant.ID, ID: early.ID,
			ProviderMessageID: early.ProviderMessageID, Now: app.Clock.Now()})
	}))
	require.Equal(t, "delivered", s.message(t, early.ID.String()).Status)
}

// A carrier's 21610 in a delivery report opts the number out too, and
// ends the message suppressed (the recipient had opted out), as a 21610
// at send time does.
func TestFailedReportWith21610Suppresses(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	app.StartWorker(2)
	m := s.sendText(t, "Hello")
	status, err := app.Twilio.Report(*m.ProviderMessageID, "failed", 21610)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, status)
	got := s.message(t, m.ID.String())
	require.Equal(t, "suppressed", got.Status, "not delivered because the recipient opted out: suppressed, as at send time")
	require.Equal(t, "recipient opted out (the carrier refused: unsubscribed)", *got.Error)
	events := suppressionEvents(t, app, s.tenant.ID, "sms", custPhone)
	require.Len(t, events, 1)
	require.Equal(t, "twilio_21610", events[0].Source)
	require.Equal(t, "suppressed", s.sendText(t, "Again").Status)
}

// Resend's bounces and complaints suppress the address for the tenant
// that sent to it; the Svix signature is checked, a timestamp more than
// five minutes off is refused, and a replayed svix-id is processed once.
func TestResendWebhooks(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	app.StartWorker(2)
	m := s.sendEmail(t, "Your visit is confirmed")
	require.Equal(t, "sent", m.Status)
	emailID := *m.ProviderMessageID
	target := app.URL + "/webhooks/resend"
	post := func(eventType, id string, at time.Time, secret string) int {
		t.Helper()
		payload := fakes.ResendEvent(eventType, emailID, custEmail, at)
		status, err := fakes.PostSvix(target, fakes.SignSvix(secret, id, at, payload), payload)
		require.NoError(t, err)
		return status
	}
	now := app.Clock.Now()

	require.Equal(t, http.StatusForbidden, post("email.bounced", fakes.NewSvixID(), now, fakes.NewSvixSecret()), "forged")
	require.Equal(t, http.StatusForbidden, post("email.bounced", fakes.NewSvixID(), now.Add(-6*time.Minute), app.ResendWebhookSecret), "stale")
	require.Equal(t, http.StatusForbidden, post("email.bounced", fakes.NewSvixID(), now.Add(6*time.Minute), app.ResendWebhookSecret), "from the future")
	payload := fakes.ResendEvent("email.bounced", emailID, custEmail, now)
	h := fakes.SignSvix(app.ResendWebhookSecret, fakes.NewSvixID(), now, payload)
	tampered := append([]byte(nil), payload...)
	tampered[len(tampered)-2] = ' '
	status, err := fakes.PostSvix(target, h, tampered)
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, status, "tampered body")
	require.Empty(t, suppressionEvents(t, app, s.tenant.ID, "email", custEmail))
	require.Equal(t, "sent", s.message(t, m.ID.String()).Status)

	require.Equal(t, http.StatusNoContent, post("email.delivered", fakes.NewSvixID(), now.Add(-4*time.Minute), app.ResendWebhookSecret))
	require.Equal(t, "delivered", s.message(t, m.ID.String()).Status)

	bounce := fakes.NewSvixID()
	for range 3 {
		require.Equal(t, http.StatusNoContent, post("email.bounced", bounce, now, app.ResendWebhookSecret))
	}
	events := suppressionEvents(t, app, s.tenant.ID, "email", custEmail)
	require.Len(t, events, 1, "a replayed delivery is processed once")
	require.Equal(t, "opt_out", events[0].Action)
	require.Equal(t, "bounced", events[0].Keyword)
	require.Equal(t, "resend_webhook", events[0].Source)
	next := s.sendEmail(t, "Another")
	require.Equal(t, "suppressed", next.Status)
	require.Equal(t, "email address bounced", *next.Error)
	require.Equal(t, "sent", s.sendText(t, "By text still").Status, "an email bounce leaves SMS alone")

	// A complaint about an email of another tenant suppresses for that one.
	other := newShop(t, app, "Bolt Plumbing")
	om := other.sendEmail(t, "Hello from Bolt")
	payload = fakes.ResendEvent("email.complained", *om.ProviderMessageID, custEmail, now)
	status, err = fakes.PostSvix(target, fakes.SignSvix(app.ResendWebhookSecret, fakes.NewSvixID(), now, payload), payload)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, status)
	oe := suppressionEvents(t, app, other.tenant.ID, "email", custEmail)
	require.Len(t, oe, 1)
	require.Equal(t, "complained", oe[0].Keyword)
	require.Len(t, suppressionEvents(t, app, s.tenant.ID, "email", custEmail), 1, "unchanged")
}

// A message a worker ended without the provider's word (cancelled,
// failed or suppressed after an attempt that may have reached Twilio)
// gives way to Twilio's report: it is Twilio's own account of the text.
func TestReportLandsOnAMessageEndedAfterAnUnconfirmedAttempt(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	r := s.do(t, http.MethodPost, "/v1/messages", map[string]any{"contact_id": "cust-1", "channel": "sms", "body": "See you at 9"})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	id := r.JSON()["id"].(string)
	app.Twilio.FailNext(1, fakes.Fault{AcceptThenFail: true, Status: 500})
	require.Error(t, runSend(t, app, s.tenant.ID, id, "manual"))
	_, err := testenv.Owner(t).Exec(context.Background(), "UPDATE messages SET status = 'failed' WHERE id = $1", app.MustUUID(id))
	require.NoError(t, err)
	status, err := app.Twilio.Report(app.Twilio.Messages()[0].SID, "delivered", 0)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, status)
	got := s.message(t, id)
	require.Equal(t, "delivered", got.Status)
	require.Equal(t, app.Twilio.Messages()[0].SID, *got.ProviderMessageID)

	// A message finished by a report is not reopened by a later one.
	status, err = app.Twilio.Report(app.Twilio.Messages()[0].SID, "sent", 0)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, status)
	require.Equal(t, "delivered", s.message(t, id).Status)
}

// A STOP texted to the shared number from a number no tenant knows (an
// erased contact, one not imported yet) is kept all the same, under its
// pseudonym, for the shared number: a tenant that adds the number later
// does not text it. START lifts it; a replay is recorded once.
func TestInboundStopFromAnUnknownNumberIsKept(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	app.StartWorker(2)
	const stranger = "+13125550177"
	inbound := func(body, sid string) {
		t.Helper()
		form := url.Values{"MessageSid": {sid}, "From": {stranger}, "To": {ourNumber}, "Body": {body}}
		status, err := fakes.PostTwilioForm(app.URL+"/webhooks/twilio/inbound", app.Twilio.AuthToken, form)
		require.NoError(t, err)
		require.Equal(t, 200, status)
	}
	inbound("Stop", "SM-stop-1")
	inbound("Stop", "SM-stop-1") // redelivered
	events := suppressionEvents(t, app, db.SharedNumberTenant, "sms", stranger)
	require.Len(t, events, 1, "kept once, for the shared number")
	require.Equal(t, "opt_out", events[0].Action)
	require.Equal(t, "STOP", events[0].Keyword)
	require.Equal(t, "twilio_inbound", events[0].Source)
	require.Equal(t, "SM-stop-1", events[0].Reference)
	require.Zero(t, count(t, "SELECT count(*) FROM suppression_events WHERE address_hash = $1 AND tenant_id <> $2",
		app.Deps.Pseudonyms.Address("sms", stranger), db.SharedNumberTenant), "no tenant knew the number")
	require.NotContains(t, app.Logs.String(), stranger)

	// The number is added later (a PUT here; an import writes the same row).
	s.putContact(t, "cust-1", map[string]any{"name": "Pat Doe", "phone": stranger, "email": custEmail})
	m := s.sendText(t, "Spring special: 10% off")
	require.Equal(t, "suppressed", m.Status)
	require.Equal(t, "recipient opted out", *m.Error)
	require.Zero(t, app.Twilio.Count())

	inbound("START", "SM-start-1")
	require.Equal(t, "sent", s.sendText(t, "Spring special: 10% off").Status)
	events = suppressionEvents(t, app, db.SharedNumberTenant, "sms", stranger)
	require.Len(t, events, 2)
	require.Equal(t, "opt_in", events[1].Action)
}
