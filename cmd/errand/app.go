package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/config"
	"github.com/errandhq/errand/internal/console"
	"github.com/errandhq/errand/internal/filestore"
	"github.com/errandhq/errand/internal/intake"
	"github.com/errandhq/errand/internal/logging"
	"github.com/errandhq/errand/internal/metrics"
	"github.com/errandhq/errand/internal/ops"
	"github.com/errandhq/errand/internal/otp"
	"github.com/errandhq/errand/internal/periodic"
	"github.com/errandhq/errand/internal/provider"
	"github.com/errandhq/errand/internal/pseudonym"
	"github.com/errandhq/errand/internal/ratelimit"
	"github.com/errandhq/errand/internal/redisconn"
	"github.com/errandhq/errand/internal/seclog"
	"github.com/errandhq/errand/jobs"
)

// app is everything the roles share, wired once.
type app struct {
	cfg        config.Config
	logger     *slog.Logger
	clock      clock.Clock
	store      *db.Store
	redisOpt   asynq.RedisConnOpt
	redis      redis.UniversalClient
	client     *asynq.Client
	inspector  *asynq.Inspector
	metrics    *metrics.Metrics
	seclog     *seclog.Log
	dispatcher *jobs.Dispatcher
	files      filestore.Store
	console    *console.Console
	deps       jobs.Deps
}

func newApp(ctx context.Context, cfg config.Config, stderr io.Writer) (*app, error) {
	a := &app{cfg: cfg, logger: logging.New(stderr, cfg.LogLevel), clock: clock.Real{}}
	var err error
	a.redisOpt, err = redisconn.Parse(cfg.RedisURL)
	if err != nil {
		return nil, err
	}
	rc := redisconn.Client(a.redisOpt)
	a.redis = rc
	a.store, err = db.Open(ctx, cfg.DatabaseURL, cfg.DBRole, cfg.DBMaxConns)
	if err != nil {
		a.close()
		return nil, err
	}
	if cfg.SecretKey != "" {
		a.files, err = filestore.NewLocal(filepath.Join(cfg.DataDir, "files"), cfg.SecretKey)
		if err != nil {
			a.close()
			return nil, err
		}
	}
	a.client = asynq.NewClientFromRedisClient(rc)
	a.inspector = asynq.NewInspectorFromRedisClient(rc)
	a.metrics = metrics.New()
	a.metrics.WatchQueues(a.inspector)
	a.seclog = &seclog.Log{Store: a.store, Clock: a.clock, Logger: a.logger}
	a.dispatcher = &jobs.Dispatcher{
		Store: a.store, Client: a.client, Inspector: a.inspector, Redis: rc, Clock: a.clock, Logger: a.logger,
		Horizon: cfg.DispatchHorizon, Batch: 1000, Kinds: jobs.Dispatchables(),
	}
	a.deps = jobs.Deps{
		Store: a.store, Clock: a.clock, Logger: a.logger, Metrics: a.metrics, Dispatcher: a.dispatcher,
		SMS: a.smsSender(), Email: a.emailSender(), Retry: jobs.DefaultRetry, Files: a.files,
		Pseudonyms: pseudonym.New(cfg.SecretKey), ExportTTL: cfg.ExportTTL,
		DeletionGrace: cfg.DeletionGrace, PurgeBatch: cfg.PurgeBatch, ArchivedTaskRetention: cfg.ArchivedTaskRetention,
		Renderers: map[string]jobs.Renderer{
			jobs.MessageKindVerification: &jobs.VerificationRenderer{Codes: otp.New(cfg.SecretKey), Clock: a.clock},
		},
	}
	if cfg.Twilio.Configured() {
		a.deps.StatusCallbackURL = cfg.PublicURL + "/webhooks/twilio/status"
	}
	a.deps.Limits = &jobs.SendLimits{Limiter: ratelimit.New(rc), SMS: ratelimit.PerSecond(cfg.SMSRate, cfg.SMSRate),
		SMSNumber: ratelimit.PerSecond(cfg.SMSNumberRate, cfg.SMSNumberRate), SMSFrom: cfg.Twilio.From,
		Email: ratelimit.PerSecond(cfg.EmailRate, cfg.EmailRate)}
	return a, nil
}

func (a *app) smsSender() jobs.SMSSender {
	t := a.cfg.Twilio
	if !t.Configured() {
		return provider.NewOutbox(a.logger)
	}
	return provider.NewTwilio(provider.TwilioConfig{AccountSID: t.AccountSID, AuthToken: t.AuthToken, From: t.From, BaseURL: t.BaseURL})
}

