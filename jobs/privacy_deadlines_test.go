package jobs_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/testapp"
	"github.com/errandhq/errand/internal/testenv"
	"github.com/errandhq/errand/jobs"
)

type watchFixture struct {
	app    *testapp.App
	tenant testapp.Tenant
	owner  string
}

func setupWatch(t *testing.T) watchFixture {
	t.Helper()
	app := testapp.New(t)
	f := watchFixture{app: app, tenant: app.NewTenant("Acme Repair"), owner: "owner@acme.example"}
	_, err := app.Store.Q().TenantSetOwnerEmail(context.Background(), db.TenantSetOwnerEmailParams{ID: f.tenant.ID,
		OwnerEmail: &f.owner, Now: app.Clock.Now()})
	require.NoError(t, err)
	return f
}

// request records a privacy request due at due, as the intake does.
func (f watchFixture) request(t *testing.T, typ string, due time.Time) db.PrivacyRequest {
	t.Helper()
	var r db.PrivacyRequest
	require.NoError(t, f.app.Store.InTenant(context.Background(), f.tenant.ID, func(q *db.Queries) (err error) {
		r, err = q.PrivacyRequestCreate(context.Background(), db.PrivacyRequestCreateParams{TenantID: f.tenant.ID,
			Type: typ, Subject: "tenant", ReceivedAt: due.AddDate(0, 0, -30), DueAt: due, Now: f.app.Clock.Now()})
		return err
	}))
	return r
}

func (f watchFixture) get(t *testing.T, r db.PrivacyRequest) db.PrivacyRequest {
	t.Helper()
	var out db.PrivacyRequestGetRow
	require.NoError(t, f.app.Store.InTenant(context.Background(), f.tenant.ID, func(q *db.Queries) (err error) {
		out, err = q.PrivacyRequestGet(context.Background(), db.PrivacyRequestGetParams{TenantID: f.tenant.ID, ID: r.ID})
		return err
	}))
	return out.PrivacyRequest
}

// reminders lists the owner's reminder messages, oldest first.
func (f watchFixture) reminders(t *testing.T) []db.Message {
	t.Helper()
	rows, err := testenv.Owner(t).Query(context.Background(),
		"SELECT id FROM messages WHERE tenant_id = $1 AND contact_id IS NULL AND kind = 'notice' ORDER BY created_at, id", f.tenant.ID)
	require.NoError(t, err)
	var ids []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	out := make([]db.Message, len(ids))
	for i, id := range ids {
		out[i] = f.app.Message(f.tenant.ID, id)
	}
	return out
}

func (f watchFixture) watch(t *testing.T) jobs.WatchResult {
	t.Helper()
	res, err := jobs.NewPrivacyDeadlines(f.app.Deps).Watch(context.Background())
	require.NoError(t, err)
	return res
}

// A request due in 30 days: the owner hears 7 days before, then 1 day
// before, each once however often the watcher runs; then it is marked
// overdue.
func TestDeadlineWatcherRemindsOncePerThreshold(t *testing.T) {
	f := setupWatch(t)
	now := f.app.Clock.Now()
	due := now.Add(30 * 24 * time.Hour)
	r := f.request(t, jobs.PrivacyAccess, due)

	require.Equal(t, jobs.WatchResult{}, f.watch(t), "nothing 30 days ahead")
	f.app.Clock.Set(due.Add(-7*24*time.Hour - time.Minute))
	require.Equal(t, jobs.WatchResult{}, f.watch(t), "not a minute early")

	f.app.Clock.Set(due.Add(-7 * 24 * time.Hour))
	require.Equal(t, jobs.WatchResult{WeekReminders: 1}, f.watch(t))
	require.Equal(t, jobs.WatchResult{}, f.watch(t), "once")
	f.app.Clock.Advance(3 * 24 * time.Hour)
	require.Equal(t, jobs.WatchResult{}, f.watch(t), "still once")
	msgs := f.reminders(t)
	require.Len(t, msgs, 1)
	require.Equal(t, "email", msgs[0].Channel)
	require.Nil(t, msgs[0].ContactID, "to the owner")
	require.Equal(t, "A privacy request is due in 7 days", *msgs[0].Subject)
	require.Contains(t, msgs[0].Body, r.ID.String())
	require.Contains(t, msgs[0].Body, "access request about your account")

	f.app.Clock.Set(due.Add(-24 * time.Hour))
	require.Equal(t, jobs.WatchResult{DayReminders: 1}, f.watch(t))
	require.Equal(t, jobs.WatchResult{}, f.watch(t))
	require.Len(t, f.reminders(t), 2)
	require.Equal(t, "A privacy request is due tomorrow", *f.reminders(t)[1].Subject)
	require.Nil(t, f.get(t, r).OverdueAt)

	f.app.Clock.Set(due)
	require.Equal(t, jobs.WatchResult{MarkedOverdue: 1}, f.watch(t), "overdue: marked, no third email")
	require.Equal(t, jobs.WatchResult{}, f.watch(t))
	got := f.get(t, r)
	require.Equal(t, due, *got.OverdueAt)
	require.Len(t, f.reminders(t), 2)

	var events []db.PrivacyRequestEvent
	require.NoError(t, f.app.Store.InTenant(context.Background(), f.tenant.ID, func(q *db.Queries) (err error) {
		events, err = q.PrivacyRequestEventList(context.Background(), db.PrivacyRequestEventListParams{TenantID: f.tenant.ID, RequestID: r.ID})
		return err
	}))
	var actions []string
	for _, e := range events {
		actions = append(actions, e.Action)
		require.Equal(t, "system", e.Actor)
	}
	require.Equal(t, []string{"reminder_week", "reminder_day", "overdue"}, actions, "the trail shows what the watcher did")
}

