package bench

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/testenv"
)

// newEnv is a bench environment on the test package's database server
// and Redis database, dropped when the test ends.
func newEnv(t *testing.T) *Env {
	t.Helper()
	ctx := context.Background()
	opt := testenv.RedisOpt(t)
	env, err := NewEnv(ctx, Options{DatabaseURL: testenv.DatabaseURL(t), RedisAddr: opt.Addr, RedisDB: opt.DB,
		Rounds: 3, Out: io.Discard})
	require.NoError(t, err)
	t.Cleanup(func() { env.Close(context.WithoutCancel(ctx)) })
	return env
}

// The export benchmark runs end to end at a tiny scale: both formats, the
// baseline and the job measured over the same rows.
func TestExportBenchmarkRuns(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t)
	rows, err := Export().Run(ctx, env, 0.001)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	for _, r := range rows {
		require.Len(t, r.Baseline, 3)
		require.Len(t, r.Job, 3)
		require.Equal(t, 4000, Median(r.Baseline).Items, "1,000 contacts and 3,000 messages")
		require.GreaterOrEqual(t, Median(r.Job).Items, 4000, "the job exports them and the account's small tables")
		require.Positive(t, Median(r.Job).PeakRSS)
	}
}

// The notify benchmark runs end to end at a tiny scale and the report
// carries what a reader compares: the ratio, latency percentiles of job
// and baseline, and the Redis commands each item cost.
func TestNotifyBenchmarkReport(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t)
	rows, err := Notify().Run(ctx, env, 0.01)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	r := rows[0]
	require.Len(t, r.Baseline, 3)
	require.Len(t, r.Job, 3)
	b, j := Median(r.Baseline), Median(r.Job)
	require.Equal(t, 100, b.Items)
	require.Equal(t, 100, j.Items)
	require.GreaterOrEqual(t, b.RedisCalls, int64(b.Items), "each raw task costs Redis at least one command")
	require.Greater(t, j.RedisCalls, b.RedisCalls/2)
	require.Positive(t, r.JobLatency.Samples)
	require.Positive(t, r.BaselineLatency.Samples)
	require.LessOrEqual(t, r.JobLatency.P50, r.JobLatency.P95)
	require.LessOrEqual(t, r.JobLatency.P95, r.JobLatency.P99)

	var out strings.Builder
	Print(&out, rows)
	require.Contains(t, out.String(), "job p50 / p95 / p99")
	require.Contains(t, out.String(), "redis cmds/item")
	require.Contains(t, out.String(), r.JobLatency.String())
}

// The load run ends with every request answered 2xx and every message due
// sent, across all its tenants; its emails reach the fake Resend through
// the real SDK (the run fails if their count differs from the emails sent).
func TestLoadRuns(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t)
	rows, err := Load().Run(ctx, env, 0)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	r := rows[0]
	require.Equal(t, "100", r.Extra["tenants"])
	require.Equal(t, fmt.Sprintf("0/%d", Median(r.Job).Items), r.Extra["errors"])
	require.Equal(t, "0", r.Extra["messages_not_sent"])
	emails, err := strconv.Atoi(r.Extra["emails_at_resend"])
	require.NoError(t, err, "the emails go through resend-go to the fake Resend: %v", r.Extra)
	require.Positive(t, emails)
	require.Positive(t, r.JobLatency.Samples)
	for _, k := range loadKinds {
		require.NotEqual(t, "-", r.Extra["http_"+k.name], k.name)
	}
}

// The import benchmark runs end to end at its smallest size: the job
// creates exactly the clients the file holds, rejects the bad rows and
// merges the duplicates, and the baseline copies the same clients.
func TestImportBenchmarkRuns(t *testing.T) {
	ctx := context.Background()
	env := newEnv(t)
	rows, err := Import().Run(ctx, env, 0.001)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	r := rows[0]
	require.Len(t, r.Baseline, 3)
	require.Len(t, r.Job, 3)
	require.Equal(t, 1000, Median(r.Job).Items)
	require.Equal(t, "20", r.Extra["rejected"])
	duplicates, err := strconv.Atoi(r.Extra["duplicates"])
	require.NoError(t, err)
	require.Equal(t, 1000, Median(r.Baseline).Items+20+duplicates)
	require.Positive(t, Median(r.Job).PeakRSS)
}
