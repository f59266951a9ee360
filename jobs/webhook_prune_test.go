package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/jobs"
)

// Webhook deliveries are remembered for a week, then forgotten.
func TestWebhookPruneForgetsOldReceipts(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	q := f.app.Store.Q()
	now := f.app.Clock.Now()
	for id, at := range map[string]time.Time{"old": now.Add(-8 * 24 * time.Hour), "recent": now.Add(-6 * 24 * time.Hour)} {
		_, err := q.WebhookReceiptRecord(ctx, db.WebhookReceiptRecordParams{Source: "resend", EventID: id, Now: at})
		require.NoError(t, err)
	}
	h := &jobs.WebhookPrune{Store: f.app.Store, Clock: f.app.Clock}
	require.NoError(t, h.ProcessTask(ctx, asynq.NewTask(jobs.TypeWebhookPrune, nil)))
	_, err := q.WebhookReceiptRecord(ctx, db.WebhookReceiptRecordParams{Source: "resend", EventID: "old", Now: now})
	require.NoError(t, err, "forgotten: recorded anew")
	_, err = q.WebhookReceiptRecord(ctx, db.WebhookReceiptRecordParams{Source: "resend", EventID: "recent", Now: now})
	require.True(t, db.IsNotFound(err), "still remembered")
}
