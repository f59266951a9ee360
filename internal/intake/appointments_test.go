package intake_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/internal/notify"
	"github.com/errandhq/errand/internal/testapp"
	"github.com/errandhq/errand/internal/testenv"
	"github.com/errandhq/errand/jobs"
)

func scan(t *testing.T, app *testapp.App) jobs.ScanResult {
	t.Helper()
	res, err := app.Dispatcher.Scan(context.Background())
	require.NoError(t, err)
	return res
}

// An appointment's life: booked → confirmation now and a reminder a day
// ahead on both channels; the same PUT again → nothing new; moved → the
// pending reminders move; cancelled → everything pending cancelled.
func TestAppointmentPlansItsMessages(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	app.StartWorker(4)
	startsAt := app.Clock.Now().Add(72 * time.Hour).Truncate(time.Minute)

	r := s.putAppointment(t, "appt-1", startsAt, "scheduled")
	require.Equal(t, http.StatusCreated, r.Status, string(r.Body))
	require.Equal(t, "scheduled", r.JSON()["status"])
	ms := s.messages(t, "appt-1")
	require.Len(t, ms, 4)
	confirmations, reminders := find(ms, "confirmation", ""), find(ms, "reminder", "")
	require.Len(t, confirmations, 2)
	require.Len(t, reminders, 2)
	for _, m := range reminders {
		require.Equal(t, "scheduled", m.Status)
		require.True(t, m.SendAt.Equal(startsAt.Add(-24*time.Hour)), m.SendAt)
	}
	s.waitStatus(t, ids(confirmations), "sent")
	require.Equal(t, 1, app.Twilio.Count())
	require.Equal(t, 1, app.Resend.Count())
	sms := app.Twilio.Messages()[0]
	require.Equal(t, custPhone, sms.To)
	local := startsAt.In(notify.Zone(s.zone))
	require.Contains(t, sms.Body, "Acme Repair")
	require.Contains(t, sms.Body, local.Format("3:04 PM"), "the time on the recipient's clock")
	require.Contains(t, sms.Body, "1 Main St")
	require.Contains(t, sms.Body, "Reply STOP")
	email := app.Resend.Emails()[0]
	require.Contains(t, email.Subject, "confirmed")
	require.Contains(t, email.Text, "Hello Pat,")
	recorded := s.message(t, confirmations[0].ID)
	require.NotEmpty(t, recorded.Body, "the text sent is kept in the message log")

	before := s.messages(t, "appt-1")
	r = s.putAppointment(t, "appt-1", startsAt, "scheduled")
	require.Equal(t, http.StatusOK, r.Status)
	require.Equal(t, before, s.messages(t, "appt-1"), "the same PUT twice plans nothing")

	moved := startsAt.Add(26 * time.Hour)
	require.Equal(t, 200, s.putAppointment(t, "appt-1", moved, "scheduled").Status)
	after := s.messages(t, "appt-1")
	require.Len(t, after, 4, "reminders moved, none added")
	for _, m := range find(after, "reminder", "") {
		require.Contains(t, ids(reminders), m.ID, "the same reminder rows")
		require.True(t, m.SendAt.Equal(moved.Add(-24*time.Hour)), m.SendAt)
		require.Equal(t, "scheduled", m.Status)
	}

	require.Equal(t, 200, s.putAppointment(t, "appt-1", moved, "cancelled").Status)
	after = s.messages(t, "appt-1")
	for _, m := range find(after, "reminder", "") {
		require.Equal(t, "cancelled", m.Status)
		require.Equal(t, "the appointment was cancelled", *m.Error)
	}
	require.Equal(t, map[string]int{"sent": 2}, statuses(find(after, "confirmation", "")), "sent stays sent")
	require.Equal(t, 200, s.putAppointment(t, "appt-1", moved, "cancelled").Status)
	require.Equal(t, after, s.messages(t, "appt-1"))

	// Booked again: the reminders come back.
	require.Equal(t, 200, s.putAppointment(t, "appt-1", moved, "scheduled").Status)
	again := s.messages(t, "appt-1")
	require.Equal(t, map[string]int{"cancelled": 2, "scheduled": 2}, statuses(find(again, "reminder", "")))
}

