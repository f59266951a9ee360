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
	return []Benchmark{Notify(), CredentialCheck(), Export(), Import()}
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
	Items    int
	Duration time.Duration
	PeakRSS  int64 // bytes, the process's peak during the run
}

// Rate is items per second.
func (s Sample) Rate() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Items) / s.Duration.Seconds()
}

// Measure times fn, which reports how many items it processed, and the
// peak RSS while it ran.
func Measure(fn func() (int, error)) (Sample, error) {
	ResetPeakRSS()
	start := time.Now()
	n, err := fn()
	d := time.Since(start)
	return Sample{Items: n, Duration: d, PeakRSS: PeakRSS()}, err
}

// Row is one line of the report: a job and its baseline.
type Row struct {
	Name     string
	Unit     string // what an item is: "messages", "rows"
	Baseline []Sample
	Job      []Sample
	Extra    map[string]string // e.g. latency percentiles, longest transaction
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

// Print writes the report as a table.
func Print(w io.Writer, rows []Row) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\titems\tbaseline/s\tjob/s\tratio\tjob peak RSS\tnotes")
	for _, r := range rows {
		b, j := Median(r.Baseline), Median(r.Job)
		ratio := 0.0
		if b.Rate() > 0 {
			ratio = j.Rate() / b.Rate()
		}
		var notes []string
		for k, v := range r.Extra {
			notes = append(notes, k+"="+v)
		}
		sort.Strings(notes)
		fmt.Fprintf(tw, "%s\t%d %s\t%.0f\t%.0f\t%.2f×\t%.0f MB\t%s\n", r.Name, j.Items, r.Unit, b.Rate(), j.Rate(), ratio,
			float64(j.PeakRSS)/(1<<20), strings.Join(notes, " "))
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
