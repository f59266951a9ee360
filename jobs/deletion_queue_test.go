package jobs_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/jobs"
)

// A child's erasure is taken ahead of all other main-pool work, but never
// in the critical queue, which is the verification codes' lane alone.
func TestMinorErasureIsPrioritisedOutsideTheCodesLane(t *testing.T) {
	minor := jobs.NewDeletionRunJob(uuid.New(), uuid.New(), true)
	require.Equal(t, jobs.QueueErasure, minor.Queue)
	require.NotEqual(t, jobs.QueueCritical, minor.Queue)
	weight, served := jobs.MainQueues[minor.Queue]
	require.True(t, served, "the main pool serves the erasure queue")
	for q, w := range jobs.MainQueues {
		if q != minor.Queue {
			require.Greater(t, weight, w, "the erasure queue outweighs %s", q)
		}
	}
	_, inMain := jobs.MainQueues[jobs.QueueCritical]
	require.False(t, inMain, "codes keep workers of their own")
	require.Equal(t, jobs.QueueMaintenance, jobs.NewDeletionRunJob(uuid.New(), uuid.New(), false).Queue)
}