// Offsets and per-channel switches: each reminder offset is a message per
// channel; a switched-off channel leaves a suppressed record that says so.
func TestReminderOffsetsAndSwitches(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	loc := s.putLocation(t, "loc-1", map[string]any{"notifications": map[string]any{
		"reminder": map[string]any{"email": false, "offsets": []string{"2h", "48h"}}}})
	require.Equal(t, []any{"48h", "2h"}, loc["notifications"].(map[string]any)["reminder"].(map[string]any)["offsets"])
	startsAt := app.Clock.Now().Add(96 * time.Hour).Truncate(time.Minute)
	require.Equal(t, 201, s.putAppointment(t, "appt-1", startsAt, "scheduled").Status)
	ms := s.messages(t, "appt-1")
	sms, email := find(ms, "reminder", "sms"), find(ms, "reminder", "email")
	require.Len(t, sms, 2)
	require.Len(t, email, 2)
	require.ElementsMatch(t, []time.Time{startsAt.Add(-48 * time.Hour), startsAt.Add(-2 * time.Hour)},
		[]time.Time{sms[0].SendAt, sms[1].SendAt})
	for _, m := range email {
		require.Equal(t, "suppressed", m.Status)
		require.Equal(t, "reminders by email are switched off for this location", *m.Error)
	}

	// Dropping an offset cancels its pending reminders when the appointment
	// is next planned; a reminder whose time has passed is not created.
	s.putLocation(t, "loc-1", map[string]any{"notifications": map[string]any{"reminder": map[string]any{"offsets": []string{"2h"}}}})
	require.Equal(t, 200, s.putAppointment(t, "appt-1", startsAt.Add(time.Hour), "scheduled").Status)
	ms = s.messages(t, "appt-1")
	byWhen := map[string]string{}
	for _, m := range find(ms, "reminder", "sms") {
		byWhen[m.SendAt.Sub(startsAt).String()] = m.Status
	}
	require.Equal(t, map[string]string{"-48h0m0s": "cancelled", "-1h0m0s": "scheduled"}, byWhen)
}

// "If you turn them all off, we send nothing": every message is a
// suppressed record with its reason, and nothing reaches a provider.
func TestAllSwitchedOffSendsNothing(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	off := map[string]any{"sms": false, "email": false}
	s.putLocation(t, "loc-1", map[string]any{"notifications": map[string]any{"confirmation": off, "reminder": off,
		"on_the_way": off, "follow_up": off}})
	app.StartWorker(2)
	startsAt := app.Clock.Now().Add(48 * time.Hour)
	require.Equal(t, 201, s.putAppointment(t, "appt-1", startsAt, "scheduled").Status)
	r := s.do(t, http.MethodPost, "/v1/appointments/appt-1/on-the-way", nil)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	require.Equal(t, 200, s.putAppointment(t, "appt-1", startsAt, "completed").Status)
	ms := s.messages(t, "appt-1")
	require.Len(t, ms, 8, "confirmation, reminder, on-the-way and follow-up on two channels")
	for _, m := range ms {
		require.Equal(t, "suppressed", m.Status, m.Kind)
		require.Contains(t, *m.Error, "switched off for this location")
	}
	scan(t, app)
	app.Clock.Advance(25 * time.Hour)
	scan(t, app)
	time.Sleep(100 * time.Millisecond) // give a wrongly enqueued task the chance to run
	require.Zero(t, app.Twilio.Requests())
	require.Zero(t, app.Resend.Requests())
}

// Settings are checked again at send time: switching reminders off stops
// the ones already planned.
func TestSwitchedOffAfterPlanningIsNotSent(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	startsAt := app.Clock.Now().Add(48 * time.Hour)
	require.Equal(t, 201, s.putAppointment(t, "appt-1", startsAt, "scheduled").Status)
	reminders := find(s.messages(t, "appt-1"), "reminder", "")
	confirmations := find(s.messages(t, "appt-1"), "confirmation", "")
	s.putLocation(t, "loc-1", map[string]any{"notifications": map[string]any{"reminder": map[string]any{"sms": false}}})
	app.StartWorker(2)
	s.waitStatus(t, ids(confirmations), "sent")
	app.Clock.Set(startsAt.Add(-24 * time.Hour))
	scan(t, app)
	s.waitStatus(t, ids(reminders), "sent", "suppressed")
	for _, m := range reminders {
		got := s.message(t, m.ID)
		if m.Channel == "sms" {
			require.Equal(t, "suppressed", got.Status)
			require.Equal(t, "reminders by sms are switched off for this location", *got.Error)
		} else {
			require.Equal(t, "sent", got.Status)
		}
	}
	require.Zero(t, app.Twilio.Count()-1, "only the confirmation went by SMS")
}