func (a *app) emailSender() jobs.EmailSender {
	r := a.cfg.Resend
	if !r.Configured() {
		return provider.NewOutbox(a.logger)
	}
	return provider.NewResend(provider.ResendConfig{APIKey: r.APIKey, From: r.From, BaseURL: r.BaseURL})
}

// warnOutbox says loudly, once, when messages are not really sent.
func (a *app) warnOutbox(w io.Writer) {
	var missing []string
	if !a.cfg.Twilio.Configured() {
		missing = append(missing, "SMS (set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER)")
	}
	if !a.cfg.Resend.Configured() {
		missing = append(missing, "email (set RESEND_API_KEY, RESEND_FROM)")
	}
	if len(missing) == 0 {
		return
	}
	fmt.Fprintf(w, "\n*** DEVELOPMENT OUTBOX: no provider credentials for %s.\n*** Those messages are logged and marked sent, NOT delivered.\n\n",
		strings.Join(missing, " and "))
	a.logger.Warn("development outbox in use: messages are not delivered", "channels", len(missing))
}

func (a *app) intake() *intake.Server {
	a.console = console.New(console.Config{
		Store: a.store, Clock: a.clock, Logger: a.logger, SecLog: a.seclog, AdminToken: a.cfg.AdminToken,
		Redis: a.redisOpt, PublicURL: a.cfg.PublicURL,
	})
	deletions := jobs.NewDeletions(a.deps)
	deletions.Client = a.client
	return intake.NewServer(intake.Deps{
		Store: a.store, Redis: a.redis, Inspector: a.inspector, Dispatcher: a.dispatcher, Clock: a.clock,
		Logger: a.logger, Metrics: a.metrics, Limiter: ratelimit.New(a.redis), SecLog: a.seclog, Files: a.files,
		AdminToken: a.cfg.AdminToken, PublicURL: a.cfg.PublicURL, MaxBodyBytes: a.cfg.MaxBodyBytes,
		ImportMaxBytes: a.cfg.ImportMaxBytes,
		RateLimit:      ratelimit.PerSecond(a.cfg.RateLimit, a.cfg.RateBurst), SecretKey: a.cfg.SecretKey,
		Verify: intake.VerifySettings{Codes: otp.New(a.cfg.SecretKey), Pseudonyms: a.deps.Pseudonyms,
			PerDestination:     ratelimit.Per(a.cfg.VerifyPerAddress, time.Hour, a.cfg.VerifyPerAddress),
			PerTenant:          ratelimit.Per(a.cfg.VerifyPerTenant, time.Hour, a.cfg.VerifyPerTenant),
			CredentialMaxBytes: a.cfg.CredentialMaxBytes},
		Console:    a.console,
		Pseudonyms: a.deps.Pseudonyms, TwilioAuthToken: a.cfg.Twilio.AuthToken,
		ResendWebhookSecret: a.cfg.Resend.WebhookSecret, KeyCacheTTL: a.cfg.APIKeyCacheTTL,
		DeletionSvc: deletions, Deletions: deletions,
	})
}

// ops serves /metrics, /healthz and /readyz on ERRAND_METRICS_ADDR.
func (a *app) ops() http.Handler {
	return ops.Handler(a.metrics.Registry, a.store.Pool.Ping,
		func(ctx context.Context) error { return a.redis.Ping(ctx).Err() })
}

func (a *app) worker() *jobs.Worker {
	return jobs.NewWorker(a.redisOpt, jobs.WorkerConfig{
		Concurrency: a.cfg.WorkerConcurrency, ShutdownTimeout: a.cfg.ShutdownTimeout,
		TaskCheckInterval: a.cfg.TaskCheckInterval,
	}, a.deps)
}

func (a *app) scheduler() *periodic.Scheduler {
	return &periodic.Scheduler{Client: a.client, Clock: a.clock, Logger: a.logger, Entries: jobs.Periodic(a.cfg.DispatchInterval, a.cfg.DeletionScanInterval)}
}

func (a *app) close() {
	if a.console != nil {
		a.console.Close()
	}
	if a.client != nil {
		a.client.Close()
	}
	if a.inspector != nil {
		a.inspector.Close()
	}
	if a.redis != nil {
		a.redis.Close()
	}
	if a.store != nil {
		a.store.Close()
	}
}
