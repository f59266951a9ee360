package intake_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/internal/notify"
	"github.com/errandhq/errand/internal/ratelimit"
	"github.com/errandhq/errand/internal/testapp"
	"github.com/errandhq/errand/internal/testenv"
	"github.com/errandhq/errand/jobs"
)

// nightZone is a fixed-offset zone where the app's clock reads about
// 23:00 when the test starts: inside the default quiet hours.
func nightZone(app *testapp.App) string { return notify.ZoneWhereItIs(app.Clock.Now(), 23) }

// A batch is one message per contact, each tracked on its own: an
// opted-out recipient is suppressed, one in their quiet hours waits, the
// rest go now.
func TestBatchHonoursEachRecipient(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Realty Co")
	s.putContact(t, "cust-2", map[string]any{"name": "Night Owl", "phone": "+13125550143", "timezone": nightZone(app)})
	s.putContact(t, "cust-3", map[string]any{"name": "Opted Out", "phone": "+13125550144"})
	status, err := app.Twilio.Inbound(app.URL+"/webhooks/twilio/inbound", "+13125550144", ourNumber, "STOP")
	require.NoError(t, err)
	require.Equal(t, 200, status)
	app.StartWorker(2)

	r := s.do(t, http.MethodPost, "/v1/messages", map[string]any{"contact_ids": []string{"cust-1", "cust-2", "cust-3", "cust-1"},
		"channel": "sms", "body": "Happy home-iversary! Reply STOP to opt out."})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	require.EqualValues(t, 3, r.JSON()["count"], "each contact once")
	batch := r.JSON()["batch_id"].(string)
	counts := func() map[string]any {
		b := s.do(t, http.MethodGet, "/v1/message-batches/"+batch, nil)
		require.Equal(t, 200, b.Status, string(b.Body))
		return b.JSON()["counts"].(map[string]any)
	}
	app.Eventually(10*time.Second, "batch settled", func() bool {
		c := counts()
		return c["sent"] == 1.0 && c["suppressed"] == 1.0 && c["scheduled"] == 1.0
	})
	require.Equal(t, 1, app.Twilio.Count())
	require.Equal(t, custPhone, app.Twilio.Messages()[0].To)

	r = s.do(t, http.MethodDelete, "/v1/message-batches/"+batch, nil)
	require.Equal(t, 200, r.Status)
	require.EqualValues(t, 1, r.JSON()["cancelled"], "the one waiting for morning")
	require.Equal(t, map[string]any{"sent": 1.0, "suppressed": 1.0, "cancelled": 1.0}, counts())

	other := newShop(t, app, "Other Co")
	require.Equal(t, 404, other.do(t, http.MethodGet, "/v1/message-batches/"+batch, nil).Status)
}

func TestBatchValidation(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Realty Co")
	r := s.do(t, http.MethodPost, "/v1/messages", map[string]any{"contact_ids": []string{"cust-1", "ghost-1", "ghost-2"},
		"channel": "sms", "body": "Hi"})
	require.Equal(t, http.StatusNotFound, r.Status)
	require.Contains(t, r.JSON()["error"].(map[string]any)["details"].(map[string]any)["contact_ids"], "ghost-1, ghost-2")
	var n int
	require.NoError(t, testenv.Owner(t).QueryRow(context.Background(), "SELECT count(*) FROM messages").Scan(&n))
	require.Zero(t, n, "all or nothing")

	for name, body := range map[string]map[string]any{
		"both":  {"contact_id": "cust-1", "contact_ids": []string{"cust-1"}, "channel": "sms", "body": "Hi"},
		"empty": {"contact_ids": []string{}, "channel": "sms", "body": "Hi"},
		"bad":   {"contact_ids": []string{""}, "channel": "sms", "body": "Hi"},
	} {
		r := s.do(t, http.MethodPost, "/v1/messages", body)
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, name)
	}
}

// One tenant's 50,000-text batch does not hold up another tenant: its
// texts wait in PostgreSQL and only a window of them is in Redis at a
// time, so another tenant's appointment confirmation, and its reminder
// when it comes due, are each sent after at most a handful of the batch's
// texts; another tenant's small batch is not stuck behind the big one;
// and the due-scan is not slowed by it. The same holds when the provider
// rate limits are what holds the batch back (bulk texts may use only half
// of each limit's burst).
func TestBigBatchDoesNotDelayOtherTenants(t *testing.T) {
	t.Run("unlimited", func(t *testing.T) { bigBatchFairness(t, false) })
	t.Run("provider rate limits", func(t *testing.T) { bigBatchFairness(t, true) })
}