// A reminder inside the horizon has a task in asynq; moving the
// appointment moves the task (or takes it out of Redis), never leaving an
// orphan or a duplicate behind.
func TestMovedReminderMovesItsTask(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	scan(t, app)
	taskAt := func(id string) (time.Time, bool) {
		j := jobs.NewMessageSendJob(s.tenant.ID, app.MustUUID(id), "reminder")
		info, err := app.Inspector.GetTaskInfo(j.Queue, j.ID)
		if err != nil {
			return time.Time{}, false
		}
		require.Equal(t, asynq.TaskStateScheduled, info.State)
		return info.NextProcessAt, true
	}
	startsAt := app.Clock.Now().Add(24*time.Hour + 10*time.Minute)
	require.Equal(t, 201, s.putAppointment(t, "appt-1", startsAt, "scheduled").Status)
	reminders := find(s.messages(t, "appt-1"), "reminder", "")
	for _, m := range reminders {
		at, ok := taskAt(m.ID)
		require.True(t, ok, "due in 10 minutes: held by asynq")
		require.WithinDuration(t, time.Now().Add(10*time.Minute), at, 5*time.Second)
	}

	require.Equal(t, 200, s.putAppointment(t, "appt-1", startsAt.Add(24*time.Hour), "scheduled").Status)
	for _, m := range reminders {
		_, ok := taskAt(m.ID)
		require.False(t, ok, "a day away: back in PostgreSQL only")
		require.Nil(t, s.message(t, m.ID).EnqueuedAt)
	}
	require.Zero(t, scan(t, app).Enqueued)

	require.Equal(t, 200, s.putAppointment(t, "appt-1", startsAt.Add(-5*time.Minute), "scheduled").Status)
	for _, m := range reminders {
		at, ok := taskAt(m.ID)
		require.True(t, ok)
		require.WithinDuration(t, time.Now().Add(5*time.Minute), at, 5*time.Second, "rescheduled, not duplicated")
	}
	q, err := app.Inspector.GetQueueInfo(jobs.QueueNotifications)
	require.NoError(t, err)
	require.Equal(t, 2, q.Scheduled, "one task per reminder")

	require.Equal(t, 200, s.putAppointment(t, "appt-1", startsAt.Add(-5*time.Minute), "cancelled").Status)
	for _, m := range reminders {
		_, ok := taskAt(m.ID)
		require.False(t, ok, "cancelled: removed from asynq's schedule")
		require.Equal(t, "cancelled", s.message(t, m.ID).Status)
	}
}

// Reminders are written when they are sent: after the appointment moved,
// the text says the new time.
func TestReminderTextFollowsTheAppointment(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	s.putLocation(t, "loc-1", map[string]any{"notifications": map[string]any{"confirmation": map[string]any{"sms": false, "email": false}}})
	app.StartWorker(2)
	startsAt := app.Clock.Now().Add(48 * time.Hour).Truncate(time.Minute)
	require.Equal(t, 201, s.putAppointment(t, "appt-1", startsAt, "scheduled").Status)
	later := startsAt.Add(90 * time.Minute)
	require.Equal(t, 200, s.putAppointment(t, "appt-1", later, "scheduled", "technician", "Alex").Status)
	app.Clock.Set(later.Add(-24 * time.Hour))
	scan(t, app)
	s.waitStatus(t, ids(find(s.messages(t, "appt-1"), "reminder", "")), "sent")
	body := app.Twilio.Messages()[0].Body
	require.Contains(t, body, later.In(notify.Zone(s.zone)).Format("3:04 PM"))
	require.NotContains(t, body, startsAt.In(notify.Zone(s.zone)).Format("3:04 PM"))
	require.Contains(t, body, "Alex")
}

