package jobs_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/internal/periodic"
	"github.com/errandhq/errand/jobs"
)

func scan(t *testing.T, f fixture) jobs.ScanResult {
	t.Helper()
	res, err := f.app.Dispatcher.Scan(context.Background())
	require.NoError(t, err)
	return res
}

func taskState(t *testing.T, f fixture, m db.Message) (asynq.TaskState, bool) {
	t.Helper()
	j := jobs.NewMessageSendJob(m.TenantID, m.ID, m.Kind)
	info, err := f.app.Inspector.GetTaskInfo(j.Queue, j.ID)
	if err != nil {
		return 0, false
	}
	return info.State, true
}

// Far-future messages live only in PostgreSQL until they come within the
// horizon: a thousand future reminders are not a thousand Redis entries.
func TestFarFutureMessagesWaitInPostgres(t *testing.T) {
	f := setup(t)
	scan(t, f) // first scan of an empty Redis sets the epoch
	for i := 0; i < 50; i++ {
		f.create(t, "sms", "Annual service due", f.app.Clock.Now().Add(30*24*time.Hour+time.Duration(i)*time.Minute))
	}
	near := f.create(t, "sms", "Soon", f.app.Clock.Now().Add(10*time.Minute))
	q, err := f.app.Inspector.GetQueueInfo(jobs.QueueNotifications)
	require.NoError(t, err)
	require.Equal(t, 1, q.Scheduled, "only the message inside the horizon is in Redis")
	st, ok := taskState(t, f, near)
	require.True(t, ok)
	require.Equal(t, asynq.TaskStateScheduled, st)

	require.Zero(t, scan(t, f).Enqueued, "nothing new came within the horizon")
	f.app.Clock.Advance(30*24*time.Hour - 10*time.Minute)
	res := scan(t, f)
	require.Equal(t, 6, res.Enqueued, "those due within 15 minutes (offsets 0–5 min) came in")
}

// A scheduled message is sent when its time comes and not before, moving
// only the injected clock.
func TestScheduledMessageIsSentAtSendAt(t *testing.T) {
	f := setup(t)
	f.app.StartWorker(2)
	scan(t, f)
	sendAt := f.app.Clock.Now().Add(2 * time.Hour)
	m := f.create(t, "sms", "See you at 9", sendAt)
	require.Equal(t, "scheduled", f.status(t, m).Status)
	require.Nil(t, f.status(t, m).EnqueuedAt)

	f.app.Clock.Set(sendAt.Add(-20 * time.Minute))
	require.Zero(t, scan(t, f).Enqueued, "outside the horizon it stays in PostgreSQL")
	require.Zero(t, f.app.Twilio.Count(), "not before send_at")

	f.app.Clock.Set(sendAt)
	require.Equal(t, 1, scan(t, f).Enqueued, "due now: straight to the queue")
	f.app.Eventually(5*time.Second, "sent", func() bool { return f.status(t, m).Status == "sent" })
	require.Equal(t, 1, f.app.Twilio.Count())
	require.False(t, f.status(t, m).SentAt.Before(sendAt))
}

// A message scheduled a moment ahead in real time is held by asynq and sent
// when due.
func TestNearTermMessageIsHeldByAsynq(t *testing.T) {
	f := setup(t)
	f.app.StartWorker(2)
	// The fake clock stays put, so the message is already due when the
	// worker looks; asynq is what holds it back for the real 1.5 s.
	m := f.create(t, "sms", "In a moment", f.app.Clock.Now().Add(2500*time.Millisecond))
	created := time.Now()
	st, _ := taskState(t, f, m)
	require.Equal(t, asynq.TaskStateScheduled, st)
	f.app.Clock.Advance(2500 * time.Millisecond)
	f.app.Eventually(10*time.Second, "sent", func() bool { return f.status(t, m).Status == "sent" })
	// asynq schedules to the whole second, so it may run up to 1 s early.
	require.GreaterOrEqual(t, time.Since(created), 1400*time.Millisecond, "asynq held it until it was due")
}

