package jobs_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/internal/notify"
	"github.com/errandhq/errand/internal/provider"
	"github.com/errandhq/errand/internal/ratelimit"
	"github.com/errandhq/errand/internal/testenv"
	"github.com/errandhq/errand/jobs"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// createKind inserts a message of a kind due now, optionally about a
// location.
func (f fixture) createKind(t *testing.T, kind string, location *uuid.UUID) db.Message {
	t.Helper()
	var m db.Message
	err := f.app.Store.InTenant(context.Background(), f.tenant.ID, func(q *db.Queries) (err error) {
		m, err = f.app.Dispatcher.InsertMessage(context.Background(), q, jobs.NewMessage{TenantID: f.tenant.ID,
			ContactID: f.contact.ID, Kind: kind, Channel: "sms", Body: "Hello from Acme", SendAt: f.app.Clock.Now(),
			LocationID: location})
		return err
	})
	require.NoError(t, err)
	return m
}

func (f fixture) location(t *testing.T, zone string, quiet notify.QuietHours) uuid.UUID {
	t.Helper()
	s := notify.Defaults()
	s.QuietHours = quiet
	raw, err := json.Marshal(s)
	require.NoError(t, err)
	var id uuid.UUID
	require.NoError(t, f.app.Store.InTenant(context.Background(), f.tenant.ID, func(q *db.Queries) error {
		l, err := q.LocationUpsert(context.Background(), db.LocationUpsertParams{TenantID: f.tenant.ID, ExternalID: "loc-" + zone,
			Name: "Branch", Timezone: zone, Settings: raw, Now: f.app.Clock.Now()})
		id = l.ID
		return err
	}))
	return id
}

// newContact gives the fixture's tenant the usual customer.
func (f fixture) newContact(t *testing.T) db.ContactUpsertRow {
	t.Helper()
	var c db.ContactUpsertRow
	phone, email := testPhone, testEmail
	require.NoError(t, f.app.Store.InTenant(context.Background(), f.tenant.ID, func(q *db.Queries) (err error) {
		c, err = q.ContactUpsert(context.Background(), db.ContactUpsertParams{TenantID: f.tenant.ID,
			ExternalID: "cust-1", Name: testName, Phone: &phone, Email: &email, Now: f.app.Clock.Now()})
		return err
	}))
	return c
}

func setContactZone(t *testing.T, f fixture, zone string) {
	t.Helper()
	_, err := testenv.Owner(t).Exec(context.Background(), "UPDATE contacts SET timezone = $2 WHERE id = $1", f.contact.ID, zone)
	require.NoError(t, err)
}

// A message due in its recipient's quiet hours waits, as a scheduled row
// the due-scan brings back, until they end on the recipient's wall clock,
// across daylight-saving changes. The zone is the contact's, else the
// location's, else the tenant's (also when the contact's is unknown).
func TestQuietHoursHoldMessagesUntilMorning(t *testing.T) {
	cases := []struct {
		name         string
		contactZone  string
		tenantZone   string
		locationZone string
		quiet        notify.QuietHours
		now, until   string
	}{
		{name: "spring forward: 22:00 EST to 08:00 EDT", contactZone: "America/New_York",
			now: "2026-03-08T03:00:00Z", until: "2026-03-08T12:00:00Z"},
		{name: "fall back: 22:00 EDT to 08:00 EST", contactZone: "America/New_York",
			now: "2026-11-01T02:00:00Z", until: "2026-11-01T13:00:00Z"},
		{name: "an unknown contact zone falls back to the tenant's", contactZone: "Mars/Olympus_Mons", tenantZone: "Asia/Tokyo",
			now: "2026-06-10T13:00:00Z", until: "2026-06-10T23:00:00Z"},
		{name: "the location's zone and quiet hours", locationZone: "Europe/Berlin",
			quiet: notify.QuietHours{Start: 12 * 60, End: 14 * 60}, now: "2026-06-10T10:30:00Z", until: "2026-06-10T12:00:00Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := setup(t)
			if c.tenantZone != "" {
				f.tenant = f.app.NewTenantIn("Tokyo Repair", c.tenantZone)
				f.contact = f.newContact(t)
			}
			if c.contactZone != "" {
				setContactZone(t, f, c.contactZone)
			}
			var loc *uuid.UUID
			if c.locationZone != "" {
				id := f.location(t, c.locationZone, c.quiet)
				loc = &id
			}
			f.app.Clock.Set(at(c.now))
			m := f.createKind(t, "manual", loc)
			require.NoError(t, f.handler().ProcessTask(context.Background(), task(m)))
			got := f.status(t, m)
			require.Equal(t, "scheduled", got.Status)
			require.Equal(t, at(c.until), got.DueAt)
			require.True(t, got.SendAt.Equal(at(c.now)), "send_at keeps what was asked")
			require.Nil(t, got.EnqueuedAt, "handed back to the due-scan")
			require.Zero(t, f.app.Twilio.Requests())

			f.app.Clock.Set(at(c.until).Add(-16 * time.Minute))
			require.Zero(t, scan(t, f).Enqueued, "not before the horizon")
			f.app.Clock.Set(at(c.until))
			require.NoError(t, f.handler().ProcessTask(context.Background(), task(m)))
			require.Equal(t, "sent", f.status(t, m).Status)
			require.Equal(t, 1, f.app.Twilio.Count())
		})
	}
}

