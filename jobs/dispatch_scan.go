package jobs

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/errandhq/errand/internal/metrics"
)

// TypeDispatchScan is the periodic due-scan and reconciler: it enqueues rows
// that came within the horizon, re-kicks stalled ones, and re-enqueues
// everything when Redis has lost its data.
const TypeDispatchScan = "maintenance:dispatch"

// DispatchScan runs one Dispatcher.Scan.
type DispatchScan struct {
	Dispatcher *Dispatcher
	Metrics    *metrics.Metrics
}

// ProcessTask implements asynq.Handler. The scan's counts are the task's
// result, visible in asynqmon.
func (h *DispatchScan) ProcessTask(ctx context.Context, t *asynq.Task) error {
	res, err := h.Dispatcher.Scan(ctx)
	if h.Metrics != nil {
		h.Metrics.Dispatched.WithLabelValues("all", "enqueued").Add(float64(res.Enqueued))
		h.Metrics.Dispatched.WithLabelValues("all", "checked").Add(float64(res.Checked))
		h.Metrics.Dispatched.WithLabelValues("all", "rekicked").Add(float64(res.Rekicked))
		h.Metrics.Dispatched.WithLabelValues("all", "forgotten").Add(float64(res.Forgotten))
		h.Metrics.Dispatched.WithLabelValues("all", "failed").Add(float64(res.Failed))
	}
	if w := t.ResultWriter(); w != nil {
		out, _ := json.Marshal(res)
		w.Write(out) //nolint:errcheck // the result is informational
	}
	if err != nil {
		return fmt.Errorf("dispatch scan: %w", err)
	}
	return nil
}
