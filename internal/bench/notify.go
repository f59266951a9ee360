package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/account"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/internal/intake"
	"github.com/errandhq/errand/internal/metrics"
	"github.com/errandhq/errand/internal/notify"
	"github.com/errandhq/errand/internal/otp"
	"github.com/errandhq/errand/internal/provider"
	"github.com/errandhq/errand/internal/pseudonym"
	"github.com/errandhq/errand/internal/ratelimit"
	"github.com/errandhq/errand/internal/seclog"
	"github.com/errandhq/errand/jobs"
)

// Notify measures messages per second through the whole path — HTTP
// intake → PostgreSQL → asynq → worker → the real Twilio SDK → a fake
// Twilio — against raw asynq (enqueue, then a no-op handler) on the same
// Redis with the same worker settings, and the enqueue→start latency of
// the job at half its measured maximum rate.
func Notify() Benchmark {
	return Benchmark{
		Name: "notify",
		Doc:  "messages/s intake→PostgreSQL→asynq→worker→fake Twilio vs raw asynq enqueue+no-op; enqueue→start latency at half load",
		Run:  runNotify,
	}
}

// Settings shared by the job and its baseline.
const (
	notifyMessages    = 3000                  // per round, at scale 1
	notifyClients     = 16                    // concurrent HTTP clients / enqueuers
	notifyConcurrency = 20                    // worker concurrency (ERRAND_WORKER_CONCURRENCY's default)
	notifyCheck       = 20 * time.Millisecond // ERRAND_TASK_CHECK_INTERVAL's default
	notifyLatencyFor  = 4 * time.Second       // length of the half-load run
)

type notifyStack struct {
	env    *Env
	client *http.Client // the app server's: keeps its connections, as a real one does
	store  *db.Store    // the worker's own pool, as in a worker process
	owner  *pgx.Conn    // sees every row: the benchmark's own checks
	tenant uuid.UUID
	twilio *fakes.Twilio
	resend *fakes.Resend
	deps   jobs.Deps
	http   *httptest.Server
	key    string
	round  atomic.Int64
}

func runNotify(ctx context.Context, env *Env, scale float64) ([]Row, error) {
	n := max(int(float64(notifyMessages)*scale), 100)
	st, err := newNotifyStack(ctx, env)
	if err != nil {
		return nil, err
	}
	defer st.close()

	row := Row{Name: "notify", Unit: "messages", Extra: map[string]string{}}
	for round := 0; round < env.Rounds; round++ {
		b, err := env.Measure(ctx, func() (int, error) { return rawAsynq(ctx, env, n) })
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		row.Baseline = append(row.Baseline, b)
		j, err := env.Measure(ctx, func() (int, error) { return st.sendAll(ctx, n) })
		if err != nil {
			return nil, fmt.Errorf("job: %w", err)
		}
		row.Job = append(row.Job, j)
		fmt.Fprintf(env.Out, "notify round %d: baseline %.0f/s, job %.0f/s\n", round+1, b.Rate(), j.Rate())
	}

	rate := Median(row.Job).Rate() / 2
	if row.JobLatency, err = st.latency(ctx, rate); err != nil {
		return nil, fmt.Errorf("latency: %w", err)
	}
	if row.BaselineLatency, err = rawLatency(ctx, env, rate); err != nil {
		return nil, fmt.Errorf("baseline latency: %w", err)
	}
	row.Extra["latency_at"] = fmt.Sprintf("%.0f/s", rate)
	row.Extra["latency_samples"] = strconv.Itoa(row.JobLatency.Samples)
	return []Row{row}, nil
}

