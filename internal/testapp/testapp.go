// Package testapp runs Errand's whole stack inside a test: the intake on an
// httptest server, the dispatcher, workers on demand, the real Twilio and
// Resend SDK clients pointed at local fakes, a fake clock, and a log buffer
// tests can search for personal data. It sits on testenv (one database and
// Redis per test package). It is for tests only.
package testapp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/account"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/console"
	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/internal/filestore"
	"github.com/errandhq/errand/internal/intake"
	"github.com/errandhq/errand/internal/logging"
	"github.com/errandhq/errand/internal/metrics"
	"github.com/errandhq/errand/internal/notify"
	"github.com/errandhq/errand/internal/otp"
	"github.com/errandhq/errand/internal/periodic"
	"github.com/errandhq/errand/internal/provider"
	"github.com/errandhq/errand/internal/pseudonym"
	"github.com/errandhq/errand/internal/ratelimit"
	"github.com/errandhq/errand/internal/seclog"
	"github.com/errandhq/errand/internal/testenv"
	"github.com/errandhq/errand/jobs"
)

// Secret stands in for ERRAND_SECRET_KEY (a worker in another process
// needs the same one to compute the same pseudonyms).
const Secret = "test-secret-key-0123456789abcdef-0123"

const testSecret = Secret

// App is a running Errand for one test.
type App struct {
	T          testing.TB
	Store      *db.Store
	Clock      *clock.Fake
	Redis      *redis.Client
	RedisOpt   asynq.RedisClientOpt
	Client     *asynq.Client
	Inspector  *asynq.Inspector
	Dispatcher *jobs.Dispatcher
	Deps       jobs.Deps
	Metrics    *metrics.Metrics
	SecLog     *seclog.Log
	Server     *intake.Server
	HTTP       *httptest.Server
	URL        string
	Twilio     *fakes.Twilio
	Resend     *fakes.Resend
	Files      *filestore.Local
	FilesDir   string
	AdminToken string
	Logs       *Buffer
	Logger     *slog.Logger
	// Deletions is the deletions service the intake uses (its Client
	// enqueues erasures; tests may also Run and Scan it directly).
	Deletions *jobs.Deletions
	// ResendWebhookSecret signs the Resend (Svix) webhooks tests send.
	ResendWebhookSecret string
}

// Options adjust an App.
type Options struct {
	RateLimit ratelimit.Limit // default: generous
	MaxBody   int64           // default 1 MiB
	// ImportMaxBytes bounds import uploads (0 = the default, 100 MiB).
	ImportMaxBytes int64
	Retry          jobs.RetryPolicy
	// Verify sets verification limits and the credential upload limit;
	// its rate limits default to generous.
	Verify intake.VerifySettings
	// KeyCacheTTL turns on the API key cache (default off: a test that
	// revokes a key by hand sees it refused at once).
	KeyCacheTTL time.Duration
}

