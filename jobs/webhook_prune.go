package jobs

import (
	"context"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
)

// TypeWebhookPrune forgets processed webhook deliveries older than a week.
// A provider signs each delivery with a timestamp checked to 5 minutes, so
// a replay older than that is refused anyway; the week is margin.
const TypeWebhookPrune = "maintenance:webhook-prune"

const webhookReceiptsKept = 7 * 24 * time.Hour

// WebhookPrune deletes old webhook receipts.
type WebhookPrune struct {
	Store *db.Store
	Clock clock.Clock
}

// ProcessTask implements asynq.Handler.
func (h *WebhookPrune) ProcessTask(ctx context.Context, _ *asynq.Task) error {
	_, err := h.Store.Q().WebhookReceiptPrune(ctx, h.Clock.Now().Add(-webhookReceiptsKept))
	if err != nil {
		return fmt.Errorf("prune webhook receipts: %w", err)
	}
	return nil
}