// Completing an appointment cancels what is still pending and plans one
// follow-up, after the location's delay.
func TestCompletedAppointmentGetsOneFollowUp(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	s.putLocation(t, "loc-1", map[string]any{"notifications": map[string]any{"follow_up": map[string]any{"delay": "2h"}}})
	startsAt := app.Clock.Now().Add(48 * time.Hour)
	require.Equal(t, 201, s.putAppointment(t, "appt-1", startsAt, "scheduled").Status)
	require.Equal(t, 200, s.putAppointment(t, "appt-1", startsAt, "completed").Status)
	require.Equal(t, 200, s.putAppointment(t, "appt-1", startsAt, "completed").Status)
	ms := s.messages(t, "appt-1")
	follow := find(ms, "follow_up", "")
	require.Len(t, follow, 2, "once, on each channel")
	for _, m := range follow {
		require.True(t, m.SendAt.Equal(app.Clock.Now().Add(2*time.Hour)))
	}
	for _, m := range find(ms, "reminder", "") {
		require.Equal(t, "cancelled", m.Status)
		require.Equal(t, "the appointment was completed", *m.Error)
	}
	app.StartWorker(2)
	app.Clock.Advance(2 * time.Hour)
	scan(t, app)
	s.waitStatus(t, ids(follow), "sent")
	require.Contains(t, app.Twilio.Messages()[len(app.Twilio.Messages())-1].Body, "thank you for your visit")
}

func TestOnTheWay(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	app.StartWorker(2)
	require.Equal(t, 201, s.putAppointment(t, "appt-1", app.Clock.Now().Add(time.Hour), "scheduled").Status)
	r := s.do(t, http.MethodPost, "/v1/appointments/appt-1/on-the-way", nil, "Idempotency-Key", "otw-1")
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	again := s.do(t, http.MethodPost, "/v1/appointments/appt-1/on-the-way", nil, "Idempotency-Key", "otw-1")
	require.Equal(t, r.Body, again.Body, "a retried request sends nothing new")
	otw := find(s.messages(t, "appt-1"), "on_the_way", "")
	require.Len(t, otw, 2)
	s.waitStatus(t, ids(otw), "sent")
	var found bool
	for _, m := range app.Twilio.Messages() {
		found = found || strings.Contains(m.Body, "Sam is on the way to 1 Main St")
	}
	require.True(t, found)

	require.Equal(t, 200, s.putAppointment(t, "appt-1", app.Clock.Now().Add(time.Hour), "cancelled").Status)
	r = s.do(t, http.MethodPost, "/v1/appointments/appt-1/on-the-way", nil)
	require.Equal(t, http.StatusConflict, r.Status)
	require.Equal(t, "appointment_not_scheduled", r.ErrorCode())
	require.Equal(t, 404, s.do(t, http.MethodPost, "/v1/appointments/nope/on-the-way", nil).Status)

	other := newShop(t, app, "Other Co")
	require.Equal(t, 404, other.do(t, http.MethodPost, "/v1/appointments/appt-1/on-the-way", nil).Status,
		"another tenant's appointment is unknown")
	require.Equal(t, 404, other.do(t, http.MethodGet, "/v1/appointments/appt-1/messages", nil).Status)
	require.Equal(t, 404, other.do(t, http.MethodGet, "/v1/appointments/appt-1", nil).Status)
}

// Two identical PUTs racing plan the appointment once.
func TestConcurrentPutsPlanOnce(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	startsAt := app.Clock.Now().Add(72 * time.Hour)
	var wg sync.WaitGroup
	codes := make([]int, 8)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = s.putAppointment(t, "appt-1", startsAt, "scheduled").Status
		}()
	}
	wg.Wait()
	created := 0
	for _, c := range codes {
		require.Contains(t, []int{200, 201}, c)
		if c == 201 {
			created++
		}
	}
	require.Equal(t, 1, created)
	require.Len(t, s.messages(t, "appt-1"), 4)
}