// Verification codes never wait: someone is looking at a login screen.
func TestVerificationCodesIgnoreQuietHours(t *testing.T) {
	f := setup(t)
	setContactZone(t, f, "America/New_York")
	f.app.Clock.Set(at("2026-03-08T06:30:00Z")) // 01:30 in New York
	_, m := f.verification(t, "sms", testPhone)
	// Tie the code to the contact (in New York, at 01:30): a message
	// without a contact is exempt anyway (it goes to an address, not a
	// customer), so only the code's kind can let this one through.
	_, err := testenv.Owner(t).Exec(context.Background(), "UPDATE messages SET contact_id = $1 WHERE id = $2", f.contact.ID, m.ID)
	require.NoError(t, err)
	require.Equal(t, jobs.QueueCritical, jobs.MessageQueue("verification"))
	require.NoError(t, f.handler().ProcessTask(context.Background(), task(m)))
	require.Equal(t, "sent", f.status(t, m).Status)
	require.Equal(t, testPhone, f.app.Twilio.Messages()[0].To)

	other := f.createKind(t, "manual", nil)
	require.NoError(t, f.handler().ProcessTask(context.Background(), task(other)))
	require.Equal(t, "scheduled", f.status(t, other).Status)
}

// A verification code is not stuck behind a backlog on the other queues:
// the critical queue has workers of its own. Every worker of the main
// pool is busy (its sends held at the provider) with a backlog of
// notifications and bulk notices still pending behind them; the code,
// enqueued last, is the first message the provider receives in full.
func TestVerificationCodeGoesAheadOfABacklog(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	const backlog, mainWorkers = 60, 4
	for i := range backlog {
		kind := "manual" // notifications queue
		if i%3 == 0 {
			kind = "notice" // bulk queue
		}
		f.app.Dispatcher.EnqueueMessages(ctx, f.createKind(t, kind, nil))
	}
	for _, q := range []string{jobs.QueueNotifications, jobs.QueueBulk} {
		info, err := f.app.Inspector.GetQueueInfo(q)
		require.NoError(t, err)
		require.Positive(t, info.Pending, "a backlog on %s", q)
	}
	release := make(chan struct{})
	f.app.Twilio.FailNext(mainWorkers, fakes.Fault{Hold: release})
	// Held sends must outlast the test's patience, not the client's timeout.
	f.app.Deps.SMS = provider.NewTwilio(provider.TwilioConfig{AccountSID: f.app.Twilio.AccountSID,
		AuthToken: f.app.Twilio.AuthToken, From: "+15005550006", BaseURL: f.app.Twilio.URL, Timeout: time.Minute})
	f.app.StartWorker(mainWorkers) // the main pool: mainWorkers at once; critical has its own
	f.app.Eventually(10*time.Second, "the main pool busy", func() bool { return f.app.Twilio.Requests() >= mainWorkers })

	_, code := f.verification(t, "sms", testPhone)
	f.app.Dispatcher.EnqueueMessages(ctx, code)
	f.app.Eventually(10*time.Second, "the code sent", func() bool { return f.status(t, code).Status == "sent" })
	close(release)
	f.app.Eventually(30*time.Second, "the backlog sent", func() bool { return f.app.Twilio.Count() >= backlog+1 })

	sent := f.app.Twilio.Messages()
	require.Len(t, sent, backlog+1, "each message once")
	require.NotEqual(t, "Hello from Acme", sent[0].Body, "the code came first, ahead of %d waiting messages", backlog)
	for _, m := range sent[1:] {
		require.Equal(t, "Hello from Acme", m.Body)
	}
}