func bigBatchFairness(t *testing.T, limited bool) {
	const batchSize = 50_000
	app := testapp.New(t)
	scan(t, app) // the dispatcher has been running (its first scan marks Redis as holding Errand's tasks)
	big := newShop(t, app, "Big Realty")
	small := newShop(t, app, "Small Realty")
	repair := newShop(t, app, "Acme Repair")
	repair.putContact(t, "cust-1", map[string]any{"name": "Pat Doe", "phone": "+13125559999"})
	repair.putContact(t, "cust-2", map[string]any{"name": "Lee Poe", "phone": "+13125559998"})
	small.putContact(t, "cust-1", map[string]any{"name": "Sam Roe", "phone": "+13125558888"})
	for i := 2; i <= 20; i++ {
		small.putContact(t, "cust-"+strconv.Itoa(i), map[string]any{"name": "Client", "phone": fmt.Sprintf("+1312555%04d", 8000+i)})
	}
	// An appointment of another tenant whose reminder comes due while the
	// batch is being sent: until then it waits in PostgreSQL.
	require.Equal(t, 201, repair.putAppointment(t, "appt-r", app.Clock.Now().Add(25*time.Hour), "scheduled",
		"contact_id", "cust-2").Status)
	_, err := testenv.Owner(t).Exec(context.Background(), `
		INSERT INTO contacts (tenant_id, external_id, name, phone, created_at, updated_at)
		SELECT $1, 'c-' || i, 'Client ' || i, '+1646' || lpad(i::text, 7, '0'), now(), now()
		FROM generate_series(1, $2::int) AS i`, big.tenant.ID, batchSize)
	require.NoError(t, err)
	ids := make([]string, batchSize)
	for i := range ids {
		ids[i] = "c-" + strconv.Itoa(i+1)
	}
	r := big.do(t, http.MethodPost, "/v1/messages", map[string]any{"contact_ids": ids, "channel": "sms", "body": "Market update"})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	require.EqualValues(t, batchSize, r.JSON()["count"])

	// Only the window is in Redis.
	bulk, err := app.Inspector.GetQueueInfo(jobs.QueueBulk)
	require.NoError(t, err)
	require.LessOrEqual(t, bulk.Size, jobs.BulkWindow)
	require.Positive(t, bulk.Size)

	if limited {
		// Tight enough that the batch alone keeps both limits busy.
		lim := ratelimit.PerSecond(100, 10)
		app.Deps.Limits = &jobs.SendLimits{Limiter: ratelimit.New(app.Redis), SMS: lim, SMSNumber: lim, SMSFrom: ourNumber}
	}
	app.StartWorker(4)
	app.Eventually(30*time.Second, "the big batch under way", func() bool { return app.Twilio.Count() >= 300 })

	// position is the index among Twilio's messages of the nth text to a
	// number (n from 1), or -1.
	position := func(to string, nth int) int {
		for i, m := range app.Twilio.Messages() {
			if m.To == to {
				if nth--; nth == 0 {
					return i
				}
			}
		}
		return -1
	}
	// Another tenant's appointment: its confirmation goes out after at
	// most a few more of the batch's texts (those already being sent, and
	// a few picked before it by the weighted queue choice).
	require.Equal(t, 201, repair.putAppointment(t, "appt-1", app.Clock.Now().Add(48*time.Hour), "scheduled").Status)
	before := app.Twilio.Count() // the confirmation is in Redis now
	app.Eventually(30*time.Second, "the other tenant's confirmation", func() bool { return position("+13125559999", 1) >= 0 })
	overtaken := position("+13125559999", 1) - before
	t.Logf("the confirmation went out after %d more of the batch's texts", overtaken)
	require.LessOrEqual(t, overtaken, 30, "the confirmation waited behind only a handful of the batch's texts")

	// The reminder comes due (its row is moved to now, as if the hour had
	// passed: moving the clock would make the batch's window look stalled
	// to the scan): the due-scan's first pass enqueues it, whatever the
	// batch's size, and it too waits behind only a handful.
	require.GreaterOrEqual(t, position("+13125559998", 1), 0, "appt-r's confirmation went out first")
	reminder := find(repair.messages(t, "appt-r"), "reminder", "sms")[0]
	require.Equal(t, "scheduled", repair.message(t, reminder.ID).Status)
	_, err = testenv.Owner(t).Exec(context.Background(), "UPDATE messages SET send_at = $2, due_at = $2 WHERE id = $1",
		app.MustUUID(reminder.ID), app.Clock.Now())
	require.NoError(t, err)
	before = app.Twilio.Count()
	res := scan(t, app)
	require.LessOrEqual(t, res.Enqueued, 1+jobs.BulkWindow, "the reminder and at most a window of bulk")
	got := repair.message(t, reminder.ID)
	require.True(t, got.EnqueuedAt != nil || got.Status != "scheduled",
		"the reminder is in Redis after one scan (or already taken by a worker)")
	app.Eventually(30*time.Second, "the other tenant's reminder", func() bool { return position("+13125559998", 2) >= 0 })
	overtaken = position("+13125559998", 2) - before
	t.Logf("the reminder went out after %d more of the batch's texts", overtaken)
	require.LessOrEqual(t, overtaken, 30, "the reminder waited behind only a handful of the batch's texts")
	require.Equal(t, "sent", repair.message(t, reminder.ID).Status)

	// Another tenant's small batch, behind the big one in the bulk queue.
	small20 := make([]string, 20)
	for i := range small20 {
		small20[i] = "cust-" + strconv.Itoa(i+1)
	}
	bigSent := func() int {
		n := 0
		for _, m := range app.Twilio.Messages() {
			if strings.HasPrefix(m.To, "+1646") {
				n++
			}
		}
		return n
	}
	r = small.do(t, http.MethodPost, "/v1/messages", map[string]any{"contact_ids": small20, "channel": "sms", "body": "Hello"})
	bigBefore := bigSent() // the small batch is in Redis now
	require.Equal(t, http.StatusAccepted, r.Status)
	smallBatch := r.JSON()["batch_id"].(string)
	app.Eventually(60*time.Second, "the small batch sent", func() bool {
		b := small.do(t, http.MethodGet, "/v1/message-batches/"+smallBatch, nil).JSON()
		return b["counts"].(map[string]any)["sent"] == 20.0
	})
	behind := bigSent() - bigBefore
	t.Logf("the small batch was sent while %d more of the big batch's texts went out", behind)
	bound := jobs.BulkWindow + 30 // the window ahead of it in the bulk queue, and those being sent
	if limited {
		// A send the limits refuse goes back to asynq to wait its turn, so
		// the two windows take turns in no fixed order: the small batch's
		// last text waits behind a few of the big window's turnovers (in
		// expectation about four), still never behind the 50,000.
		bound = 15 * jobs.BulkWindow
	}
	require.LessOrEqual(t, behind, bound, "behind at most a bounded part of the big batch, not its 50,000")
	bulk, err = app.Inspector.GetQueueInfo(jobs.QueueBulk)
	require.NoError(t, err)
	require.LessOrEqual(t, bulk.Size, 2*jobs.BulkWindow, "each tenant's window, no more")
	if limited {
		held := testutil.ToFloat64(app.Metrics.JobOutcomes.WithLabelValues(jobs.TypeMessageSend, "rate_limited"))
		t.Logf("sends held back by the rate limits: %.0f", held)
		require.Positive(t, held, "the limits were what held the batch back")
	}
}