func TestTemplates(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	path := "/v1/locations/loc-1/templates/confirmation/sms"
	r := s.do(t, http.MethodGet, path, nil)
	require.Equal(t, 200, r.Status)
	require.Equal(t, true, r.JSON()["builtin"])

	r = s.do(t, http.MethodPut, path, map[string]any{"body": "Hi {first_name}, see you {date}"})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status)
	require.Contains(t, r.JSON()["error"].(map[string]any)["details"].(map[string]any)["body"], "unknown placeholder {first_name}")
	r = s.do(t, http.MethodPut, path, map[string]any{"body": "Hi", "subject": "x"})
	require.Equal(t, http.StatusUnprocessableEntity, r.Status)
	require.Equal(t, 404, s.do(t, http.MethodPut, "/v1/locations/loc-1/templates/birthday/sms", map[string]any{"body": "x"}).Status)
	require.Equal(t, 404, s.do(t, http.MethodPut, "/v1/locations/nope/templates/confirmation/sms", map[string]any{"body": "x"}).Status)

	r = s.do(t, http.MethodPut, path, map[string]any{"body": "{business} here: {customer}, {technician} comes {date} {time}."})
	require.Equal(t, 200, r.Status, string(r.Body))
	r = s.do(t, http.MethodPut, "/v1/locations/loc-1/templates/confirmation/email",
		map[string]any{"subject": "Booked: {date}", "body": "See you, {customer}."})
	require.Equal(t, 200, r.Status, string(r.Body))
	loc := s.do(t, http.MethodGet, "/v1/locations/loc-1", nil).JSON()
	require.Len(t, loc["templates"], 2)

	app.StartWorker(2)
	startsAt := app.Clock.Now().Add(48 * time.Hour).Truncate(time.Minute)
	require.Equal(t, 201, s.putAppointment(t, "appt-1", startsAt, "scheduled").Status)
	s.waitStatus(t, ids(find(s.messages(t, "appt-1"), "confirmation", "")), "sent")
	local := startsAt.In(notify.Zone(s.zone))
	require.Equal(t, "Acme Repair here: Pat, Sam comes "+local.Format("Mon, Jan 2")+" "+local.Format("3:04 PM MST")+".",
		app.Twilio.Messages()[0].Body)
	require.Equal(t, "Booked: "+local.Format("Mon, Jan 2"), app.Resend.Emails()[0].Subject)

	r = s.do(t, http.MethodDelete, path, nil)
	require.Equal(t, 200, r.Status)
	require.Equal(t, true, r.JSON()["builtin"])
	require.Equal(t, true, s.do(t, http.MethodGet, path, nil).JSON()["builtin"])
}

func TestLocationAndAppointmentValidation(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	loc := s.do(t, http.MethodGet, "/v1/locations/loc-1", nil).JSON()
	require.Equal(t, map[string]any{"start": "21:00", "end": "08:00"}, loc["quiet_hours"])
	require.Equal(t, "24h", loc["notifications"].(map[string]any)["follow_up"].(map[string]any)["delay"])

	r := s.do(t, http.MethodPut, "/v1/locations/loc-2", map[string]any{"name": "X", "timezone": "Mars/Base",
		"notifications": map[string]any{"reminder": map[string]any{"offsets": []string{"soon"}}},
		"quiet_hours":   map[string]any{"start": "9pm"}})
	require.Equal(t, 422, r.Status)
	details := r.JSON()["error"].(map[string]any)["details"].(map[string]any)
	require.Contains(t, details, "timezone")
	require.Contains(t, details, "notifications.reminder.offsets")
	require.Contains(t, details, "quiet_hours.start")
	r = s.do(t, http.MethodPut, "/v1/locations/loc-2", map[string]any{"name": "X", "timezone": "UTC",
		"notifications": map[string]any{"birthday": map[string]any{}}})
	require.Equal(t, 422, r.Status, "unknown fields are refused")

	r = s.putAppointment(t, "appt-1", app.Clock.Now(), "rescheduled")
	require.Equal(t, 422, r.Status)
	r = s.do(t, http.MethodPut, "/v1/appointments/appt-1", map[string]any{"contact_id": "cust-1", "location_id": "loc-1"})
	require.Equal(t, 422, r.Status)
	require.Contains(t, r.JSON()["error"].(map[string]any)["details"], "starts_at")
	r = s.do(t, http.MethodPut, "/v1/appointments/appt-1", map[string]any{"contact_id": "nobody", "location_id": "loc-1",
		"starts_at": app.Clock.Now().Format(time.RFC3339)})
	require.Equal(t, 404, r.Status)
	require.Contains(t, r.JSON()["error"].(map[string]any)["details"], "contact_id")
	require.Equal(t, 404, s.do(t, http.MethodGet, "/v1/appointments/appt-1", nil).Status, "nothing was created")
}

// A million future appointments are not a million Redis entries: their
// reminders wait in PostgreSQL until the due-scan brings the ones due
// within the horizon, and the scan's cost follows what is due.
func TestFarFutureRemindersWaitInPostgres(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	s.putLocation(t, "loc-1", map[string]any{"notifications": map[string]any{"confirmation": map[string]any{"sms": false, "email": false},
		"reminder": map[string]any{"email": false}}})
	scan(t, app)
	base := app.Clock.Now().Add(30 * 24 * time.Hour)
	for i := range 60 {
		require.Equal(t, 201, s.putAppointment(t, "appt-"+strconv.Itoa(i), base.Add(time.Duration(i)*time.Hour), "scheduled").Status)
	}
	q, err := app.Inspector.GetQueueInfo(jobs.QueueNotifications)
	require.NoError(t, err)
	require.Zero(t, q.Size, "nothing in Redis")
	app.Clock.Set(base.Add(-24*time.Hour - 10*time.Minute))
	res := scan(t, app)
	require.Equal(t, 1, res.Enqueued, "only the reminder due within the horizon")
	app.Clock.Advance(2 * time.Hour)
	require.Equal(t, 2, scan(t, app).Enqueued)
}

