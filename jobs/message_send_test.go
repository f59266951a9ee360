package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/internal/testapp"
	"github.com/errandhq/errand/internal/testenv"
	"github.com/errandhq/errand/jobs"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashWorkerEnv) != "" {
		os.Exit(runCrashWorker()) // this process is a worker the crash test will kill (crash_test.go)
	}
	testenv.Main(m)
}

const (
	testPhone = "+13125550142"
	testEmail = "pat.doe@example.com"
	testName  = "Pat Doe-Quimby"
)

type fixture struct {
	app     *testapp.App
	tenant  testapp.Tenant
	contact db.ContactUpsertRow
}

func setup(t *testing.T) fixture {
	t.Helper()
	app := testapp.New(t)
	tenant := app.NewTenant("Acme Repair " + uuid.NewString()[:8])
	var c db.ContactUpsertRow
	phone, email := testPhone, testEmail
	err := app.Store.InTenant(context.Background(), tenant.ID, func(q *db.Queries) (err error) {
		c, err = q.ContactUpsert(context.Background(), db.ContactUpsertParams{TenantID: tenant.ID,
			ExternalID: "cust-1", Name: testName, Phone: &phone, Email: &email, Now: app.Clock.Now()})
		return err
	})
	require.NoError(t, err)
	return fixture{app: app, tenant: tenant, contact: c}
}

// create inserts a message the way the intake does and enqueues it when due
// within the horizon.
func (f fixture) create(t *testing.T, channel, body string, sendAt time.Time) db.Message {
	t.Helper()
	var m db.Message
	err := f.app.Store.InTenant(context.Background(), f.tenant.ID, func(q *db.Queries) (err error) {
		m, err = f.app.Dispatcher.InsertMessage(context.Background(), q, jobs.NewMessage{TenantID: f.tenant.ID,
			ContactID: f.contact.ID, Kind: "manual", Channel: channel, Body: body, SendAt: sendAt})
		return err
	})
	require.NoError(t, err)
	f.app.Dispatcher.EnqueueMessages(context.Background(), m)
	return m
}

func (f fixture) handler() *jobs.MessageSend {
	d := f.app.Deps
	return jobs.NewMessageSend(d)
}

func task(m db.Message) *asynq.Task {
	j := jobs.NewMessageSendJob(m.TenantID, m.ID, m.Kind)
	return asynq.NewTask(j.Type, j.Payload)
}

func (f fixture) status(t *testing.T, m db.Message) db.Message {
	return f.app.Message(f.tenant.ID, m.ID)
}

func TestTaskRunTwiceSendsOnce(t *testing.T) {
	f := setup(t)
	for _, channel := range []string{"sms", "email"} {
		m := f.create(t, channel, "Your visit is confirmed", f.app.Clock.Now())
		h := f.handler()
		require.NoError(t, h.ProcessTask(context.Background(), task(m)))
		require.NoError(t, h.ProcessTask(context.Background(), task(m)))
		got := f.status(t, m)
		require.Equal(t, "sent", got.Status, channel)
		require.NotNil(t, got.ProviderMessageID)
		require.EqualValues(t, 1, got.Attempts)
	}
	require.Equal(t, 1, f.app.Twilio.Count())
	require.Equal(t, testPhone, f.app.Twilio.Messages()[0].To)
	require.Equal(t, 1, f.app.Resend.Count())
	require.Equal(t, []string{testEmail}, f.app.Resend.Emails()[0].To)
}

func TestConcurrentRunsSendOnce(t *testing.T) {
	f := setup(t)
	m := f.create(t, "sms", "Your tech is on the way", f.app.Clock.Now())
	f.app.Twilio.FailNext(1, fakes.Fault{Delay: 200 * time.Millisecond}) // hold the first call open
	h := f.handler()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = h.ProcessTask(context.Background(), task(m))
		}()
	}
	wg.Wait()
	require.Equal(t, 1, f.app.Twilio.Count(), "exactly one send whatever the interleaving")
	require.Equal(t, "sent", f.status(t, m).Status)
	backedOff := 0
	for _, err := range errs {
		if err != nil {
			require.ErrorContains(t, err, "another worker is sending")
			backedOff++
		}
	}
	require.LessOrEqual(t, backedOff, 3)
}

