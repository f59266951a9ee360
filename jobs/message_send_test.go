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
	"github.com/errandhq/errand/internal/provider"
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

// setup2 is another tenant, with a contact at the same number, in app.
func setup2(t *testing.T, app *testapp.App) fixture {
	t.Helper()
	tenant := app.NewTenant("Bolt Plumbing " + uuid.NewString()[:8])
	var c db.ContactUpsertRow
	phone := testPhone
	err := app.Store.InTenant(context.Background(), tenant.ID, func(q *db.Queries) (err error) {
		c, err = q.ContactUpsert(context.Background(), db.ContactUpsertParams{TenantID: tenant.ID,
			ExternalID: "cust-1", Name: testName, Phone: &phone, Now: app.Clock.Now()})
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
		{"twilio refuses our credentials", fakes.Fault{Status: 401}, "failed", "rejected credentials", false},
		{"twilio forbids", fakes.Fault{Status: 403}, "failed", "rejected credentials", false},
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
	for _, c := range []struct {
		name       string
		retryAfter string
		want       time.Duration
	}{
		{"retry-after is honoured", "7", 7 * time.Second},
		{"retry-after is capped at the policy's maximum", "86400", jobs.DefaultRetry.Cap},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := setup(t)
			f.app.Deps.Retry = jobs.DefaultRetry
			m := f.create(t, "sms", "Hello", f.app.Clock.Now())
			f.app.Twilio.FailNext(1, fakes.Fault{Status: 429, RetryAfter: c.retryAfter})
			err := f.handler().ProcessTask(context.Background(), task(m))
			require.Error(t, err)
			require.Equal(t, c.want, jobs.DefaultRetry.RetryDelay(0, err, nil))
			require.Equal(t, f.app.Clock.Now().Add(c.want), f.status(t, m).DueAt)
		})
	}
}

// Credentials the provider refuses fail every message the same way until
// an operator fixes the configuration: each message fails at once with the
// reason (no half hour of retries per message), and the worker logs it at
// ERROR for the operator. Resend likewise.
func TestRejectedCredentialsFailAtOnceAndLoudly(t *testing.T) {
	f := setup(t)
	f.app.Twilio.FailNext(1, fakes.Fault{Status: 401})
	f.app.Resend.FailNext(1, fakes.Fault{Status: 403})
	sms := f.create(t, "sms", "Hello", f.app.Clock.Now())
	email := f.create(t, "email", "Hello", f.app.Clock.Now())
	for _, m := range []db.Message{sms, email} {
		err := f.handler().ProcessTask(context.Background(), task(m))
		require.ErrorIs(t, err, asynq.SkipRetry, m.Channel)
		got := f.status(t, m)
		require.Equal(t, "failed", got.Status, m.Channel)
		require.Contains(t, *got.Error, "provider rejected credentials", m.Channel)
		require.EqualValues(t, 1, got.Attempts)
	}
	logs := f.app.Logs.String()
	require.Contains(t, logs, `"level":"ERROR","msg":"provider rejected Errand's credentials`)
	require.Contains(t, logs, `"channel":"email"`)
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

// suppress puts address on the tenant's suppression list, as an opt-out
// or a bounce would.
func (f fixture) suppress(t *testing.T, channel, address, reason, source string) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, f.app.Store.InTenant(ctx, f.tenant.ID, func(q *db.Queries) error {
		return q.SuppressionAdd(ctx, db.SuppressionAddParams{TenantID: f.tenant.ID, Channel: channel,
			AddressHash: f.app.Deps.Pseudonyms.Address(channel, address), Reason: reason, Source: source, Now: f.app.Clock.Now()})
	}))
}

