package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/hibiken/asynq"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/bench"
	"github.com/errandhq/errand/internal/config"
	"github.com/errandhq/errand/internal/redisconn"
)

// runBench runs `errand bench [flags] <name>|all` in a database it creates
// (and drops) beside DATABASE_URL's, on a Redis database of its own.
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scale := fs.Float64("scale", 1, "size multiplier (1 = the documented size)")
	rounds := fs.Int("rounds", 3, "baseline/job alternations (at least 3)")
	redisDB := fs.Int("redis-db", 14, "Redis database to use (it is flushed)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	all := bench.Benchmarks()
	names := make([]string, len(all))
	for i, b := range all {
		names[i] = b.Name
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: errand bench [-scale N] [-rounds N] <%s|all>", strings.Join(names, "|"))
	}
	want := fs.Arg(0)
	var selected []bench.Benchmark
	for _, b := range all {
		if want == "all" || want == b.Name {
			selected = append(selected, b)
		}
	}
	if len(selected) == 0 {
		return fmt.Errorf("unknown benchmark %q: want one of %s or all", want, strings.Join(names, ", "))
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	opt, err := redisconn.Parse(cfg.RedisURL)
	if err != nil {
		return err
	}
	single, ok := opt.(asynq.RedisClientOpt)
	if !ok {
		return errors.New("bench needs a single Redis server (redis://host:port)")
	}
	if err := db.EnsureDatabase(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	env, err := bench.NewEnv(ctx, bench.Options{DatabaseURL: cfg.DatabaseURL, RedisAddr: single.Addr, RedisDB: *redisDB,
		Rounds: *rounds, Out: stdout})
	if err != nil {
		return err
	}
	defer env.Close(context.WithoutCancel(ctx))
	var rows []bench.Row
	for _, b := range selected {
		fmt.Fprintf(stderr, "bench %s: %s\n", b.Name, b.Doc)
		r, err := b.Run(ctx, env, *scale)
		if err != nil {
			return fmt.Errorf("bench %s: %w", b.Name, err)
		}
		rows = append(rows, r...)
	}
	if len(rows) == 0 {
		return errors.New("no results")
	}
	bench.Print(stdout, rows)
	return nil
}
