package bench

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// The purge benchmark runs end to end at a tiny scale: the baseline and
// the job each touch every contact and message of their own tenant.
func TestPurgeBenchmarkRuns(t *testing.T) {
	ctx := context.Background()
	rows, err := Purge().Run(ctx, newEnv(t), 0.001)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	r := rows[0]
	require.Len(t, r.Baseline, 3)
	require.Len(t, r.Job, 3)
	require.Equal(t, 4000, Median(r.Baseline).Items, "1,000 contacts and 3,000 messages deleted")
	require.Equal(t, 4000, Median(r.Job).Items, "1,000 contacts deleted and 3,000 messages stripped")
	require.NotEmpty(t, r.Extra["longest_tx_job"])
}