// Redis loses everything (FLUSHDB, or a restart without persistence): the
// next scan notices and every live message is enqueued again from
// PostgreSQL; each is sent exactly once.
func TestRedisFlushLosesNoMessage(t *testing.T) {
	f := setup(t)
	require.True(t, scan(t, f).RedisLost, "the first scan of an empty Redis sets the epochs")
	require.NotContains(t, f.app.Logs.String(), "redis lost its tasks",
		"a new Redis that held nothing of ours is not reported as a loss")
	require.Contains(t, f.app.Logs.String(), "redis holds no epoch yet")
	now := f.app.Clock.Now()
	queued := f.create(t, "sms", "Now", now)
	soon := f.create(t, "email", "In five minutes", now.Add(5*time.Minute))
	later := f.create(t, "sms", "In two hours", now.Add(2*time.Hour))
	q, err := f.app.Inspector.GetQueueInfo(jobs.QueueNotifications)
	require.NoError(t, err)
	require.Equal(t, 1, q.Pending)
	require.Equal(t, 1, q.Scheduled)

	require.NoError(t, f.app.Redis.FlushDB(context.Background()).Err())
	f.app.StartWorker(2)
	res := scan(t, f)
	require.True(t, res.RedisLost)
	require.EqualValues(t, 2, res.Forgotten)
	require.Equal(t, 2, res.Enqueued)
	require.Contains(t, f.app.Logs.String(), `"msg":"redis lost its tasks; re-enqueueing from postgres"`)
	f.app.Eventually(5*time.Second, "queued message sent", func() bool { return f.status(t, queued).Status == "sent" })

	st, ok := taskState(t, f, soon)
	require.True(t, ok, "the queue is visible to the inspector (and asynqmon) again")
	require.Equal(t, asynq.TaskStateScheduled, st)
	f.app.Clock.Advance(5 * time.Minute)
	scan(t, f)
	f.app.Clock.Advance(6 * time.Minute) // asynq holds it for real minutes; the stalled scan runs it now
	require.Equal(t, 1, scan(t, f).Rekicked)
	f.app.Eventually(5*time.Second, "scheduled message sent", func() bool { return f.status(t, soon).Status == "sent" })

	f.app.Clock.Advance(2 * time.Hour)
	scan(t, f)
	f.app.Eventually(5*time.Second, "far message sent", func() bool { return f.status(t, later).Status == "sent" })

	require.Equal(t, 2, f.app.Twilio.Count())
	require.Equal(t, 1, f.app.Resend.Count())
	require.False(t, scan(t, f).RedisLost, "the epoch is back")
}

// One task lost on its own (deleted by hand in the console, evicted) is
// re-enqueued by the reconciler about a minute after it was due: a row
// overdue by a minute whose task asynq does not hold.
func TestLostTaskIsReenqueued(t *testing.T) {
	f := setup(t)
	scan(t, f)
	m := f.create(t, "sms", "Lost", f.app.Clock.Now())
	j := jobs.NewMessageSendJob(m.TenantID, m.ID, m.Kind)
	require.NoError(t, f.app.Inspector.DeleteTask(j.Queue, j.ID))
	f.app.StartWorker(2)

	f.app.Clock.Advance(30 * time.Second)
	require.Zero(t, scan(t, f).Rekicked, "not overdue yet")
	f.app.Clock.Advance(31 * time.Second)
	res := scan(t, f)
	require.Equal(t, 1, res.Checked)
	require.Equal(t, 1, res.Rekicked)
	f.app.Eventually(5*time.Second, "sent", func() bool { return f.status(t, m).Status == "sent" })
	require.Equal(t, 1, f.app.Twilio.Count())
}