// The due-scan is the safety net of bulk admission: when messages left
// Redis without admitting their successors (a worker died, say), it tops
// each tenant's window up — to the window, no more — and a batch
// scheduled for later is admitted when it comes due.
func TestDueScanTopsUpBulkWindows(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Realty Co")
	_, err := testenv.Owner(t).Exec(context.Background(), `
		INSERT INTO contacts (tenant_id, external_id, name, phone, created_at, updated_at)
		SELECT $1, 'c-' || i, 'Client', '+1646' || lpad(i::text, 7, '0'), now(), now() FROM generate_series(1, 300) AS i`, s.tenant.ID)
	require.NoError(t, err)
	ids := make([]string, 300)
	for i := range ids {
		ids[i] = "c-" + strconv.Itoa(i+1)
	}
	scan(t, app)
	r := s.do(t, http.MethodPost, "/v1/messages", map[string]any{"contact_ids": ids, "channel": "sms", "body": "Now"})
	require.Equal(t, http.StatusAccepted, r.Status)
	admitted := func() int {
		var n int
		require.NoError(t, testenv.Owner(t).QueryRow(context.Background(),
			"SELECT count(*) FROM messages WHERE kind = 'bulk' AND enqueued_at IS NOT NULL AND status IN ('scheduled','queued','sending')").Scan(&n))
		return n
	}
	require.Equal(t, jobs.BulkWindow, admitted(), "the window, admitted at once")
	bulk, err := app.Inspector.GetQueueInfo(jobs.QueueBulk)
	require.NoError(t, err)
	require.Equal(t, jobs.BulkWindow, bulk.Size)

	// Thirty leave Redis without a successor being admitted.
	_, err = testenv.Owner(t).Exec(context.Background(), `UPDATE messages SET status = 'sent' WHERE id IN (
		SELECT id FROM messages WHERE kind = 'bulk' AND enqueued_at IS NOT NULL LIMIT 30)`)
	require.NoError(t, err)
	require.Equal(t, jobs.BulkWindow-30, admitted())
	require.Equal(t, 30, scan(t, app).Enqueued)
	require.Equal(t, jobs.BulkWindow, admitted())
	require.Zero(t, scan(t, app).Enqueued, "full")

	// A batch for tomorrow waits in PostgreSQL until it is due.
	later := app.Clock.Now().Add(24 * time.Hour)
	r = s.do(t, http.MethodPost, "/v1/messages", map[string]any{"contact_ids": []string{"cust-1"}, "channel": "sms",
		"body": "Tomorrow", "send_at": later.Format(time.RFC3339)})
	require.Equal(t, http.StatusAccepted, r.Status)
	require.Equal(t, "scheduled", r.JSON()["status"])
	other := newShop(t, app, "Other Realty")
	r = other.do(t, http.MethodPost, "/v1/messages", map[string]any{"contact_ids": []string{"cust-1"}, "channel": "sms",
		"body": "Tomorrow", "send_at": later.Format(time.RFC3339)})
	require.Equal(t, http.StatusAccepted, r.Status)
	require.Zero(t, scan(t, app).Enqueued)
	app.Clock.Set(later)
	_, err = testenv.Owner(t).Exec(context.Background(), "UPDATE messages SET status = 'sent' WHERE body = 'Now'")
	require.NoError(t, err)
	require.Equal(t, 2, scan(t, app).Enqueued, "each tenant's due message, in one pass")
}