func TestSuppressedAddressGetsNothing(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	f.suppress(t, "sms", testPhone, "opted_out", "twilio_inbound")
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

// A decision not to send (here: the number opted out meanwhile) taken
// after an attempt whose outcome is unknown is recorded only once Twilio
// says it has no such message: the customer has this one, so it is sent,
// not suppressed.
func TestDecisionNotToSendWaitsForTheProvidersWord(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	m := f.create(t, "sms", "Your visit is at 9", f.app.Clock.Now())
	f.app.Twilio.FailNext(1, fakes.Fault{AcceptThenFail: true, Status: 500})
	require.Error(t, f.handler().ProcessTask(ctx, task(m)))
	f.suppress(t, "sms", testPhone, "opted_out", "twilio_inbound")
	require.NoError(t, f.handler().ProcessTask(ctx, task(m)))
	got := f.status(t, m)
	require.Equal(t, "sent", got.Status)
	require.Equal(t, f.app.Twilio.Messages()[0].SID, *got.ProviderMessageID)

	// Not accepted: the decision stands, and nothing is sent.
	n := f.create(t, "sms", "Your visit moved to 10", f.app.Clock.Now())
	f.app.Twilio.FailNext(1, fakes.Fault{Status: 500})
	_, err := testenv.Owner(t).Exec(ctx, "DELETE FROM suppressions WHERE tenant_id = $1", f.tenant.ID)
	require.NoError(t, err)
	require.Error(t, f.handler().ProcessTask(ctx, task(n)))
	f.suppress(t, "sms", testPhone, "opted_out", "twilio_inbound")
	require.NoError(t, f.handler().ProcessTask(ctx, task(n)))
	require.Equal(t, "suppressed", f.status(t, n).Status)
	require.Equal(t, 1, f.app.Twilio.Count())
}

// Twilio may store a text differently from how it was sent (Smart
// Encoding turns curly quotes and long dashes into plain ones; a Messaging
// Service adds an opt-out footer). An attempt whose answer was lost is
// still found under the rewritten words, not sent again.
func TestRewrittenBodyIsFoundNotResent(t *testing.T) {
	f := setup(t)
	f.app.Twilio.Rewrite(func(b string) string {
		return strings.NewReplacer("\u2019", "'", "\u2014", "-").Replace(b) + "\nReply STOP to unsubscribe"
	})
	m := f.create(t, "sms", "Acme\u2019s tech Sam \u2014 on the way, there by 9:40", f.app.Clock.Now())
	f.app.Twilio.FailNext(1, fakes.Fault{AcceptThenFail: true, Status: 500})
	require.Error(t, f.handler().ProcessTask(context.Background(), task(m)))
	f.app.Clock.Advance(time.Minute)
	require.NoError(t, f.handler().ProcessTask(context.Background(), task(m)))
	got := f.status(t, m)
	require.Equal(t, "sent", got.Status)
	require.Equal(t, 1, f.app.Twilio.Count(), "found at Twilio, not sent again")
	require.Equal(t, f.app.Twilio.Messages()[0].SID, *got.ProviderMessageID)
}

// The search for an earlier attempt starts when the message was first
// claimed, not when it was created: the same words texted to the same
// number in between (by hand, from another system) are not this
// message's, and taking them for it would leave it unsent.
func TestReconcileSearchesFromTheFirstClaim(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	const body = "We are closed Monday for the holiday"
	m := f.create(t, "sms", body, f.app.Clock.Now().Add(time.Hour))
	f.app.Clock.Advance(30 * time.Minute)
	other, err := f.app.Deps.SMS.SendSMS(ctx, provider.SMS{To: testPhone, Body: body})
	require.NoError(t, err)

	f.app.Clock.Advance(30 * time.Minute)
	f.app.Twilio.FailNext(1, fakes.Fault{Status: 500}) // refused: this attempt sent nothing
	require.Error(t, f.handler().ProcessTask(ctx, task(m)))
	f.app.Clock.Advance(time.Minute)
	f.app.Twilio.FailNext(1, fakes.Fault{Status: 503}) // and neither did this one
	require.Error(t, f.handler().ProcessTask(ctx, task(m)))
	f.app.Clock.Advance(time.Minute)
	require.NoError(t, f.handler().ProcessTask(ctx, task(m)))
	got := f.status(t, m)
	require.Equal(t, "sent", got.Status)
	require.Equal(t, 2, f.app.Twilio.Count(), "sent: the earlier text was not this message")
	require.NotEqual(t, other.ProviderID, *got.ProviderMessageID)
	require.EqualValues(t, 3, got.Attempts)
}

// A text recorded on another message, of any tenant (the sending number
// is shared), is never taken for this one.
func TestReconcileSkipsAnotherTenantsText(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	const body = "Your appointment is confirmed"
	g := setup2(t, f.app)
	theirs := g.create(t, "sms", body, f.app.Clock.Now())
	require.NoError(t, g.handler().ProcessTask(ctx, task(theirs)))
	require.Equal(t, "sent", g.status(t, theirs).Status)

	m := f.create(t, "sms", body, f.app.Clock.Now())
	f.app.Twilio.FailNext(1, fakes.Fault{Status: 500})
	require.Error(t, f.handler().ProcessTask(ctx, task(m)))
	// The other tenant's text falls in this message's window.
	_, err := testenv.Owner(t).Exec(ctx, "UPDATE messages SET first_claimed_at = first_claimed_at - interval '10 seconds' WHERE id = $1", m.ID)
	require.NoError(t, err)
	f.app.Clock.Advance(time.Minute)
	require.NoError(t, f.handler().ProcessTask(ctx, task(m)))
	got := f.status(t, m)
	require.Equal(t, "sent", got.Status)
	require.Equal(t, 2, f.app.Twilio.Count())
	require.NotEqual(t, *g.status(t, theirs).ProviderMessageID, *got.ProviderMessageID)
}

// flakyLookup is an SMS sender whose next lookups fail.
type flakyLookup struct {
	jobs.SMSSender
	fails int
}

func (s *flakyLookup) ListSMS(ctx context.Context, to string, since time.Time) ([]provider.SentSMS, error) {
	if s.fails > 0 {
		s.fails--
		return nil, &provider.Error{Kind: provider.Transient, Code: "timeout", Message: "twilio: request timed out"}
	}
	return s.SMSSender.ListSMS(ctx, to, since)
}

// Every attempt claims the message again; the search still starts at the
// first claim, so an acceptance by the first attempt is found even after
// a later attempt's lookup failed minutes on.
func TestReconcileAfterAFailedLookupSearchesFromTheFirstClaim(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	m := f.create(t, "sms", "Reminder: visit tomorrow at 9", f.app.Clock.Now())
	f.app.Twilio.FailNext(1, fakes.Fault{AcceptThenFail: true, Status: 500})
	require.Error(t, f.handler().ProcessTask(ctx, task(m)))
	f.app.Clock.Advance(5 * time.Minute)
	h := f.handler()
	h.SMS = &flakyLookup{SMSSender: h.SMS, fails: 1}
	require.Error(t, h.ProcessTask(ctx, task(m)))
	f.app.Clock.Advance(5 * time.Minute)
	require.NoError(t, h.ProcessTask(ctx, task(m)))
	got := f.status(t, m)
	require.Equal(t, "sent", got.Status)
	require.Equal(t, 1, f.app.Twilio.Count(), "found at Twilio, not sent again")
	require.Equal(t, f.app.Twilio.Messages()[0].SID, *got.ProviderMessageID)
}

// Resend cannot be asked whether an email went out without sending it
// again, so a decision not to send taken after an attempt with an unknown
// outcome is recorded with that said, and nothing is sent.
func TestEmailDecisionAfterAnUnknownOutcomeSaysSo(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	m := f.create(t, "email", "Your visit is at 9", f.app.Clock.Now())
	f.app.Resend.FailNext(1, fakes.Fault{AcceptThenFail: true, Status: 500})
	require.Error(t, f.handler().ProcessTask(ctx, task(m)))
	f.suppress(t, "email", testEmail, "bounced", "resend_webhook")
	require.NoError(t, f.handler().ProcessTask(ctx, task(m)))
	got := f.status(t, m)
	require.Equal(t, "suppressed", got.Status)
	require.Equal(t, "email address bounced; an earlier attempt's outcome at the provider is unknown", *got.Error)
	require.Equal(t, 1, f.app.Resend.Count(), "not sent again")
}