// A long legitimate backlog (tasks pending in asynq, no worker yet) is
// looked up in Redis once a minute, not on every scan, and left alone.
func TestBacklogIsCheckedOncePerPeriod(t *testing.T) {
	f := setup(t)
	scan(t, f)
	for i := 0; i < 3; i++ {
		f.create(t, "sms", "Backlog", f.app.Clock.Now())
	}
	f.app.Clock.Advance(10 * time.Minute)
	res := scan(t, f)
	require.Equal(t, 3, res.Checked, "overdue rows are looked up")
	require.Zero(t, res.Rekicked, "pending tasks are left alone")
	f.app.Clock.Advance(30 * time.Second)
	require.Zero(t, scan(t, f).Checked, "not again within the minute")
	f.app.Clock.Advance(31 * time.Second)
	res = scan(t, f)
	require.Equal(t, 3, res.Checked, "again after a minute")
	require.Zero(t, res.Rekicked)
	q, err := f.app.Inspector.GetQueueInfo(jobs.QueueNotifications)
	require.NoError(t, err)
	require.Equal(t, 3, q.Pending)
}

// Redis never holds a phone number, email address, name or message body:
// every key and value of the package's Redis database is searched while
// tasks are pending, scheduled, retrying and archived.
func TestRedisHoldsNoPersonalData(t *testing.T) {
	f := setup(t)
	scan(t, f)
	body := "Private note: gate code 4417"
	f.create(t, "sms", body, f.app.Clock.Now())
	f.create(t, "email", body, f.app.Clock.Now().Add(10*time.Minute))
	f.app.Twilio.FailNext(100, fakes.Fault{Code: 21211})
	f.app.StartWorker(1)
	f.app.Eventually(5*time.Second, "archived", func() bool {
		q, err := f.app.Inspector.GetQueueInfo(jobs.QueueNotifications)
		return err == nil && q.Archived == 1
	})
	dump := dumpRedis(t, f)
	require.NotEmpty(t, dump)
	for _, secret := range []string{testPhone, "3125550142", testEmail, testName, body, "gate code"} {
		require.NotContains(t, dump, secret)
	}
}

func dumpRedis(t *testing.T, f fixture) string {
	t.Helper()
	return f.app.DumpRedis()
}

// A worker shut down while a send is in flight: asynq hands the task back,
// the next worker finds the earlier attempt at the provider or sends it,
// and either way it goes out once.
func TestShutdownMidSend(t *testing.T) {
	for _, c := range []struct {
		name  string
		fault fakes.Fault
	}{
		{"provider had not accepted", fakes.Fault{Delay: 5 * time.Second}},
		{"provider had accepted", fakes.Fault{Hang: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := setup(t)
			f.app.Twilio.FailNext(1, c.fault)
			w := jobs.NewWorker(f.app.RedisOpt, jobs.WorkerConfig{Concurrency: 1, ShutdownTimeout: 300 * time.Millisecond,
				TaskCheckInterval: 20 * time.Millisecond}, f.app.Deps)
			require.NoError(t, w.Start())
			m := f.create(t, "sms", "Shutdown test", f.app.Clock.Now())
			f.app.Eventually(5*time.Second, "send in flight", func() bool { return f.app.Twilio.Requests() > 0 })
			w.Stop()
			w.Shutdown()
			require.NotEqual(t, "sent", f.status(t, m).Status)
			st, ok := taskState(t, f, m)
			require.True(t, ok, "asynq kept the task")
			require.Equal(t, asynq.TaskStatePending, st, "handed back to its queue")

			f.app.Clock.Advance(2 * time.Minute) // the dead attempt's claim is stale
			f.app.StartWorker(1)
			f.app.Eventually(10*time.Second, "sent", func() bool { return f.status(t, m).Status == "sent" })
			require.Equal(t, 1, f.app.Twilio.Count(), "sent exactly once")
		})
	}
}

