// Package bench is `errand bench`: each data-heavy job measured against
// the raw baseline it is built on (raw asynq enqueue+process, raw pgx
// CopyFrom, raw COPY … TO, batched DELETE) in the same run, on the same
// PostgreSQL and Redis, alternating baseline and job so drift hits both.
// It reports medians, the ratio job/baseline and peak RSS. It never runs
// against a database it did not create.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/errandhq/errand/db"
)

// Benchmark is one job measured against its baseline.
type Benchmark struct {
	Name string
	Doc  string
	// Run measures the job at the given scale (1 = the documented default
	// size) and returns its rows for the report.
	Run func(ctx context.Context, env *Env, scale float64) ([]Row, error)
}

// Benchmarks lists every benchmark, in the order `errand bench all` runs them.
func Benchmarks() []Benchmark {
	return []Benchmark{Notify(), CredentialCheck(), Export(), Import(), Purge(), Load()}
}

// Env is a private database and Redis database for one run.
type Env struct {
	Store       *db.Store
	DatabaseURL string // the bench database, as its owner
	RedisOpt    asynq.RedisClientOpt
	Redis       *redis.Client
	Logger      *slog.Logger
	Out         io.Writer
	Rounds      int // baseline/job alternations (at least 3)
	TempDir     string

	serverURL string
	dbName    string
}

// Options says where to run.
type Options struct {
	DatabaseURL string // any database on the server; the bench creates its own beside it
	RedisAddr   string
	RedisDB     int
	Rounds      int
	Out         io.Writer
}

// NewEnv creates and migrates a fresh database errand_bench_<pid> and
// empties the chosen Redis database.
func NewEnv(ctx context.Context, o Options) (*Env, error) {
	u, err := url.Parse(o.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("bench: database url: %w", err)
	}
	e := &Env{serverURL: o.DatabaseURL, dbName: "errand_bench_" + strconv.Itoa(os.Getpid()), Out: o.Out,
		Rounds: max(o.Rounds, 3), Logger: slog.New(slog.DiscardHandler)}
	admin, err := pgx.Connect(ctx, o.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("bench: connect: %w", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{e.dbName}.Sanitize()); err != nil {
		return nil, fmt.Errorf("bench: create database: %w", err)
	}
	u.Path = "/" + e.dbName
	e.DatabaseURL = u.String()
	m, err := db.NewMigrator(e.DatabaseURL)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if err := m.Up(ctx, io.Discard); err != nil {
		return nil, err
	}
	if e.Store, err = db.Open(ctx, e.DatabaseURL, db.AppRole, 20); err != nil {
		return nil, err
	}
	e.RedisOpt = asynq.RedisClientOpt{Addr: o.RedisAddr, DB: o.RedisDB}
	e.Redis = redis.NewClient(&redis.Options{Addr: o.RedisAddr, DB: o.RedisDB})
	if err := e.Redis.FlushDB(ctx).Err(); err != nil {
		return nil, fmt.Errorf("bench: redis: %w", err)
	}
	if e.TempDir, err = os.MkdirTemp("", "errand-bench-"); err != nil {
		return nil, err
	}
	return e, nil
}

// Close drops the bench database and empties Redis.
func (e *Env) Close(ctx context.Context) {
	e.Store.Close()
	e.Redis.FlushDB(ctx)
	e.Redis.Close()
	os.RemoveAll(e.TempDir)
	if admin, err := pgx.Connect(ctx, e.serverURL); err == nil {
		admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{e.dbName}.Sanitize()+" WITH (FORCE)")
		admin.Close(ctx)
	}
}

// Sample is one timed run.
type Sample struct {
	Items      int
	Duration   time.Duration
	PeakRSS    int64 // bytes, the process's peak during the run
	RedisCalls int64 // commands the Redis server ran during the run (INFO commandstats)
}

// Rate is items per second.
func (s Sample) Rate() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Items) / s.Duration.Seconds()
}