// A batch's messages are listed page by page (in ID order, ?cursor= the
// last one seen), each with its contact, status, send time and reason;
// another tenant's batch is a 404.
func TestBatchMessagesAreListed(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Realty Co")
	s.putContact(t, "cust-2", map[string]any{"name": "No Phone", "email": "np@example.com"})
	for i := 3; i <= 5; i++ {
		s.putContact(t, fmt.Sprintf("cust-%d", i), map[string]any{"name": "Client", "phone": fmt.Sprintf("+1312555014%d", i)})
	}
	app.StartWorker(2)
	r := s.do(t, http.MethodPost, "/v1/messages", map[string]any{"contact_ids": []string{"cust-1", "cust-2", "cust-3", "cust-4", "cust-5"},
		"channel": "sms", "body": "Open house Saturday"})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	batch := r.JSON()["batch_id"].(string)
	app.Eventually(10*time.Second, "batch settled", func() bool {
		c := s.do(t, http.MethodGet, "/v1/message-batches/"+batch, nil).JSON()["counts"].(map[string]any)
		return c["sent"] == 4.0 && c["suppressed"] == 1.0
	})

	type item struct {
		ID        string    `json:"id"`
		ContactID *string   `json:"contact_id"`
		Status    string    `json:"status"`
		SendAt    time.Time `json:"send_at"`
		Error     *string   `json:"error"`
	}
	type page struct {
		Messages   []item  `json:"messages"`
		NextCursor *string `json:"next_cursor"`
	}
	var all []item
	path := "/v1/message-batches/" + batch + "/messages?limit=2"
	for pages := 0; ; pages++ {
		require.Less(t, pages, 3, "five messages in pages of two")
		resp := s.do(t, http.MethodGet, path, nil)
		require.Equal(t, 200, resp.Status, string(resp.Body))
		p := decodeAs[page](t, resp)
		require.LessOrEqual(t, len(p.Messages), 2)
		all = append(all, p.Messages...)
		if p.NextCursor == nil {
			break
		}
		path = "/v1/message-batches/" + batch + "/messages?limit=2&cursor=" + *p.NextCursor
	}
	require.Len(t, all, 5)
	byContact := map[string]item{}
	for i, m := range all {
		if i > 0 {
			require.Less(t, all[i-1].ID, m.ID, "ID order, no repeats")
		}
		require.NotNil(t, m.ContactID)
		require.False(t, m.SendAt.IsZero())
		byContact[*m.ContactID] = m
	}
	require.Len(t, byContact, 5)
	require.Equal(t, "suppressed", byContact["cust-2"].Status)
	require.Equal(t, "contact has no phone number", *byContact["cust-2"].Error)
	require.Equal(t, "sent", byContact["cust-1"].Status)
	require.Nil(t, byContact["cust-1"].Error)
	require.Equal(t, 5, len(decodeAs[page](t, s.do(t, http.MethodGet, "/v1/message-batches/"+batch+"/messages", nil)).Messages), "default page")

	other := newShop(t, app, "Other Co")
	requireError(t, other.do(t, http.MethodGet, "/v1/message-batches/"+batch+"/messages", nil), 404, "not_found")
	requireError(t, s.do(t, http.MethodGet, "/v1/message-batches/not-a-batch/messages", nil), 404, "not_found")
	requireFields(t, s.do(t, http.MethodGet, "/v1/message-batches/"+batch+"/messages?limit=0", nil), "limit")
	requireFields(t, s.do(t, http.MethodGet, "/v1/message-batches/"+batch+"/messages?cursor=xyz", nil), "cursor")
}