// A job running when the worker is told to stop, and finishing within the
// shutdown timeout, completes: the message ends sent, once, and its task
// is not handed back to the queue.
func TestShutdownLetsARunningJobFinish(t *testing.T) {
	f := setup(t)
	release := make(chan struct{})
	f.app.Twilio.FailNext(1, fakes.Fault{Hold: release}) // the send waits for the test
	w := jobs.NewWorker(f.app.RedisOpt, jobs.WorkerConfig{Concurrency: 1, ShutdownTimeout: time.Minute,
		TaskCheckInterval: 20 * time.Millisecond}, f.app.Deps)
	require.NoError(t, w.Start())
	m := f.create(t, "sms", "Finish me", f.app.Clock.Now())
	f.app.Eventually(5*time.Second, "send in flight", func() bool { return f.app.Twilio.Requests() > 0 })

	w.Stop()
	stopped := make(chan struct{})
	go func() { w.Shutdown(); close(stopped) }()
	f.app.Eventually(5*time.Second, "shutdown begun", func() bool {
		return strings.Contains(f.app.Logs.String(), "worker stopping")
	})
	select {
	case <-stopped:
		t.Fatal("shutdown returned while a job was running, well within its timeout")
	default:
	}
	require.Equal(t, "sending", f.status(t, m).Status)
	close(release)
	<-stopped

	got := f.status(t, m)
	require.Equal(t, "sent", got.Status)
	require.EqualValues(t, 1, got.Attempts)
	require.Equal(t, 1, f.app.Twilio.Count())
	st, ok := taskState(t, f, m)
	require.False(t, ok && st == asynq.TaskStatePending, "the finished task was not handed back (state %v)", st)
}

// Any number of schedulers enqueue each period's run once.
func TestPeriodicRunsOncePerPeriodAcrossSchedulers(t *testing.T) {
	f := setup(t)
	a, b := f.app.Scheduler(), f.app.Scheduler()
	// The dispatch entry alone: entries with longer periods may or may not
	// start a new period while the test runs.
	a.Entries, b.Entries = a.Entries[:1], b.Entries[:1]
	ctx := context.Background()
	// Entries whose period changed between two times (every entry, the
	// first time a scheduler runs).
	changed := func(from, to time.Time) int {
		n := 0
		for _, e := range a.Entries {
			if !from.Truncate(e.Every).Equal(to.Truncate(e.Every)) {
				n++
			}
		}
		return n
	}
	start := f.app.Clock.Now()
	require.Equal(t, len(a.Entries), a.Enqueue(ctx)+b.Enqueue(ctx))
	require.Zero(t, a.Enqueue(ctx)+b.Enqueue(ctx), "same period")
	f.app.Clock.Advance(15 * time.Second)
	again := changed(start, f.app.Clock.Now())
	require.GreaterOrEqual(t, again, 1, "the dispatch entry runs every 15 s")
	require.Equal(t, again, b.Enqueue(ctx)+a.Enqueue(ctx))
	q, err := f.app.Inspector.GetQueueInfo(jobs.QueueMaintenance)
	require.NoError(t, err)
	require.Equal(t, len(a.Entries)+again, q.Pending)
	period := f.app.Clock.Now().Truncate(15 * time.Second)
	_, err = f.app.Inspector.GetTaskInfo(jobs.QueueMaintenance, periodic.TaskID("dispatch", period))
	require.NoError(t, err)
}

// The periodic dispatch task, run by a worker, does the scan.
func TestDispatchTaskRunsTheScan(t *testing.T) {
	f := setup(t)
	f.app.StartWorker(2)
	m := f.create(t, "sms", "Later", f.app.Clock.Now().Add(time.Hour))
	f.app.Clock.Advance(time.Hour)
	f.app.Scheduler().Enqueue(context.Background())
	f.app.Eventually(5*time.Second, "sent via the scan", func() bool { return f.status(t, m).Status == "sent" })
}