// The provider accepted the text but its answer was lost (a 500 after
// acceptance, a timeout): the retry finds it at Twilio instead of sending again.
func TestAcceptedButUnconfirmedIsNotResent(t *testing.T) {
	f := setup(t)
	m := f.create(t, "sms", "Reminder: visit tomorrow at 9", f.app.Clock.Now())
	f.app.Twilio.FailNext(1, fakes.Fault{AcceptThenFail: true, Status: 500})
	h := f.handler()
	err := h.ProcessTask(context.Background(), task(m))
	require.Error(t, err, "a 500 is transient")
	require.Equal(t, "queued", f.status(t, m).Status)
	require.NotNil(t, f.status(t, m).Error)

	require.NoError(t, h.ProcessTask(context.Background(), task(m)))
	got := f.status(t, m)
	require.Equal(t, "sent", got.Status)
	require.Equal(t, 1, f.app.Twilio.Count(), "found at the provider, not resent")
	require.Equal(t, f.app.Twilio.Messages()[0].SID, *got.ProviderMessageID)
}

// A worker died between claiming and recording (the row says 'sending').
// A fresh claim makes other runs back off; once the claim is stale the next
// run asks Twilio and records what it finds.
func TestWorkerDeathAfterAcceptanceIsReconciled(t *testing.T) {
	f := setup(t)
	m := f.create(t, "sms", "Your tech Sam is 10 minutes away", f.app.Clock.Now())
	killed := make(chan struct{})
	f.app.Twilio.FailNext(1, fakes.Fault{Hang: true})
	f.app.Twilio.OnAccept(func(fakes.TwilioMessage) { close(killed) })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.handler().ProcessTask(ctx, task(m)) }()
	<-killed
	cancel() // the worker is gone: its provider call never returns an answer
	<-done
	require.Equal(t, 1, f.app.Twilio.Count())
	// The handler may have recorded a transient failure on its way out; a
	// SIGKILL would not have. Put the row back as a killed worker leaves it.
	_, err := testenv.Owner(t).Exec(context.Background(),
		"UPDATE messages SET status = 'sending', error = NULL, due_at = $2 WHERE id = $1", m.ID, f.app.Clock.Now())
	require.NoError(t, err)

	f.app.Twilio.OnAccept(nil)
	err = f.handler().ProcessTask(context.Background(), task(m))
	require.ErrorContains(t, err, "another worker is sending", "a fresh claim is respected")

	f.app.Clock.Advance(2 * time.Minute)
	require.NoError(t, f.handler().ProcessTask(context.Background(), task(m)))
	got := f.status(t, m)
	require.Equal(t, "sent", got.Status)
	require.Equal(t, 1, f.app.Twilio.Count(), "never sent twice")
	require.Equal(t, f.app.Twilio.Messages()[0].SID, *got.ProviderMessageID)
}

