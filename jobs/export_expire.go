package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/filestore"
)

// TypeExportExpire is the periodic sweep that deletes export files past
// their time (ERRAND_EXPORT_TTL after they were made, 7 days by default)
// and marks their exports expired.
const TypeExportExpire = "maintenance:export_expire"

// ExportExpire deletes expired export files in bounded batches.
type ExportExpire struct {
	Store  *db.Store
	Clock  clock.Clock
	Logger *slog.Logger
	Files  filestore.Store
	Batch  int32
}

// NewExportExpire builds the sweep from the shared dependencies.
func NewExportExpire(d Deps) *ExportExpire {
	return &ExportExpire{Store: d.Store, Clock: d.Clock, Logger: d.Logger, Files: d.Files, Batch: 200}
}

// partialGrace is how old a partial file must be before the sweep takes
// its writer for dead: far longer than any write (an export times out
// after two hours).
const partialGrace = 24 * time.Hour

// partialSweeper is a file store that can remove what dead writers left
// behind (filestore.Local).
type partialSweeper interface {
	RemoveStalePartials(ctx context.Context, olderThan time.Time) (int, error)
}

// ProcessTask implements asynq.Handler; the counts are the task's result.
func (h *ExportExpire) ProcessTask(ctx context.Context, t *asynq.Task) error {
	n, err := h.Sweep(ctx)
	partials := 0
	if ps, ok := h.Files.(partialSweeper); ok && err == nil {
		// Writers killed mid-file (exports, uploads) leave hidden partial
		// files that hold data too.
		partials, err = ps.RemoveStalePartials(ctx, h.Clock.Now().Add(-partialGrace))
	}
	if w := t.ResultWriter(); w != nil {
		out, _ := json.Marshal(map[string]int{"expired": n, "partials_removed": partials})
		w.Write(out) //nolint:errcheck // informational
	}
	return err
}

// Sweep expires every export whose file is past its time. The file goes
// first, then the row says expired: a crash between the two leaves a row
// the next sweep finishes (deleting a missing file is no error).
func (h *ExportExpire) Sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		var due []db.ExportListExpiringRow
		err := h.Store.AsSystem(ctx, func(q *db.Queries) (err error) {
			due, err = q.ExportListExpiring(ctx, db.ExportListExpiringParams{Now: h.Clock.Now(), MaxRows: h.Batch})
			return err
		})
		if err != nil {
			return total, fmt.Errorf("list expired exports: %w", err)
		}
		for _, e := range due {
			if err := deleteExportFiles(ctx, h.Files, e.TenantID, e.ID, e.Attempts); err != nil {
				return total, err
			}
			err := h.Store.InTenant(ctx, e.TenantID, func(q *db.Queries) error {
				_, err := q.ExportMarkExpired(ctx, db.ExportMarkExpiredParams{TenantID: e.TenantID, ID: e.ID, Now: h.Clock.Now()})
				return err
			})
			if err != nil {
				return total, fmt.Errorf("mark export expired: %w", err)
			}
			total++
		}
		if len(due) < int(h.Batch) {
			if total > 0 {
				h.Logger.InfoContext(ctx, "expired export files deleted", "exports", total)
			}
			return total, nil
		}
	}
}

// deleteExportFiles removes the files of an export's attempts 1..upTo:
// the one its row points at, and any an attempt committed before it died
// unrecorded.
func deleteExportFiles(ctx context.Context, files filestore.Store, tenantID, exportID uuid.UUID, upTo int32) error {
	for a := int32(1); a <= upTo; a++ {
		if err := files.Delete(ctx, fmt.Sprintf(exportFileKey, tenantID, exportID, a)); err != nil {
			return fmt.Errorf("delete export file: %w", err)
		}
	}
	return nil
}