// A failover promotes a replica that never received the old master's last
// writes (Redis replicates asynchronously): a task enqueued just before is
// gone. The next scan sees a new replication ID and re-offers every live
// row at once instead of waiting for the stalled scan; it does so once more
// when the failover has settled, and then no more.
func TestFailoverReoffersLiveRows(t *testing.T) {
	f := setup(t)
	replID := "old-master"
	jobs.SetReplicationReader(f.app.Dispatcher, func(context.Context) (string, error) { return replID, nil })
	require.False(t, scan(t, f).MasterChanged, "the first scan only records the master")
	m := f.create(t, "sms", "Lost in the failover", f.app.Clock.Now())
	j := jobs.NewMessageSendJob(m.TenantID, m.ID, m.Kind)
	require.NoError(t, f.app.Inspector.DeleteTask(j.Queue, j.ID))
	require.False(t, scan(t, f).MasterChanged)
	_, ok := taskState(t, f, m)
	require.False(t, ok, "without a failover the row waits for the stalled scan")

	replID = "promoted-replica"
	res := scan(t, f)
	require.True(t, res.MasterChanged)
	require.False(t, res.RedisLost)
	require.EqualValues(t, 1, res.Forgotten)
	require.Equal(t, 1, res.Enqueued)
	_, ok = taskState(t, f, m)
	require.True(t, ok, "the task is back")

	require.False(t, scan(t, f).MasterChanged)
	f.app.Clock.Advance(30 * time.Second)
	require.True(t, scan(t, f).MasterChanged, "re-offered once more after the failover settled")
	f.app.Clock.Advance(30 * time.Second)
	require.False(t, scan(t, f).MasterChanged)

	f.app.StartWorker(1)
	f.app.Eventually(5*time.Second, "message sent", func() bool { return f.status(t, m).Status == "sent" })
	require.Equal(t, 1, f.app.Twilio.Count())
}

// In a Redis Cluster one node can lose its data (restarted without
// persistence) while the others keep theirs. Each queue has its own epoch
// key under the queue's hash tag, on the node holding the queue's tasks, so
// losing that node is noticed like a flushed Redis.
func TestOneQueueLosingItsNodeIsNoticed(t *testing.T) {
	f := setup(t)
	require.True(t, scan(t, f).RedisLost, "the first scan of an empty Redis sets the epochs")
	m := f.create(t, "sms", "On the node that restarted", f.app.Clock.Now())
	j := jobs.NewMessageSendJob(m.TenantID, m.ID, m.Kind)
	require.False(t, scan(t, f).RedisLost)

	require.NoError(t, f.app.Inspector.DeleteTask(j.Queue, j.ID))
	require.NoError(t, f.app.Redis.Del(context.Background(), "errand:dispatch:epoch:{"+j.Queue+"}").Err())
	require.EqualValues(t, 1, f.app.Redis.Exists(context.Background(), "errand:dispatch:epoch:{"+jobs.QueueCritical+"}").Val(),
		"the other queues' epochs are still there")
	res := scan(t, f)
	require.True(t, res.RedisLost)
	require.Equal(t, 1, res.Enqueued)
	f.app.StartWorker(1)
	f.app.Eventually(5*time.Second, "message sent", func() bool { return f.status(t, m).Status == "sent" })
	require.Equal(t, 1, f.app.Twilio.Count())
}

// failingForget fails its first ForgetEnqueued, as when PostgreSQL is down
// during the scan that noticed a failover.
type failingForget struct {
	jobs.Dispatchable
	failed bool
}

func (k *failingForget) ForgetEnqueued(ctx context.Context, q *db.Queries) (int64, error) {
	if !k.failed {
		k.failed = true
		return 0, errors.New("database unavailable")
	}
	return k.Dispatchable.ForgetEnqueued(ctx, q)
}

// A scan that notices a failover but fails before it re-offered leaves the
// re-offer to the next scan.
func TestFailoverReofferSurvivesAFailedScan(t *testing.T) {
	f := setup(t)
	d := f.app.Dispatcher
	kinds := make([]jobs.Dispatchable, len(d.Kinds))
	for i, k := range d.Kinds {
		kinds[i] = &failingForget{Dispatchable: k, failed: true} // armed below
	}
	d.Kinds = kinds
	replID := "old-master"
	jobs.SetReplicationReader(d, func(context.Context) (string, error) { return replID, nil })
	scan(t, f)
	kinds[0].(*failingForget).failed = false
	replID = "promoted-replica"
	_, err := d.Scan(context.Background())
	require.ErrorContains(t, err, "database unavailable")
	require.True(t, scan(t, f).MasterChanged, "the next scan re-offers")
	require.False(t, scan(t, f).MasterChanged)
}
