package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/ratelimit"
	"github.com/errandhq/errand/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Two limiters on one Redis (two processes) share the allowance.
func TestLimitIsSharedAcrossProcesses(t *testing.T) {
	rdb := testenv.Redis(t)
	a, b := ratelimit.New(rdb), ratelimit.New(rdb)
	lim := ratelimit.Per(3, time.Hour, 3)
	ctx := context.Background()
	key := "test:" + t.Name()
	allowed := 0
	for i := 0; i < 6; i++ {
		l := a
		if i%2 == 1 {
			l = b
		}
		ok, retry, err := l.Allow(ctx, key, lim)
		require.NoError(t, err)
		if ok {
			allowed++
		} else {
			require.Greater(t, retry, time.Duration(0), "a refusal says when to retry")
		}
	}
	require.Equal(t, 3, allowed)
	ok, _, err := a.Allow(ctx, key+":other", lim)
	require.NoError(t, err)
	require.True(t, ok, "limits are per key")
	ok, _, err = a.Allow(ctx, key, ratelimit.Limit{})
	require.NoError(t, err)
	require.True(t, ok, "a zero limit means unlimited")
}