func TestProviderOutcomesAreRecorded(t *testing.T) {
	cases := []struct {
		name   string
		fault  fakes.Fault
		status string
		reason string
		retry  bool
	}{
		{"invalid number", fakes.Fault{Code: 21211}, "failed", "invalid", false},
		{"opted out at twilio", fakes.Fault{Code: 21610}, "suppressed", "", false},
		{"server error", fakes.Fault{Status: 503}, "queued", "", true},
		{"rate limited", fakes.Fault{Status: 429, RetryAfter: "7"}, "queued", "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := setup(t)
			m := f.create(t, "sms", "Hello from Acme", f.app.Clock.Now())
			f.app.Twilio.FailNext(1, c.fault)
			err := f.handler().ProcessTask(context.Background(), task(m))
			got := f.status(t, m)
			require.Equal(t, c.status, got.Status)
			require.NotNil(t, got.Error)
			require.Contains(t, *got.Error, c.reason)
			require.NotContains(t, *got.Error, testPhone, "reasons never carry the number")
			if c.retry {
				require.Error(t, err)
				require.False(t, errors.Is(err, asynq.SkipRetry))
				require.True(t, got.DueAt.After(f.app.Clock.Now()), "the retry time is on the row")
			} else if c.status == "failed" {
				require.ErrorIs(t, err, asynq.SkipRetry)
			}
		})
	}
	t.Run("retry-after is honoured", func(t *testing.T) {
		f := setup(t)
		m := f.create(t, "sms", "Hello", f.app.Clock.Now())
		f.app.Twilio.FailNext(1, fakes.Fault{Status: 429, RetryAfter: "7"})
		err := f.handler().ProcessTask(context.Background(), task(m))
		require.Error(t, err)
		require.Equal(t, 7*time.Second, jobs.DefaultRetry.RetryDelay(0, err, nil))
		require.Equal(t, f.app.Clock.Now().Add(7*time.Second), f.status(t, m).DueAt)
	})
}

func TestNoDestinationIsSuppressed(t *testing.T) {
	f := setup(t)
	_, err := testenv.Owner(t).Exec(context.Background(), "UPDATE contacts SET phone = NULL WHERE id = $1", f.contact.ID)
	require.NoError(t, err)
	m := f.create(t, "sms", "Hello", f.app.Clock.Now())
	require.NoError(t, f.handler().ProcessTask(context.Background(), task(m)))
	got := f.status(t, m)
	require.Equal(t, "suppressed", got.Status)
	require.Equal(t, "contact has no phone number", *got.Error)
	require.Zero(t, f.app.Twilio.Requests())
}

func TestEarlyTaskIsDeferredNotSent(t *testing.T) {
	f := setup(t)
	m := f.create(t, "sms", "Later", f.app.Clock.Now().Add(5*time.Minute))
	require.NotNil(t, m.EnqueuedAt)
	require.NoError(t, f.handler().ProcessTask(context.Background(), task(m)))
	got := f.status(t, m)
	require.Equal(t, "scheduled", got.Status)
	require.Nil(t, got.EnqueuedAt, "handed back to the due-scan")
	require.Zero(t, f.app.Twilio.Requests())
}

// With a worker: transient failures retry quickly, then the message goes
// out once.
func TestWorkerRetriesTransientFailures(t *testing.T) {
	f := setup(t)
	f.app.StartWorker(2)
	f.app.Twilio.FailNext(3, fakes.Fault{Status: 500})
	m := f.create(t, "sms", "Retry me", f.app.Clock.Now())
	f.app.Eventually(10*time.Second, "message sent", func() bool { return f.status(t, m).Status == "sent" })
	require.Equal(t, 1, f.app.Twilio.Count())
	require.EqualValues(t, 4, f.status(t, m).Attempts)
}