func newNotifyStack(ctx context.Context, env *Env) (*notifyStack, error) {
	st := &notifyStack{env: env, twilio: fakes.NewTwilio(), resend: fakes.NewResend(), client: &http.Client{Transport: &http.Transport{
		MaxIdleConns: 2 * notifyClients, MaxIdleConnsPerHost: 2 * notifyClients, IdleConnTimeout: time.Minute}}}
	// The intake and the worker are separate processes in production, each
	// with its own connection pool; so here.
	workerStore, err := db.Open(ctx, env.DatabaseURL, db.AppRole, notifyConcurrency+4)
	if err != nil {
		return nil, err
	}
	st.store = workerStore
	rdb := env.Redis
	client, inspector := asynq.NewClient(env.RedisOpt), asynq.NewInspector(env.RedisOpt)
	clk := clock.Real{}
	logger := env.Logger
	sec := &seclog.Log{Store: env.Store, Clock: clk, Logger: logger}
	dispatcher := func(store *db.Store) *jobs.Dispatcher {
		return &jobs.Dispatcher{Store: store, Client: client, Inspector: inspector, Redis: rdb, Clock: clk, Logger: logger,
			Horizon: 15 * time.Minute, Batch: 1000, Kinds: jobs.Dispatchables()}
	}
	disp := dispatcher(env.Store)
	hasher := pseudonym.New(benchSecret)
	codes := otp.New(benchSecret)
	st.deps = jobs.Deps{Store: workerStore, Clock: clk, Logger: logger, Metrics: metrics.New(), Dispatcher: dispatcher(workerStore),
		SMS: provider.NewTwilio(provider.TwilioConfig{AccountSID: st.twilio.AccountSID, AuthToken: st.twilio.AuthToken,
			From: "+15005550006", BaseURL: st.twilio.URL}),
		Email: provider.NewResend(provider.ResendConfig{APIKey: st.resend.APIKey, From: "Errand <noreply@example.com>",
			BaseURL: st.resend.URL}),
		Retry: jobs.DefaultRetry, Pseudonyms: hasher,
		Renderers: map[string]jobs.Renderer{jobs.MessageKindVerification: &jobs.VerificationRenderer{Codes: codes, Clock: clk}},
		// The limiter is consulted on every send, as with the default
		// configuration (an account-wide SMS limit), at a rate that never
		// binds: its cost is measured, not its limit.
		Limits: &jobs.SendLimits{Limiter: ratelimit.New(rdb), SMS: ratelimit.PerSecond(1_000_000, 1_000_000),
			SMSFrom: "+15005550006"},
	}
	srv := intake.NewServer(intake.Deps{Store: env.Store, Redis: rdb, Inspector: inspector, Dispatcher: disp, Clock: clk,
		Logger: logger, Metrics: metrics.New(), Limiter: ratelimit.New(rdb), SecLog: sec, AdminToken: "bench-admin-token",
		MaxBodyBytes: 1 << 20, RateLimit: ratelimit.PerSecond(1_000_000, 1_000_000), Pseudonyms: hasher,
		KeyCacheTTL: time.Second, // ERRAND_API_KEY_CACHE_TTL's default
		// The defaults of ERRAND_VERIFY_PER_ADDRESS and _PER_TENANT.
		Verify: intake.VerifySettings{Codes: codes, Pseudonyms: hasher, PerDestination: ratelimit.Per(5, time.Hour, 5),
			PerTenant: ratelimit.Per(1000, time.Hour, 1000)}})
	st.http = httptest.NewServer(srv)
	srv.PublicURL = st.http.URL

	// A tenant in a zone where it is midday, so quiet hours never hold a
	// message whatever time the benchmark runs.
	svc := &account.Service{Store: env.Store, Clock: clk, SecLog: sec}
	tenant, key, err := svc.CreateTenant(ctx, account.NewTenant{Name: "Bench Repair", Timezone: notify.ZoneWhereItIs(time.Now(), 12)},
		seclog.Event{Actor: "bench"})
	if err != nil {
		return nil, err
	}
	st.key, st.tenant = key, tenant.ID
	if st.owner, err = pgx.Connect(ctx, env.DatabaseURL); err != nil {
		return nil, err
	}
	for i := range 100 {
		body := fmt.Sprintf(`{"name":"Client %d","phone":"+1312555%04d"}`, i, i)
		if _, err := st.post(ctx, http.MethodPut, "/v1/contacts/c-"+strconv.Itoa(i), body, http.StatusCreated); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// startWorker runs a fresh worker (an asynq server does not restart)
// with the production defaults, until stop.
func (st *notifyStack) startWorker() (stop func(), err error) {
	w := jobs.NewWorker(st.env.RedisOpt, jobs.WorkerConfig{Concurrency: notifyConcurrency, ShutdownTimeout: 5 * time.Second,
		TaskCheckInterval: notifyCheck}, st.deps)
	if err := w.Start(); err != nil {
		return nil, err
	}
	return func() { w.Stop(); w.Shutdown() }, nil
}

func (st *notifyStack) close() {
	if st.http != nil {
		st.http.Close()
	}
	if st.store != nil {
		st.store.Close()
	}
	if st.owner != nil {
		st.owner.Close(context.Background())
	}
	st.twilio.Close()
	st.resend.Close()
}

func (st *notifyStack) post(ctx context.Context, method, path, body string, want int) ([]byte, error) {
	status, out, err := st.call(ctx, st.key, method, path, body)
	if err != nil {
		return nil, err
	}
	if status != want {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, status, out)
	}
	return out, nil
}

// call sends one API request with a tenant's key, as an app server does.
func (st *notifyStack) call(ctx context.Context, key, method, path, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, st.http.URL+path, bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := st.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// sendAll posts n messages with notifyClients clients while the worker
// runs, and returns once every one is recorded as sent.
func (st *notifyStack) sendAll(ctx context.Context, n int) (int, error) {
	round := st.round.Add(1)
	stop, err := st.startWorker()
	if err != nil {
		return 0, err
	}
	defer stop()
	start := st.twilio.Count()
	roundStart := time.Now()
	err = fanOut(n, func(i int) error {
		body := fmt.Sprintf(`{"contact_id":"c-%d","channel":"sms","body":"Round %d message %d: your tech is on the way"}`,
			i%100, round, i)
		_, err := st.post(ctx, http.MethodPost, "/v1/messages", body, http.StatusAccepted)
		return err
	})
	if err != nil {
		return 0, err
	}
	deadline := time.Now().Add(5 * time.Minute)
	for st.twilio.Count()-start < n {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("only %d of %d messages reached the provider", st.twilio.Count()-start, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
	// Done when the rows say so, not just the provider.
	for {
		var sending int
		err := st.owner.QueryRow(ctx, `SELECT count(*) FROM messages WHERE tenant_id = $1 AND created_at >= $2
			AND status IN ('queued', 'sending')`, st.tenant, roundStart).Scan(&sending)
		if err != nil {
			return 0, err
		}
		if sending == 0 {
			return n, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%d messages not recorded as sent", sending)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// latency posts messages at rate for notifyLatencyFor and reports the
// p50 and p99 of enqueue→start: from the row's creation (just before its
// task is enqueued) to its claim by a worker.
func (st *notifyStack) latency(ctx context.Context, rate float64) (*Latency, error) {
	if rate <= 0 {
		return nil, fmt.Errorf("no rate")
	}
	stop, err := st.startWorker()
	if err != nil {
		return nil, err
	}
	defer stop()
	time.Sleep(200 * time.Millisecond) // the worker is polling
	from := time.Now()
	count := int(rate * notifyLatencyFor.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var failed atomic.Value
	for i := range count {
		time.Sleep(time.Until(from.Add(time.Duration(i) * interval)))
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			body := fmt.Sprintf(`{"contact_id":"c-%d","channel":"sms","body":"Latency message %d"}`, i%100, i)
			if _, err := st.post(ctx, http.MethodPost, "/v1/messages", body, http.StatusAccepted); err != nil {
				failed.Store(err)
			}
		}()
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		return nil, err
	}
	time.Sleep(500 * time.Millisecond)
	return st.startLatency(ctx, from)
}

// rawAsynq is the baseline: n tasks enqueued by notifyClients goroutines
// and run by a no-op handler with the worker's settings.
func rawAsynq(ctx context.Context, env *Env, n int) (int, error) {
	var done atomic.Int64
	finished := make(chan struct{})
	srv := asynq.NewServer(env.RedisOpt, asynq.Config{Concurrency: notifyConcurrency, Queues: map[string]int{"bench": 1},
		TaskCheckInterval: notifyCheck, LogLevel: asynq.FatalLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc("bench:noop", func(context.Context, *asynq.Task) error {
		if done.Add(1) == int64(n) {
			close(finished)
		}
		return nil
	})
	if err := srv.Start(mux); err != nil {
		return 0, err
	}
	defer srv.Shutdown()
	client := asynq.NewClient(env.RedisOpt)
	defer client.Close()
	err := fanOut(n, func(i int) error {
		payload, _ := json.Marshal(map[string]string{"tenant_id": "00000000-0000-0000-0000-000000000000",
			"message_id": strconv.Itoa(i)})
		_, err := client.EnqueueContext(ctx, asynq.NewTask("bench:noop", payload, asynq.Queue("bench")))
		return err
	})
	if err != nil {
		return 0, err
	}
	select {
	case <-finished:
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("baseline: only %d of %d tasks ran", done.Load(), n)
	}
	return n, nil
}

// rawLatency is the baseline's enqueue→start at the same rate.
func rawLatency(ctx context.Context, env *Env, rate float64) (*Latency, error) {
	var mu sync.Mutex
	var secs []float64
	srv := asynq.NewServer(env.RedisOpt, asynq.Config{Concurrency: notifyConcurrency, Queues: map[string]int{"bench": 1},
		TaskCheckInterval: notifyCheck, LogLevel: asynq.FatalLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc("bench:noop", func(_ context.Context, t *asynq.Task) error {
		sent, _ := strconv.ParseInt(string(t.Payload()), 10, 64)
		mu.Lock()
		secs = append(secs, time.Since(time.Unix(0, sent)).Seconds())
		mu.Unlock()
		return nil
	})
	if err := srv.Start(mux); err != nil {
		return nil, err
	}
	defer srv.Shutdown()
	client := asynq.NewClient(env.RedisOpt)
	defer client.Close()
	time.Sleep(200 * time.Millisecond)
	count := int(rate * notifyLatencyFor.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	from := time.Now()
	for i := range count {
		time.Sleep(time.Until(from.Add(time.Duration(i) * interval)))
		payload := strconv.FormatInt(time.Now().UnixNano(), 10)
		if _, err := client.EnqueueContext(ctx, asynq.NewTask("bench:noop", []byte(payload), asynq.Queue("bench"))); err != nil {
			return nil, err
		}
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	return Percentiles(secs), nil
}

// fanOut runs fn for items 1..n on notifyClients goroutines, as that many
// app servers (or enqueuers) would, and returns the first error.
func fanOut(n int, fn func(i int) error) error {
	var next atomic.Int64
	errs := make(chan error, notifyClients)
	var wg sync.WaitGroup
	for range notifyClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > n {
					return
				}
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}