// Cancelling a batch, or the whole account, while some of its messages
// wait for a retry after an attempt whose outcome is unknown: those are
// not cancelled blindly (the provider may have them) but settled by their
// next run, which asks Twilio — sent if it had the text, cancelled if
// not — and none is sent after the cancellation.
func TestCancelsSettleClaimedMessagesWithTheProvider(t *testing.T) {
	for _, how := range []string{"batch", "account"} {
		t.Run(how, func(t *testing.T) {
			app := testapp.New(t)
			s := newShop(t, app, "Realty Co")
			s.putContact(t, "cust-2", map[string]any{"name": "Sam Roe", "phone": "+13125550143"})
			r := s.do(t, http.MethodPost, "/v1/messages", map[string]any{"contact_ids": []string{"cust-1", "cust-2"},
				"channel": "sms", "body": "Spring check-up time?"})
			require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
			batch := r.JSON()["batch_id"].(string)
			var ids []string
			for _, m := range s.do(t, http.MethodGet, "/v1/message-batches/"+batch+"/messages", nil).JSON()["messages"].([]any) {
				ids = append(ids, m.(map[string]any)["id"].(string))
			}
			require.Len(t, ids, 2)
			// The first attempt at one never reached Twilio; at the other,
			// Twilio accepted it and the answer was lost.
			app.Twilio.FailNext(1, fakes.Fault{Status: 500})
			require.Error(t, runSend(t, app, s.tenant.ID, ids[0], "bulk"))
			app.Twilio.FailNext(1, fakes.Fault{AcceptThenFail: true, Status: 500})
			require.Error(t, runSend(t, app, s.tenant.ID, ids[1], "bulk"))
			require.Equal(t, 1, app.Twilio.Count())

			if how == "batch" {
				r = s.do(t, http.MethodDelete, "/v1/message-batches/"+batch, nil)
				require.Equal(t, 200, r.Status, string(r.Body))
				require.EqualValues(t, 0, r.JSON()["cancelled"])
				require.EqualValues(t, 2, r.JSON()["cancel_requested"])
			} else {
				r = s.do(t, http.MethodPost, "/v1/deletions", map[string]any{"scope": "tenant"})
				require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
			}
			for _, id := range ids {
				m := s.message(t, id)
				require.Equal(t, "queued", m.Status, "left to its task")
				require.NotNil(t, m.CancelRequestedAt)
				require.NoError(t, runSend(t, app, s.tenant.ID, id, "bulk"))
			}
			require.Equal(t, "cancelled", s.message(t, ids[0]).Status)
			require.Equal(t, "sent", s.message(t, ids[1]).Status, "Twilio had it")
			require.Equal(t, 1, app.Twilio.Count(), "nothing sent after the cancellation")
		})
	}
}
