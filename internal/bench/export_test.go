package bench

import (
	"context"
	"io"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/testenv"
)

// The export benchmark runs end to end at a tiny scale: both formats, the
// baseline and the job measured over the same rows.
func TestExportBenchmarkRuns(t *testing.T) {
	ctx := context.Background()
	opt := testenv.RedisOpt(t)
	env, err := NewEnv(ctx, Options{DatabaseURL: testenv.DatabaseURL(t), RedisAddr: opt.Addr, RedisDB: opt.DB,
		Rounds: 3, Out: io.Discard})
	require.NoError(t, err)
	defer env.Close(context.WithoutCancel(ctx))
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

// The import benchmark runs end to end at its smallest size: the job
// creates exactly the clients the file holds, rejects the bad rows and
// merges the duplicates, and the baseline copies the same clients.
func TestImportBenchmarkRuns(t *testing.T) {
	ctx := context.Background()
	opt := testenv.RedisOpt(t)
	env, err := NewEnv(ctx, Options{DatabaseURL: testenv.DatabaseURL(t), RedisAddr: opt.Addr, RedisDB: opt.DB,
		Rounds: 3, Out: io.Discard})
	require.NoError(t, err)
	defer env.Close(context.WithoutCancel(ctx))
	rows, err := Import().Run(ctx, env, 0.001)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	r := rows[0]
	require.Len(t, r.Baseline, 3)
	require.Len(t, r.Job, 3)
	require.Equal(t, 1000, Median(r.Job).Items)
	require.Equal(t, "20", r.Extra["rejected"])
	require.Equal(t, Median(r.Baseline).Items+20+mustAtoi(t, r.Extra["duplicates"]), 1000)
	require.Positive(t, Median(r.Job).PeakRSS)
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}