// New starts the intake (no workers yet) on an empty Redis database with a fake clock set to the real
// time, so asynq's clock and Errand's agree until a test moves one.
func New(t testing.TB, opts ...func(*Options)) *App {
	t.Helper()
	o := Options{RateLimit: ratelimit.PerSecond(10000, 10000), MaxBody: 1 << 20,
		Retry: jobs.RetryPolicy{Base: 20 * time.Millisecond, Cap: 200 * time.Millisecond}}
	o.Verify = intake.VerifySettings{PerDestination: ratelimit.Per(1000, time.Hour, 1000),
		PerTenant: ratelimit.Per(10000, time.Hour, 10000)}
	for _, f := range opts {
		f(&o)
	}
	a := &App{T: t, Clock: clock.NewFake(time.Now()), Logs: &Buffer{}, AdminToken: "admin-" + uuid.NewString(),
		ResendWebhookSecret: fakes.NewSvixSecret()}
	a.Logger = logging.New(a.Logs, slog.LevelDebug)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs of the failed test:\n%s", a.Logs.String())
		}
	})
	a.Store = testenv.Store(t)
	testenv.Reset(t)
	a.Redis = testenv.Redis(t)
	// The package's Redis database is shared by its tests, one at a time:
	// start each from empty so no task of an earlier test reaches this
	// test's workers. (Tests using an App must not run in parallel.)
	if err := a.Redis.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	a.RedisOpt = testenv.RedisOpt(t)
	a.Client = asynq.NewClient(a.RedisOpt)
	a.Inspector = asynq.NewInspector(a.RedisOpt)
	t.Cleanup(func() { a.Client.Close(); a.Inspector.Close() })
	a.Twilio, a.Resend = fakes.NewTwilio(), fakes.NewResend()
	// Twilio dates what it accepts by the app's clock, as the real one
	// shares the real time with Errand (the reconcile search compares them).
	a.Twilio.SetClock(a.Clock.Now)
	t.Cleanup(a.Twilio.Close)
	t.Cleanup(a.Resend.Close)
	a.FilesDir = t.TempDir()
	files, err := filestore.NewLocal(a.FilesDir, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	a.Files = files
	a.Metrics = metrics.New()
	a.SecLog = &seclog.Log{Store: a.Store, Clock: a.Clock, Logger: a.Logger}
	a.Dispatcher = &jobs.Dispatcher{Store: a.Store, Client: a.Client, Inspector: a.Inspector, Redis: a.Redis,
		Clock: a.Clock, Logger: a.Logger, Horizon: 15 * time.Minute, Batch: 500, Kinds: jobs.Dispatchables()}
	a.Deps = jobs.Deps{
		Store: a.Store, Clock: a.Clock, Logger: a.Logger, Metrics: a.Metrics, Dispatcher: a.Dispatcher,
		SMS: provider.NewTwilio(provider.TwilioConfig{AccountSID: a.Twilio.AccountSID, AuthToken: a.Twilio.AuthToken,
			From: "+15005550006", BaseURL: a.Twilio.URL, Timeout: 2 * time.Second}),
		Email: provider.NewResend(provider.ResendConfig{APIKey: a.Resend.APIKey, From: "Errand <noreply@example.com>",
			BaseURL: a.Resend.URL, Timeout: 2 * time.Second}),
		Retry: o.Retry, Files: a.Files, Pseudonyms: pseudonym.New(testSecret),
		Renderers: map[string]jobs.Renderer{
			jobs.MessageKindVerification: &jobs.VerificationRenderer{Codes: otp.New(testSecret), Clock: a.Clock},
		},
	}
	o.Verify.Codes, o.Verify.Pseudonyms = otp.New(testSecret), a.Deps.Pseudonyms
	con := console.New(console.Config{Store: a.Store, Clock: a.Clock, Logger: a.Logger, SecLog: a.SecLog,
		AdminToken: a.AdminToken, Redis: a.RedisOpt})
	t.Cleanup(func() { con.Close() })
	a.Deletions = jobs.NewDeletions(a.Deps)
	a.Deletions.Client = a.Client
	a.Server = intake.NewServer(intake.Deps{
		Store: a.Store, Redis: a.Redis, Inspector: a.Inspector, Dispatcher: a.Dispatcher, Clock: a.Clock,
		Logger: a.Logger, Metrics: a.Metrics, Limiter: ratelimit.New(a.Redis), SecLog: a.SecLog, Files: a.Files,
		AdminToken: a.AdminToken, MaxBodyBytes: o.MaxBody, ImportMaxBytes: o.ImportMaxBytes, RateLimit: o.RateLimit, Verify: o.Verify, SecretKey: testSecret,
		Console:    con,
		Pseudonyms: a.Deps.Pseudonyms, TwilioAuthToken: a.Twilio.AuthToken, ResendWebhookSecret: a.ResendWebhookSecret,
		DeletionSvc: a.Deletions, Deletions: a.Deletions,
		KeyCacheTTL: o.KeyCacheTTL,
	})
	a.HTTP = httptest.NewServer(a.Server)
	t.Cleanup(a.HTTP.Close)
	a.URL = a.HTTP.URL
	a.Server.PublicURL = a.URL
	// Twilio reports delivery here, as in production (fakes.Twilio.Report).
	a.Deps.StatusCallbackURL = a.URL + "/webhooks/twilio/status"
	return a
}

// StartWorker runs a worker until the test ends.
func (a *App) StartWorker(concurrency int) *jobs.Worker {
	a.T.Helper()
	w := jobs.NewWorker(a.RedisOpt, jobs.WorkerConfig{Concurrency: concurrency, ShutdownTimeout: 3 * time.Second,
		TaskCheckInterval: 20 * time.Millisecond, DelayedTaskCheckInterval: 50 * time.Millisecond}, a.Deps)
	if err := w.Start(); err != nil {
		a.T.Fatal(err)
	}
	a.T.Cleanup(func() { w.Stop(); w.Shutdown() })
	return w
}

// Scheduler returns a periodic scheduler on the app's clock.
func (a *App) Scheduler() *periodic.Scheduler {
	return &periodic.Scheduler{Client: a.Client, Clock: a.Clock, Logger: a.Logger, Entries: jobs.Periodic(15*time.Second, 0)}
}

// Tenant is a tenant and a live API key for it.
type Tenant struct {
	ID  uuid.UUID
	Key string
}