// Measure times fn, which reports how many items it processed, with the
// peak RSS while it ran and the Redis commands it caused. The Redis count
// is the whole server's: run benchmarks on a Redis nothing else is using.
func (e *Env) Measure(ctx context.Context, fn func() (int, error)) (Sample, error) {
	ResetPeakRSS()
	before, err := e.redisCalls(ctx)
	if err != nil {
		return Sample{}, err
	}
	start := time.Now()
	n, err := fn()
	d := time.Since(start)
	s := Sample{Items: n, Duration: d, PeakRSS: PeakRSS()}
	if err != nil {
		return s, err
	}
	after, err := e.redisCalls(ctx)
	s.RedisCalls = after - before - 1 // the INFO that took the first count
	return s, err
}

// redisCalls is the total of calls= over the server's INFO commandstats.
func (e *Env) redisCalls(ctx context.Context) (int64, error) {
	info, err := e.Redis.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, fmt.Errorf("bench: redis INFO commandstats: %w", err)
	}
	var total int64
	for _, line := range strings.Split(info, "\n") {
		_, rest, ok := strings.Cut(line, ":calls=")
		if !ok || !strings.HasPrefix(line, "cmdstat_") {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		n, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: INFO commandstats line %q: %w", line, err)
		}
		total += n
	}
	return total, nil
}

// Latency is the enqueue→start delay of a run's items.
type Latency struct {
	P50, P95, P99 time.Duration
	Samples       int
}

func (l *Latency) String() string {
	if l == nil || l.Samples == 0 {
		return "-"
	}
	r := func(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }
	return r(l.P50) + " / " + r(l.P95) + " / " + r(l.P99)
}

// Percentiles summarises delays given in seconds.
func Percentiles(secs []float64) *Latency {
	if len(secs) == 0 {
		return &Latency{}
	}
	sort.Float64s(secs)
	at := func(q float64) time.Duration {
		i := int(q * float64(len(secs)-1))
		return time.Duration(secs[i] * float64(time.Second))
	}
	return &Latency{P50: at(0.50), P95: at(0.95), P99: at(0.99), Samples: len(secs)}
}

// Row is one line of the report: a job and its baseline.
type Row struct {
	Name     string
	Unit     string // what an item is: "messages", "rows"
	Baseline []Sample
	Job      []Sample
	// Enqueue→start latency of the job and of the baseline, where the job
	// is a queued task (nil elsewhere).
	JobLatency, BaselineLatency *Latency
	Extra                       map[string]string // e.g. longest transaction
}

// Median returns the sample with the median rate.
func Median(s []Sample) Sample {
	if len(s) == 0 {
		return Sample{}
	}
	c := append([]Sample(nil), s...)
	sort.Slice(c, func(i, j int) bool { return c[i].Rate() < c[j].Rate() })
	return c[len(c)/2]
}

func perItem(s Sample) string {
	if s.Items == 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(s.RedisCalls)/float64(s.Items), 'f', 1, 64)
}

// Print writes the report as a table: medians over the rounds, the ratio
// job/baseline, enqueue→start latency p50 / p95 / p99, Redis commands per
// item and the job's peak RSS.
func Print(w io.Writer, rows []Row) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\titems\tbaseline/s\tjob/s\tratio\tjob p50 / p95 / p99\tbaseline p50 / p95 / p99\tredis cmds/item (base, job)\tjob peak RSS\tnotes")
	for _, r := range rows {
		b, j := Median(r.Baseline), Median(r.Job)
		base, ratio := "-", "-"
		if b.Rate() > 0 {
			base, ratio = fmt.Sprintf("%.0f", b.Rate()), fmt.Sprintf("%.2f×", j.Rate()/b.Rate())
		}
		var notes []string
		for k, v := range r.Extra {
			notes = append(notes, k+"="+v)
		}
		sort.Strings(notes)
		fmt.Fprintf(tw, "%s\t%d %s\t%s\t%.0f\t%s\t%s\t%s\t%s, %s\t%.0f MB\t%s\n", r.Name, j.Items, r.Unit, base, j.Rate(), ratio,
			r.JobLatency, r.BaselineLatency, perItem(b), perItem(j), float64(j.PeakRSS)/(1<<20), strings.Join(notes, " "))
	}
	tw.Flush()
}

// ResetPeakRSS resets the kernel's peak-RSS mark for this process (Linux).
func ResetPeakRSS() {
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) //nolint:errcheck // best effort; PeakRSS then reports the process peak
}

// PeakRSS is the peak resident set size since the last reset, in bytes.
func PeakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