// Every run of a task is counted by type and outcome and timed
// (errand_job_outcomes_total, errand_job_duration_seconds): a refused
// attempt counts as a retry, the one that goes through as a success.
func TestJobRunsAreCountedAndTimed(t *testing.T) {
	f := setup(t)
	outcomes := f.app.Metrics.JobOutcomes
	f.app.StartWorker(2)
	f.app.Twilio.FailNext(1, fakes.Fault{Status: 500})
	m := f.create(t, "sms", "Count me", f.app.Clock.Now())
	f.app.Eventually(10*time.Second, "the successful run counted", func() bool {
		return testutil.ToFloat64(outcomes.WithLabelValues(jobs.TypeMessageSend, "succeeded")) == 1
	})
	require.Equal(t, "sent", f.status(t, m).Status)
	require.Equal(t, 1.0, testutil.ToFloat64(outcomes.WithLabelValues(jobs.TypeMessageSend, "retry")))
	require.Zero(t, testutil.ToFloat64(outcomes.WithLabelValues(jobs.TypeMessageSend, "failed")))

	families, err := f.app.Metrics.Registry.Gather()
	require.NoError(t, err)
	var runs uint64
	for _, fam := range families {
		if fam.GetName() != "errand_job_duration_seconds" {
			continue
		}
		for _, s := range fam.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "type" && l.GetValue() == jobs.TypeMessageSend {
					runs += s.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	require.EqualValues(t, 2, runs, "both runs timed")
}

// When asynq gives up (retries exhausted) the row says failed, with the
// last error, so ops never need to read Redis.
func TestArchivedTaskMarksRowFailed(t *testing.T) {
	f := setup(t)
	f.app.StartWorker(2)
	f.app.Twilio.FailNext(100, fakes.Fault{Status: 502})
	m := f.create(t, "sms", "Doomed", f.app.Clock.Now())
	f.app.Eventually(30*time.Second, "message failed", func() bool { return f.status(t, m).Status == "failed" })
	got := f.status(t, m)
	require.True(t, strings.HasPrefix(*got.Error, "gave up: "), *got.Error)
	require.Contains(t, *got.Error, "502")
	job := jobs.NewMessageSendJob(m.TenantID, m.ID, m.Kind)
	info, err := f.app.Inspector.GetTaskInfo(job.Queue, job.ID)
	require.NoError(t, err)
	require.Equal(t, asynq.TaskStateArchived, info.State)
	require.Zero(t, f.app.Twilio.Count())
}

func TestPermanentFailureIsArchivedWithReason(t *testing.T) {
	f := setup(t)
	f.app.StartWorker(2)
	f.app.Twilio.FailNext(1, fakes.Fault{Code: 21211})
	m := f.create(t, "sms", "Wrong number", f.app.Clock.Now())
	f.app.Eventually(10*time.Second, "message failed", func() bool { return f.status(t, m).Status == "failed" })
	require.Contains(t, *f.status(t, m).Error, "invalid")
	require.EqualValues(t, 1, f.status(t, m).Attempts, "no retry")
}

func TestPayloadIsIDsOnly(t *testing.T) {
	f := setup(t)
	m := f.create(t, "sms", "secret body", f.app.Clock.Now())
	j := jobs.NewMessageSendJob(m.TenantID, m.ID, m.Kind)
	var p map[string]any
	require.NoError(t, json.Unmarshal(j.Payload, &p))
	require.Equal(t, map[string]any{"tenant_id": m.TenantID.String(), "message_id": m.ID.String()}, p)
	require.Equal(t, "message:"+m.ID.String(), j.ID)
}

func TestSuppressedAddressGetsNothing(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	hash := f.app.Deps.Pseudonyms.Address("sms", testPhone)
	require.NoError(t, f.app.Store.InTenant(ctx, f.tenant.ID, func(q *db.Queries) error {
		return q.SuppressionAdd(ctx, db.SuppressionAddParams{TenantID: f.tenant.ID, Channel: "sms", AddressHash: hash,
			Reason: "opted_out", Source: "twilio_inbound", Now: f.app.Clock.Now()})
	}))
	sms := f.create(t, "sms", "Hello", f.app.Clock.Now())
	email := f.create(t, "email", "Hello", f.app.Clock.Now())
	require.NoError(t, f.handler().ProcessTask(ctx, task(sms)))
	require.NoError(t, f.handler().ProcessTask(ctx, task(email)))
	require.Equal(t, "suppressed", f.status(t, sms).Status)
	require.Equal(t, "recipient opted out", *f.status(t, sms).Error)
	require.Equal(t, "sent", f.status(t, email).Status, "an SMS opt-out does not stop email")
	require.Zero(t, f.app.Twilio.Requests())
}

// Twilio's 21610 (the recipient replied STOP to the carrier) suppresses the
// number for this tenant, with a record, and the next text is not attempted.
func TestCarrierOptOutSuppressesTheNumber(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	f.app.Twilio.OptOut(testPhone)
	first := f.create(t, "sms", "First", f.app.Clock.Now())
	require.NoError(t, f.handler().ProcessTask(ctx, task(first)))
	require.Equal(t, "suppressed", f.status(t, first).Status)
	requests := f.app.Twilio.Requests()

	second := f.create(t, "sms", "Second", f.app.Clock.Now())
	require.NoError(t, f.handler().ProcessTask(ctx, task(second)))
	require.Equal(t, "suppressed", f.status(t, second).Status)
	require.Equal(t, requests, f.app.Twilio.Requests(), "not attempted")

	var events []db.SuppressionEvent
	require.NoError(t, f.app.Store.InTenant(ctx, f.tenant.ID, func(q *db.Queries) (err error) {
		events, err = q.SuppressionEventList(ctx, db.SuppressionEventListParams{TenantID: f.tenant.ID, Channel: "sms",
			AddressHash: f.app.Deps.Pseudonyms.Address("sms", testPhone)})
		return err
	}))
	require.Len(t, events, 1)
	require.Equal(t, "opt_out", events[0].Action)
	require.Equal(t, "twilio_21610", events[0].Source)
}

type codeRenderer struct{ calls int }

func (r *codeRenderer) Render(_ context.Context, _ *db.Queries, m db.Message) (jobs.Rendered, error) {
	r.calls++
	if m.Body == "broken" {
		return jobs.Rendered{}, jobs.Permanent(errors.New("template refers to a deleted appointment"))
	}
	return jobs.Rendered{Body: "Your code is 123456"}, nil
}

// Kinds with a renderer are written at send time; their stored body is
// never sent.
func TestRendererWritesTheTextAtSendTime(t *testing.T) {
	f := setup(t)
	r := &codeRenderer{}
	f.app.Deps.Renderers = map[string]jobs.Renderer{"manual": r}
	m := f.create(t, "sms", "stored placeholder", f.app.Clock.Now())
	require.NoError(t, f.handler().ProcessTask(context.Background(), task(m)))
	require.Equal(t, "Your code is 123456", f.app.Twilio.Messages()[0].Body)
	require.Equal(t, 1, r.calls)

	bad := f.create(t, "sms", "broken", f.app.Clock.Now())
	require.NoError(t, f.handler().ProcessTask(context.Background(), task(bad)))
	got := f.status(t, bad)
	require.Equal(t, "failed", got.Status)
	require.Equal(t, "template refers to a deleted appointment", *got.Error)
}

// A message with no contact goes to the tenant's owner by email.
func TestMessageWithoutContactGoesToTheOwner(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	create := func() db.Message {
		var m db.Message
		require.NoError(t, f.app.Store.InTenant(ctx, f.tenant.ID, func(q *db.Queries) (err error) {
			m, err = f.app.Dispatcher.InsertMessage(ctx, q, jobs.NewMessage{TenantID: f.tenant.ID, Kind: "notice",
				Channel: "email", Body: "Our privacy policy changes on 1 March", SendAt: f.app.Clock.Now()})
			return err
		}))
		return m
	}
	m := create()
	require.NoError(t, f.handler().ProcessTask(ctx, task(m)))
	require.Equal(t, "suppressed", f.status(t, m).Status)
	require.Equal(t, "the tenant has no owner email address", *f.status(t, m).Error)

	owner := "owner@acme.example"
	_, err := f.app.Store.Q().TenantSetOwnerEmail(ctx, db.TenantSetOwnerEmailParams{ID: f.tenant.ID, OwnerEmail: &owner, Now: f.app.Clock.Now()})
	require.NoError(t, err)
	m = create()
	require.NoError(t, f.handler().ProcessTask(ctx, task(m)))
	require.Equal(t, "sent", f.status(t, m).Status)
	require.Equal(t, []string{owner}, f.app.Resend.Emails()[0].To)
}
