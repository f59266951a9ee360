package metrics_test

import (
	"strings"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/metrics"
	"github.com/errandhq/errand/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestQueueSizesAreExported(t *testing.T) {
	opt := testenv.RedisOpt(t)
	require.NoError(t, testenv.Redis(t).FlushDB(t.Context()).Err())
	c := asynq.NewClient(opt)
	defer c.Close()
	for i := 0; i < 3; i++ {
		_, err := c.Enqueue(asynq.NewTask("test:noop", nil), asynq.Queue("notifications"))
		require.NoError(t, err)
	}
	in := asynq.NewInspector(opt)
	defer in.Close()
	m := metrics.New()
	m.WatchQueues(in)
	want := `
# HELP errand_queue_tasks Tasks in each asynq queue by state.
# TYPE errand_queue_tasks gauge
errand_queue_tasks{queue="notifications",state="active"} 0
errand_queue_tasks{queue="notifications",state="archived"} 0
errand_queue_tasks{queue="notifications",state="completed"} 0
errand_queue_tasks{queue="notifications",state="pending"} 3
errand_queue_tasks{queue="notifications",state="retry"} 0
errand_queue_tasks{queue="notifications",state="scheduled"} 0
`
	require.NoError(t, testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "errand_queue_tasks"))
}