// NewTenant creates a tenant (region US) in MiddayZone: messages are held
// during their recipient's quiet hours (21:00–08:00 in the contact's,
// location's or tenant's zone), and a test that is not about quiet hours
// must not depend on the time of day it runs at.
func (a *App) NewTenant(name string) Tenant {
	a.T.Helper()
	return a.NewTenantIn(name, a.MiddayZone())
}

// NewTenantIn creates a tenant (region US) in the given IANA zone.
func (a *App) NewTenantIn(name, zone string) Tenant {
	a.T.Helper()
	svc := &account.Service{Store: a.Store, Clock: a.Clock, SecLog: a.SecLog}
	t, key, err := svc.CreateTenant(context.Background(), account.NewTenant{Name: name, Timezone: zone}, seclog.Event{Actor: "test"})
	if err != nil {
		a.T.Fatal(err)
	}
	return Tenant{ID: t.ID, Key: key}
}

// MiddayZone is a fixed-offset zone (Etc/GMT±N, no daylight saving time)
// in which the app's clock reads between 12:00 and 13:00 when the test
// starts: far from quiet hours for the next eight hours of fake time.
func (a *App) MiddayZone() string { return notify.ZoneWhereItIs(a.Clock.Now(), 12) }

// Response is an HTTP response, read.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a map.
func (r Response) JSON() map[string]any {
	var m map[string]any
	json.Unmarshal(r.Body, &m) //nolint:errcheck
	return m
}

// ErrorCode is the body's error.code.
func (r Response) ErrorCode() string {
	if e, ok := r.JSON()["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

// Do sends a request. body may be nil, a string/[]byte (sent as is) or
// anything else (sent as JSON). headers are name, value pairs.
func (a *App) Do(method, path, key string, body any, headers ...string) Response {
	a.T.Helper()
	var rd io.Reader
	contentType := ""
	switch b := body.(type) {
	case nil:
	case string:
		rd, contentType = strings.NewReader(b), "application/json"
	case []byte:
		rd, contentType = bytes.NewReader(b), "application/json"
	default:
		js, err := json.Marshal(b)
		if err != nil {
			a.T.Fatal(err)
		}
		rd, contentType = bytes.NewReader(js), "application/json"
	}
	req, err := http.NewRequest(method, a.URL+path, rd)
	if err != nil {
		a.T.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.T.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: out}
}

// Eventually polls cond every 10 ms until it holds or timeout passes.
func (a *App) Eventually(timeout time.Duration, what string, cond func() bool) {
	a.T.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.T.Fatalf("timed out after %s waiting for %s", timeout, what)
}

// Message reads a message row as its tenant.
func (a *App) Message(tenant uuid.UUID, id uuid.UUID) db.Message {
	a.T.Helper()
	var m db.Message
	err := a.Store.InTenant(context.Background(), tenant, func(q *db.Queries) (err error) {
		m, err = q.MessageGet(context.Background(), db.MessageGetParams{TenantID: tenant, ID: id})
		return err
	})
	if err != nil {
		a.T.Fatal(err)
	}
	return m
}

// DumpRedis returns every key and value in the app's Redis database as
// text, for tests that check no personal data reached it.
func (a *App) DumpRedis() string {
	a.T.Helper()
	ctx := context.Background()
	var b strings.Builder
	keys, err := a.Redis.Keys(ctx, "*").Result()
	if err != nil {
		a.T.Fatal(err)
	}
	for _, k := range keys {
		b.WriteString(k + "\n")
		typ, err := a.Redis.Type(ctx, k).Result()
		if err != nil {
			a.T.Fatal(err)
		}
		switch typ {
		case "string":
			v, _ := a.Redis.Get(ctx, k).Result()
			b.WriteString(v)
		case "hash":
			v, _ := a.Redis.HGetAll(ctx, k).Result()
			for hk, hv := range v {
				b.WriteString(hk + "=" + hv + "\n")
			}
		case "list":
			v, _ := a.Redis.LRange(ctx, k, 0, -1).Result()
			b.WriteString(strings.Join(v, "\n"))
		case "set":
			v, _ := a.Redis.SMembers(ctx, k).Result()
			b.WriteString(strings.Join(v, "\n"))
		case "zset":
			v, _ := a.Redis.ZRange(ctx, k, 0, -1).Result()
			b.WriteString(strings.Join(v, "\n"))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Buffer is a concurrency-safe log sink.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything logged so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// MustUUID parses s or fails the test.
func (a *App) MustUUID(s any) uuid.UUID {
	a.T.Helper()
	str, _ := s.(string)
	id, err := uuid.Parse(str)
	if err != nil {
		a.T.Fatal(fmt.Errorf("not a UUID: %v", s))
	}
	return id
}
