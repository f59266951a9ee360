package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/hibiken/asynq"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/filestore"
)

// TypeImportExpire is the periodic sweep that deletes what finished
// imports hold of people: the stored upload and the rejected rows
// (import_errors), DefaultImportFilesTTL after the import ended. The
// import row itself (counts, status, header) stays.
const TypeImportExpire = "maintenance:import_expire"

// ImportExpire deletes expired import files in bounded batches.
type ImportExpire struct {
	Store  *db.Store
	Clock  clock.Clock
	Logger *slog.Logger
	Files  filestore.Store
	Batch  int32
}

// NewImportExpire builds the sweep from the shared dependencies.
func NewImportExpire(d Deps) *ImportExpire {
	return &ImportExpire{Store: d.Store, Clock: d.Clock, Logger: d.Logger, Files: d.Files, Batch: 200}
}

// ProcessTask implements asynq.Handler; the count is the task's result.
func (h *ImportExpire) ProcessTask(ctx context.Context, t *asynq.Task) error {
	n, err := h.Sweep(ctx)
	if w := t.ResultWriter(); w != nil {
		out, _ := json.Marshal(map[string]int{"expired": n})
		w.Write(out) //nolint:errcheck // informational
	}
	return err
}

// Sweep removes the files and rejected rows of every import past its
// time. The file goes first, then the rows: a crash between the two
// leaves a row the next sweep finishes (deleting a missing file is no
// error).
func (h *ImportExpire) Sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		var due []db.ImportListFilesExpiringRow
		err := h.Store.AsSystem(ctx, func(q *db.Queries) (err error) {
			due, err = q.ImportListFilesExpiring(ctx, db.ImportListFilesExpiringParams{Now: h.Clock.Now(), MaxRows: h.Batch})
			return err
		})
		if err != nil {
			return total, fmt.Errorf("list expired imports: %w", err)
		}
		for _, i := range due {
			if i.FileKey != nil && h.Files != nil {
				if err := h.Files.Delete(ctx, *i.FileKey); err != nil && !errors.Is(err, filestore.ErrNotFound) {
					return total, fmt.Errorf("delete import file: %w", err)
				}
			}
			err := h.Store.InTenant(ctx, i.TenantID, func(q *db.Queries) error {
				if _, err := q.ImportErrorsDelete(ctx, db.ImportErrorsDeleteParams{TenantID: i.TenantID, ImportID: i.ID}); err != nil {
					return err
				}
				_, err := q.ImportForgetFiles(ctx, db.ImportForgetFilesParams{TenantID: i.TenantID, ID: i.ID, Now: h.Clock.Now()})
				return err
			})
			if err != nil {
				return total, fmt.Errorf("forget import files: %w", err)
			}
			total++
		}
		if len(due) < int(h.Batch) {
			return total, nil
		}
	}
}
