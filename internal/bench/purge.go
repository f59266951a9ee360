package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/filestore"
	"github.com/errandhq/errand/internal/pseudonym"
	"github.com/errandhq/errand/jobs"
)

// Purge measures the purge of a cancelled tenant (1,000,000 contacts and
// 3,000,000 messages at scale 1) through the real job path (Deletions.Run:
// every step of jobs/purge.go, batch by batch, with the certificate's
// counts written in each batch's transaction) against the plain baseline:
// batched `DELETE … WHERE id = ANY($1)` of the same two tables, one short
// transaction per batch of the same size. Each round seeds two fresh
// identical tenants, one for each. The rate is rows touched per second
// (contacts deleted + messages stripped to log metadata, for the job;
// contacts + messages deleted, for the baseline); the longest single
// transaction of each is reported.
func Purge() Benchmark {
	return Benchmark{
		Name: "purge",
		Doc:  "tenant purge (batched, resumable, counted) vs batched DELETE … WHERE id = ANY($1)",
		Run:  runPurge,
	}
}

const purgeBatch = 2000

func runPurge(ctx context.Context, env *Env, scale float64) ([]Row, error) {
	contacts := int(1_000_000 * scale)
	if contacts < 1000 {
		contacts = 1000
	}
	files, err := filestore.NewLocal(filepath.Join(env.TempDir, "purge-files"), benchSecret)
	if err != nil {
		return nil, err
	}
	deps := jobs.Deps{Store: env.Store, Clock: clock.Real{}, Logger: env.Logger, Files: files,
		Pseudonyms: pseudonym.New(benchSecret), PurgeBatch: purgeBatch, DeletionGrace: time.Nanosecond}
	row := Row{Name: "purge tenant", Unit: "rows", Extra: map[string]string{}}
	var longestJob, longestBase time.Duration
	for round := 0; round < env.Rounds; round++ {
		base, job := uuid.New(), uuid.New()
		fmt.Fprintf(env.Out, "purge: round %d: seeding 2 × (%d contacts, %d messages)…\n", round+1, contacts, 3*contacts)
		for _, id := range []uuid.UUID{base, job} {
			if err := seedExport(ctx, env, id, contacts); err != nil {
				return nil, err
			}
		}
		var bl time.Duration
		b, err := env.Measure(ctx, func() (int, error) {
			n, l, err := batchedDelete(ctx, env.Store, base)
			bl = l
			return n, err
		})
		if err != nil {
			return nil, fmt.Errorf("baseline: %w", err)
		}
		longestBase = max(longestBase, bl)
		row.Baseline = append(row.Baseline, b)

		d := jobs.NewDeletions(deps)
		var jl time.Duration
		s, err := env.Measure(ctx, func() (int, error) {
			del, err := d.Start(ctx, job, jobs.DeletionScopeTenant, nil, jobs.DeletionReasonOther, nil)
			if err != nil {
				return 0, err
			}
			time.Sleep(time.Millisecond) // past purge_after (grace: 1 ns)
			last := time.Now()
			d.OnBatch = func() {
				jl = max(jl, time.Since(last))
				last = time.Now()
			}
			if err := d.Run(ctx, job, del.ID); err != nil {
				return 0, err
			}
			return purgedRows(ctx, env.Store, job, del.ID)
		})
		if err != nil {
			return nil, fmt.Errorf("purge: %w", err)
		}
		longestJob = max(longestJob, jl)
		row.Job = append(row.Job, s)
		fmt.Fprintf(env.Out, "purge: round %d: baseline %.0f rows/s (longest tx %s), job %.0f rows/s (longest batch %s)\n",
			round+1, b.Rate(), bl.Round(time.Millisecond), s.Rate(), jl.Round(time.Millisecond))
	}
	row.Extra["longest_tx_job"] = longestJob.Round(time.Millisecond).String()
	row.Extra["longest_tx_baseline"] = longestBase.Round(time.Millisecond).String()
	return []Row{row}, nil
}

// purgedRows is what the certificate says the purge touched in the two
// big tables.
func purgedRows(ctx context.Context, store *db.Store, tenantID, deletionID uuid.UUID) (int, error) {
	var n int
	err := store.InTenantTx(ctx, tenantID, pgx.TxOptions{}, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT coalesce((counts->>'contacts')::int, 0) + coalesce((counts->>'messages')::int, 0)
			FROM deletions WHERE id = $1 AND status = 'completed'`, deletionID).Scan(&n)
	})
	return n, err
}

// batchedDelete is the baseline: pick a batch of IDs, delete them by ID,
// one transaction per batch, messages then contacts.
func batchedDelete(ctx context.Context, store *db.Store, tenantID uuid.UUID) (int, time.Duration, error) {
	total := 0
	var longest time.Duration
	for _, table := range []string{"messages", "contacts"} {
		for {
			start := time.Now()
			var n int64
			err := store.InTenantTx(ctx, tenantID, pgx.TxOptions{}, func(tx pgx.Tx) error {
				rows, err := tx.Query(ctx, "SELECT id FROM "+table+" WHERE tenant_id = $1 LIMIT $2", tenantID, purgeBatch)
				if err != nil {
					return err
				}
				ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
				if err != nil {
					return err
				}
				tag, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE id = ANY($1)", ids)
				n = tag.RowsAffected()
				return err
			})
			if err != nil {
				return total, longest, err
			}
			longest = max(longest, time.Since(start))
			total += int(n)
			if n < purgeBatch {
				break
			}
		}
	}
	return total, longest, nil
}