// Provider rate limits live in Redis, shared by every process: a send over
// the limit is not claimed, not counted as an attempt, and tried again.
func TestRateLimitedSendIsNotAFailure(t *testing.T) {
	f := setup(t)
	f.app.Deps.Limits = &jobs.SendLimits{Limiter: ratelimit.New(f.app.Redis), SMS: ratelimit.Per(1, time.Hour, 2)}
	h := f.handler()
	var ms []db.Message
	for range 3 {
		ms = append(ms, f.create(t, "sms", "Hello", f.app.Clock.Now()))
	}
	require.NoError(t, h.ProcessTask(context.Background(), task(ms[0])))
	require.NoError(t, h.ProcessTask(context.Background(), task(ms[1])))
	err := h.ProcessTask(context.Background(), task(ms[2]))
	require.ErrorIs(t, err, jobs.ErrRateLimited)
	delay := jobs.DefaultRetry.RetryDelay(0, err, nil)
	require.Greater(t, delay, 10*time.Minute, "asked to wait for the next allowance")
	got := f.status(t, ms[2])
	require.Equal(t, "queued", got.Status)
	require.Zero(t, got.Attempts, "no attempt was made")
	require.Nil(t, got.ClaimedAt)
	require.Equal(t, 2, f.app.Twilio.Count())

	// Through a worker: asynq does not count it as a retry.
	f.app.StartWorker(1)
	m := f.create(t, "sms", "Fourth", f.app.Clock.Now())
	j := jobs.NewMessageSendJob(m.TenantID, m.ID, m.Kind)
	f.app.Eventually(5*time.Second, "rate limited once", func() bool {
		info, err := f.app.Inspector.GetTaskInfo(j.Queue, j.ID)
		return err == nil && info.LastErr != ""
	})
	info, err := f.app.Inspector.GetTaskInfo(j.Queue, j.ID)
	require.NoError(t, err)
	require.Zero(t, info.Retried, "not a failure")
	require.Contains(t, info.LastErr, "rate limit")
}

// The limits are per provider and per sending number, and bulk texts may
// only use half the burst, so an appointment message finds room at once
// when a batch keeps the limit busy. Two processes (two limiters on the
// same Redis) share one allowance.
func TestRateLimitsShareAndPrioritise(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	limits := func(from string) *jobs.SendLimits {
		return &jobs.SendLimits{Limiter: ratelimit.New(f.app.Redis), SMS: ratelimit.Per(1, time.Hour, 100),
			SMSNumber: ratelimit.Per(1, time.Hour, 4), SMSFrom: from, Email: ratelimit.Per(1, time.Hour, 1)}
	}
	a, b := limits("+15005550006"), limits("+15005550006")
	require.NoError(t, a.Allow(ctx, "sms", "bulk"))
	require.NoError(t, b.Allow(ctx, "sms", "bulk"))
	require.ErrorIs(t, a.Allow(ctx, "sms", "bulk"), jobs.ErrRateLimited, "bulk has used its half of the burst")
	require.NoError(t, b.Allow(ctx, "sms", "reminder"), "a reminder still gets through")
	require.NoError(t, a.Allow(ctx, "sms", "confirmation"))
	require.ErrorIs(t, b.Allow(ctx, "sms", "reminder"), jobs.ErrRateLimited, "the number's whole burst is used")
	require.NoError(t, limits("+15005550007").Allow(ctx, "sms", "reminder"), "another sending number has its own")
	require.NoError(t, a.Allow(ctx, "email", "reminder"), "email is another provider")
	require.ErrorIs(t, b.Allow(ctx, "email", "reminder"), jobs.ErrRateLimited)
	var nilLimits *jobs.SendLimits
	require.NoError(t, nilLimits.Allow(ctx, "sms", "bulk"))
}

// Transient failures back off from a few seconds, capped: three provider
// 500s in a row delay a text well under two minutes.
func TestRetryBackoffIsBounded(t *testing.T) {
	p := jobs.DefaultRetry
	for range 200 {
		total := p.Delay(1) + p.Delay(2) + p.Delay(3)
		require.Less(t, total, 2*time.Minute)
		require.GreaterOrEqual(t, p.Delay(1), 4*time.Second)
		require.LessOrEqual(t, p.Delay(30), 6*time.Minute, "capped (with jitter)")
	}
	// Jitter: retries of many messages do not all land at once.
	seen := map[time.Duration]bool{}
	for range 20 {
		seen[p.Delay(2)] = true
	}
	require.Greater(t, len(seen), 1)
}