// A reminder the provider accepted but whose answer was lost, and whose
// appointment then moved, is found at the provider under the words it was
// sent with, not sent again with the new ones.
func TestRetriedReminderOfAMovedAppointmentIsNotResent(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	s.putLocation(t, "loc-1", map[string]any{"notifications": map[string]any{"confirmation": map[string]any{"sms": false, "email": false},
		"reminder": map[string]any{"email": false}}})
	startsAt := app.Clock.Now().Add(24*time.Hour + time.Minute).Truncate(time.Minute)
	require.Equal(t, 201, s.putAppointment(t, "appt-1", startsAt, "scheduled").Status)
	reminder := find(s.messages(t, "appt-1"), "reminder", "sms")[0]
	app.Clock.Set(startsAt.Add(-24 * time.Hour))
	send := jobs.NewMessageSend(app.Deps)
	j := jobs.NewMessageSendJob(s.tenant.ID, app.MustUUID(reminder.ID), "reminder")
	app.Twilio.FailNext(1, fakes.Fault{AcceptThenFail: true, Status: 500})
	require.Error(t, send.ProcessTask(context.Background(), asynq.NewTask(j.Type, j.Payload)))
	require.Equal(t, "queued", s.message(t, reminder.ID).Status)

	moved := startsAt.Add(3 * time.Hour)
	require.Equal(t, 200, s.putAppointment(t, "appt-1", moved, "scheduled").Status)
	require.True(t, s.message(t, reminder.ID).SendAt.Equal(reminder.SendAt), "an attempted reminder stays put")

	app.Clock.Advance(2 * time.Minute) // the attempt's claim is stale
	require.NoError(t, send.ProcessTask(context.Background(), asynq.NewTask(j.Type, j.Payload)))
	got := s.message(t, reminder.ID)
	require.Equal(t, "sent", got.Status)
	require.Equal(t, 1, app.Twilio.Count(), "found at the provider, not sent again")
	require.Equal(t, app.Twilio.Messages()[0].SID, *got.ProviderMessageID)
}