// A request recorded late (or a watcher that was down) gets one email, the
// most urgent, not a burst.
func TestDeadlineWatcherSendsOnlyTheMostUrgentReminder(t *testing.T) {
	f := setupWatch(t)
	now := f.app.Clock.Now()
	soon := f.request(t, jobs.PrivacyDeletion, now.Add(12*time.Hour))
	late := f.request(t, jobs.PrivacyCorrection, now.Add(-2*24*time.Hour))
	require.Equal(t, jobs.WatchResult{DayReminders: 2, MarkedOverdue: 1}, f.watch(t))
	require.Equal(t, jobs.WatchResult{}, f.watch(t))
	subjects := map[string]bool{}
	for _, m := range f.reminders(t) {
		subjects[*m.Subject] = true
	}
	require.Equal(t, map[string]bool{"A privacy request is due tomorrow": true, "A privacy request is overdue": true}, subjects)
	require.NotNil(t, f.get(t, soon).Notified7dAt, "the week threshold is settled too")
	require.NotNil(t, f.get(t, late).OverdueAt)
}

// Closed requests are left alone; concurrent watchers send each reminder
// once.
func TestDeadlineWatcherIgnoresClosedAndIsSafeConcurrently(t *testing.T) {
	f := setupWatch(t)
	now := f.app.Clock.Now()
	done := f.request(t, jobs.PrivacyCorrection, now.Add(time.Hour))
	require.NoError(t, f.app.Store.InTenant(context.Background(), f.tenant.ID, func(q *db.Queries) error {
		_, err := jobs.PrivacyMove(context.Background(), q, done, jobs.PrivacyCompleted, "status_changed", "test", "", now)
		return err
	}))
	for i := 0; i < 20; i++ {
		f.request(t, jobs.PrivacyAccess, now.Add(time.Duration(i+1)*time.Hour))
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = jobs.NewPrivacyDeadlines(f.app.Deps).Watch(context.Background())
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, f.reminders(t), 20, "one each, whatever the interleaving")
	require.Nil(t, f.get(t, done).Notified1dAt)
}

// The reminder reaches the owner's inbox through the normal send path.
func TestDeadlineReminderIsEmailedToTheOwner(t *testing.T) {
	f := setupWatch(t)
	f.request(t, jobs.PrivacyAccess, f.app.Clock.Now().Add(3*24*time.Hour))
	f.app.StartWorker(2)
	f.watch(t)
	f.app.Eventually(5*time.Second, "email sent", func() bool { return f.app.Resend.Count() == 1 })
	sent := f.app.Resend.Emails()[0]
	require.Equal(t, []string{f.owner}, sent.To)
	require.Equal(t, "A privacy request is due in 7 days", sent.Subject)
}

func TestPrivacyStateMachine(t *testing.T) {
	cases := []struct {
		typ, from, to string
		ok            bool
	}{
		{jobs.PrivacyAccess, jobs.PrivacyReceived, jobs.PrivacyInProgress, true},
		{jobs.PrivacyAccess, jobs.PrivacyReceived, jobs.PrivacyApproved, false},
		{jobs.PrivacyAccess, jobs.PrivacyInProgress, jobs.PrivacyReceived, true},
		{jobs.PrivacyAccess, jobs.PrivacyInProgress, jobs.PrivacyCompleted, true},
		{jobs.PrivacyDeletion, jobs.PrivacyReceived, jobs.PrivacyApproved, true},
		{jobs.PrivacyDeletion, jobs.PrivacyReceived, jobs.PrivacyInProgress, false},
		{jobs.PrivacyDeletion, jobs.PrivacyApproved, jobs.PrivacyInProgress, true},
		{jobs.PrivacyDeletion, jobs.PrivacyInProgress, jobs.PrivacyReceived, false},
		{jobs.PrivacyCorrection, jobs.PrivacyReceived, jobs.PrivacyInProgress, true},
		{jobs.PrivacyCorrection, jobs.PrivacyReceived, jobs.PrivacyApproved, false},
		{jobs.PrivacyCorrection, jobs.PrivacyInProgress, jobs.PrivacyRejected, true},
		{jobs.PrivacyCorrection, jobs.PrivacyCompleted, jobs.PrivacyRejected, false},
		{jobs.PrivacyDeletion, jobs.PrivacyRejected, jobs.PrivacyApproved, false},
		{jobs.PrivacyAccess, jobs.PrivacyReceived, jobs.PrivacyReceived, false},
	}
	for _, c := range cases {
		require.Equal(t, c.ok, jobs.PrivacyCanMove(c.typ, c.from, c.to), "%s: %s → %s", c.typ, c.from, c.to)
	}
}
