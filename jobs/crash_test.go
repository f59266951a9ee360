package jobs_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/internal/provider"
	"github.com/errandhq/errand/internal/pseudonym"
	"github.com/errandhq/errand/internal/testapp"
	"github.com/errandhq/errand/internal/testenv"
	"github.com/errandhq/errand/jobs"
)

// The crash test runs a real worker in a child process (this test binary,
// re-executed with crashWorkerEnv set; TestMain hands it to
// runCrashWorker), lets it claim a message and call the provider, and
// SIGKILLs it the moment the provider has accepted the message and before
// the worker hears back. A fresh worker must then record the message as
// sent without sending it a second time.
const crashWorkerEnv = "ERRAND_TEST_CRASH_WORKER"

// runCrashWorker is the child: a worker on the parent's database, Redis
// and fake providers, running until it is killed.
func runCrashWorker() int {
	env := os.Getenv
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	store, err := db.Open(ctx, env("CRASH_DATABASE_URL"), db.AppRole, 4)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash worker:", err)
		return 2
	}
	redisDB, _ := strconv.Atoi(env("CRASH_REDIS_DB"))
	opt := asynq.RedisClientOpt{Addr: env("CRASH_REDIS_ADDR"), DB: redisDB}
	rdb := redis.NewClient(&redis.Options{Addr: opt.Addr, DB: opt.DB})
	client, inspector := asynq.NewClient(opt), asynq.NewInspector(opt)
	disp := &jobs.Dispatcher{Store: store, Client: client, Inspector: inspector, Redis: rdb, Clock: clock.Real{},
		Logger: logger, Horizon: 15 * time.Minute, Batch: 100, Kinds: jobs.Dispatchables()}
	deps := jobs.Deps{Store: store, Clock: clock.Real{}, Logger: logger, Dispatcher: disp,
		SMS: provider.NewTwilio(provider.TwilioConfig{AccountSID: env("CRASH_TWILIO_SID"), AuthToken: env("CRASH_TWILIO_TOKEN"),
			From: "+15005550006", BaseURL: env("CRASH_TWILIO_URL"), Timeout: 10 * time.Second}),
		Email: provider.NewResend(provider.ResendConfig{APIKey: env("CRASH_RESEND_KEY"), From: "Errand <noreply@example.com>",
			BaseURL: env("CRASH_RESEND_URL"), Timeout: 10 * time.Second}),
		Retry: jobs.DefaultRetry, Pseudonyms: pseudonym.New(testapp.Secret)}
	w := jobs.NewWorker(opt, jobs.WorkerConfig{Concurrency: 2, ShutdownTimeout: time.Second,
		TaskCheckInterval: 10 * time.Millisecond}, deps)
	if err := w.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "crash worker:", err)
		return 2
	}
	logger.Info("crash worker running")
	select {} // until SIGKILL
}

// startCrashWorker starts the child worker; exited is closed once it is gone.
func startCrashWorker(t *testing.T, app *testapp.App) (cmd *exec.Cmd, exited chan struct{}, logs *bytes.Buffer) {
	t.Helper()
	opt := testenv.RedisOpt(t)
	cmd = exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashWorkerEnv+"=1",
		"CRASH_DATABASE_URL="+testenv.AppURL(t), "CRASH_REDIS_ADDR="+opt.Addr, "CRASH_REDIS_DB="+strconv.Itoa(opt.DB),
		"CRASH_TWILIO_URL="+app.Twilio.URL, "CRASH_TWILIO_SID="+app.Twilio.AccountSID, "CRASH_TWILIO_TOKEN="+app.Twilio.AuthToken,
		"CRASH_RESEND_URL="+app.Resend.URL, "CRASH_RESEND_KEY="+app.Resend.APIKey)
	logs = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	exited = make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() //nolint:errcheck // killed on purpose
	t.Cleanup(func() {
		cmd.Process.Kill() //nolint:errcheck // already dead in the normal case
		<-exited
		if t.Failed() {
			t.Logf("crash worker output:\n%s", logs.String())
		}
	})
	return cmd, exited, logs
}

// expireLease makes asynq see the dead worker's lease on the task as long
// expired, as it would a minute later on the wall clock (asynq's recoverer
// uses the real clock; the test does not wait for it).
func expireLease(t *testing.T, app *testapp.App, m db.Message) {
	t.Helper()
	j := jobs.NewMessageSendJob(m.TenantID, m.ID, m.Kind)
	key := "asynq:{" + j.Queue + "}:lease"
	_, err := app.Redis.ZAddXX(context.Background(), key, redis.Z{Score: float64(time.Now().Add(-time.Minute).Unix()), Member: j.ID}).Result()
	require.NoError(t, err)
	score, err := app.Redis.ZScore(context.Background(), key, j.ID).Result()
	require.NoError(t, err, "the dead worker's task is still leased in asynq")
	require.Less(t, score, float64(time.Now().Unix()))
}

func TestWorkerKilledAfterProviderAcceptedSendsOnce(t *testing.T) {
	for _, channel := range []string{"sms", "email"} {
		t.Run(channel, func(t *testing.T) {
			f := setup(t)
			cmd, exited, _ := startCrashWorker(t, f.app)
			kill := func() {
				require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
				<-exited // gone before the provider's answer is written
			}
			if channel == "sms" {
				f.app.Twilio.OnAccept(func(fakes.TwilioMessage) { kill() })
			} else {
				f.app.Resend.OnAccept(func(fakes.ResendEmail) { kill() })
			}
			m := f.create(t, channel, "Your tech Sam is 10 minutes away", f.app.Clock.Now())
			f.app.Eventually(30*time.Second, "the worker killed mid-send", func() bool {
				select {
				case <-exited:
					return true
				default:
					return false
				}
			})
			f.app.Twilio.OnAccept(nil)
			f.app.Resend.OnAccept(nil)
			dead := f.status(t, m)
			require.Equal(t, "sending", dead.Status, "claimed, never recorded")
			require.NotNil(t, dead.ClaimedAt)
			require.Nil(t, dead.ProviderMessageID)
			accepted := f.app.Twilio.Count() + f.app.Resend.Count()
			require.Equal(t, 1, accepted, "the provider has it")

			expireLease(t, f.app, m)
			f.app.Clock.Advance(2 * time.Minute) // the dead claim is stale
			f.app.StartWorker(2)
			f.app.Eventually(15*time.Second, "recorded as sent", func() bool { return f.status(t, m).Status == "sent" })
			got := f.status(t, m)
			if channel == "sms" {
				require.Equal(t, 1, f.app.Twilio.Count(), "never sent twice")
				require.Equal(t, f.app.Twilio.Messages()[0].SID, *got.ProviderMessageID)
			} else {
				require.Equal(t, 1, f.app.Resend.Count(), "never sent twice")
				require.Equal(t, f.app.Resend.Emails()[0].ID, *got.ProviderMessageID)
			}
			require.EqualValues(t, 2, got.Attempts)
		})
	}
}