// A worker claiming an appointment's message and a PUT cancelling the
// appointment at the same moment must not deadlock: the claim checks the
// message's foreign key to the appointment (KEY SHARE) while the PUT,
// holding the appointment, waits for the message.
func TestClaimAndCancelDoNotDeadlock(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	require.Equal(t, 201, s.putAppointment(t, "appt-1", app.Clock.Now().Add(72*time.Hour), "scheduled").Status)
	reminder := find(s.messages(t, "appt-1"), "reminder", "sms")[0]
	id := app.MustUUID(reminder.ID)
	ctx := context.Background()
	owner := testenv.Owner(t)
	putDone := make(chan int)
	err := app.Store.InTenant(ctx, s.tenant.ID, func(q *db.Queries) error {
		if _, err := q.MessageLock(ctx, db.MessageLockParams{TenantID: s.tenant.ID, ID: id}); err != nil {
			return err
		}
		claim := db.MessageClaimParams{TenantID: s.tenant.ID, ID: id, Now: app.Clock.Now()}
		if err := q.MessageClaim(ctx, claim); err != nil {
			return err
		}
		go func() {
			putDone <- s.putAppointment(t, "appt-1", app.Clock.Now().Add(72*time.Hour), "cancelled").Status
		}()
		app.Eventually(10*time.Second, "the PUT waiting for the message", func() bool {
			var waiting int
			require.NoError(t, owner.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE NOT granted").Scan(&waiting))
			return waiting > 0
		})
		// Updating a row this transaction already updated checks its
		// foreign keys again: the appointment, which the PUT holds.
		return q.MessageClaim(ctx, claim)
	})
	require.NoError(t, err)
	require.Equal(t, 200, <-putDone)
	require.Equal(t, "sending", s.message(t, reminder.ID).Status, "claimed first: the PUT leaves it to its worker")
}

// Cancelling an appointment cancels its unclaimed messages at once and
// leaves one an attempt has claimed to its task: the task asks Twilio
// first and records the text as sent if Twilio had accepted it (the
// customer has it), cancelled only if not. Either way nothing is sent
// again, and a delivery report still lands.
func TestCancelledAppointmentReconcilesAClaimedMessage(t *testing.T) {
	for _, accepted := range []bool{true, false} {
		t.Run("accepted="+strconv.FormatBool(accepted), func(t *testing.T) {
			app := testapp.New(t)
			s := newShop(t, app, "Acme Repair")
			s.putLocation(t, "loc-1", map[string]any{"notifications": map[string]any{
				"confirmation": map[string]any{"email": false}, "reminder": map[string]any{"email": false}}})
			require.Equal(t, 201, s.putAppointment(t, "appt-1", app.Clock.Now().Add(72*time.Hour), "scheduled").Status)
			conf := find(s.messages(t, "appt-1"), "confirmation", "sms")[0]
			fault := fakes.Fault{Status: 500}
			if accepted {
				fault.AcceptThenFail = true
			}
			app.Twilio.FailNext(1, fault)
			require.Error(t, runSend(t, app, s.tenant.ID, conf.ID, "confirmation"))
			require.Equal(t, "queued", s.message(t, conf.ID).Status)

			require.Equal(t, 200, s.putAppointment(t, "appt-1", app.Clock.Now().Add(72*time.Hour), "cancelled").Status)
			ms := s.messages(t, "appt-1")
			require.Equal(t, "queued", find(ms, "confirmation", "sms")[0].Status, "claimed: left to its task")
			require.Equal(t, "cancelled", find(ms, "reminder", "sms")[0].Status, "never claimed: cancelled at once")

			app.Clock.Advance(time.Minute)
			require.NoError(t, runSend(t, app, s.tenant.ID, conf.ID, "confirmation"))
			got := s.message(t, conf.ID)
			if !accepted {
				require.Equal(t, "cancelled", got.Status)
				require.Equal(t, "the appointment is cancelled", *got.Error)
				require.Zero(t, app.Twilio.Count(), "not sent for a cancelled appointment")
				return
			}
			require.Equal(t, "sent", got.Status, "the customer has it: it is not labelled cancelled")
			require.Equal(t, 1, app.Twilio.Count(), "found at Twilio, not sent again")
			require.Equal(t, app.Twilio.Messages()[0].SID, *got.ProviderMessageID)
			status, err := app.Twilio.Report(*got.ProviderMessageID, "delivered", 0)
			require.NoError(t, err)
			require.Equal(t, 204, status)
			require.Equal(t, "delivered", s.message(t, conf.ID).Status)
		})
	}
}

// A text states the appointment's time on the recipient's clock: the
// contact's zone when it has one, not the location's.
func TestTextShowsTheContactsLocalTime(t *testing.T) {
	app := testapp.New(t)
	s := newShop(t, app, "Acme Repair")
	contactZone := notify.ZoneWhereItIs(app.Clock.Now(), 15) // three hours ahead of the location, and awake
	require.NotEqual(t, s.zone, contactZone)
	s.putContact(t, "cust-1", map[string]any{"name": "Pat Doe", "phone": custPhone, "timezone": contactZone})
	s.putLocation(t, "loc-1", map[string]any{"notifications": map[string]any{"confirmation": map[string]any{"email": false},
		"reminder": map[string]any{"sms": false, "email": false}}})
	app.StartWorker(2)
	startsAt := app.Clock.Now().Add(48 * time.Hour).Truncate(time.Minute)
	require.Equal(t, 201, s.putAppointment(t, "appt-1", startsAt, "scheduled").Status)
	s.waitStatus(t, ids(find(s.messages(t, "appt-1"), "confirmation", "sms")), "sent")
	body := app.Twilio.Messages()[0].Body
	contactTime := startsAt.In(notify.Zone(contactZone)).Format("3:04 PM MST")
	locationTime := startsAt.In(notify.Zone(s.zone)).Format("3:04 PM MST")
	require.NotEqual(t, contactTime, locationTime)
	require.Contains(t, body, contactTime)
	require.NotContains(t, body, locationTime)
	require.Contains(t, body, startsAt.In(notify.Zone(contactZone)).Format("Mon, Jan 2"))
}
