package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/filestore"
	"github.com/errandhq/errand/jobs"
)

// CredentialCheck measures credential:verify — the whole job: load the
// row, stream the encrypted document out of the file store (decrypt,
// SHA-256, type and readability checks), the expiry, number and duplicate
// checks, and the verdict written back — against the raw baseline of
// reading and hashing the same document as a plain file. Peak RSS shows
// the document is streamed, never held.
func CredentialCheck() Benchmark {
	return Benchmark{Name: "credential-check", Doc: "credential:verify on 8 MiB PDFs vs reading and hashing the plain file", Run: runCredentialCheck}
}

const benchDocSize = 8 << 20

func runCredentialCheck(ctx context.Context, env *Env, scale float64) ([]Row, error) {
	docs := max(int(8*scale), 1)
	files, err := filestore.NewLocal(filepath.Join(env.TempDir, "store"), "bench-secret-key-0123456789abcdefghijkl")
	if err != nil {
		return nil, err
	}
	plain := filepath.Join(env.TempDir, "document.pdf")
	sum, err := writeSyntheticPDF(plain, benchDocSize)
	if err != nil {
		return nil, err
	}
	in, err := os.Open(plain)
	if err != nil {
		return nil, err
	}
	info, err := filestore.Put(ctx, files, "bench/document.pdf", in)
	in.Close()
	if err != nil {
		return nil, err
	}
	if info.SHA256 != sum {
		return nil, fmt.Errorf("stored checksum %s, want %s", info.SHA256, sum)
	}

	now := time.Now().UTC()
	tenant, err := env.Store.Q().TenantCreate(ctx, db.TenantCreateParams{Name: "Bench Repair", Timezone: "America/Chicago", DefaultRegion: "US", Now: now})
	if err != nil {
		return nil, err
	}
	var pro db.Pro
	err = env.Store.InTenant(ctx, tenant.ID, func(q *db.Queries) (err error) {
		pro, err = q.ProUpsert(ctx, db.ProUpsertParams{TenantID: tenant.ID, ExternalID: "pro-bench", Now: now})
		return err
	})
	if err != nil {
		return nil, err
	}
	h := jobs.NewCredentialVerify(jobs.Deps{Store: env.Store, Clock: clock.Real{}, Logger: env.Logger, Files: files, Retry: jobs.DefaultRetry})

	row := Row{Name: "credential-check", Unit: "documents", Extra: map[string]string{"doc": "8MiB-pdf"}}
	var jobBytes, jobTime float64
	for round := 0; round < env.Rounds; round++ {
		base, err := env.Measure(ctx, func() (int, error) {
			for i := 0; i < docs; i++ {
				if _, err := hashFile(plain); err != nil {
					return i, err
				}
			}
			return docs, nil
		})
		if err != nil {
			return nil, err
		}
		row.Baseline = append(row.Baseline, base)

		ids := make([]uuid.UUID, docs)
		err = env.Store.InTenant(ctx, tenant.ID, func(q *db.Queries) error {
			for i := range ids {
				ids[i] = uuid.New()
				_, err := q.CredentialCreate(ctx, db.CredentialCreateParams{ID: ids[i], TenantID: tenant.ID, ProID: pro.ID,
					Kind: "insurance", Number: fmt.Sprintf("POL-%d-%d", round, i), NumberNorm: fmt.Sprintf("POL%d%d", round, i),
					Issuer: "Bench Mutual", ExpiresOn: pgtype.Date{Time: now.AddDate(1, 0, 0).Truncate(24 * time.Hour), Valid: true},
					FileKey: "bench/document.pdf", FileType: "application/pdf", FileSize: info.Size, FileSha256: info.SHA256, Now: now})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		job, err := env.Measure(ctx, func() (int, error) {
			for i, id := range ids {
				j := jobs.NewCredentialVerifyJob(tenant.ID, id)
				if err := h.ProcessTask(ctx, asynq.NewTask(j.Type, j.Payload)); err != nil {
					return i, err
				}
			}
			return docs, nil
		})
		if err != nil {
			return nil, err
		}
		var pending int
		if err := env.Store.AsSystem(ctx, func(q *db.Queries) error {
			rows, err := q.CredentialListUndispatched(ctx, db.CredentialListUndispatchedParams{Until: now.Add(time.Hour), MaxRows: 10})
			pending = len(rows)
			return err
		}); err != nil {
			return nil, err
		}
		if pending > 0 {
			return nil, fmt.Errorf("%d credentials were left pending", pending)
		}
		row.Job = append(row.Job, job)
		jobBytes += float64(docs * benchDocSize)
		jobTime += job.Duration.Seconds()
	}
	row.Extra["job_MB/s"] = fmt.Sprintf("%.0f", jobBytes/(1<<20)/jobTime)
	return []Row{row}, nil
}

// writeSyntheticPDF writes a PDF-shaped file of size bytes (header,
// incompressible filler, end-of-file marker) without holding it in memory,
// and returns its SHA-256.
func writeSyntheticPDF(path string, size int) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	w := io.MultiWriter(f, h)
	head, tail := []byte("%PDF-1.7\n"), []byte("\n%%EOF\n")
	if _, err := w.Write(head); err != nil {
		return "", err
	}
	rng := rand.NewChaCha8([32]byte{'e', 'r', 'r', 'a', 'n', 'd'})
	buf := make([]byte, 64<<10)
	for left := size - len(head) - len(tail); left > 0; left -= len(buf) {
		n := min(left, len(buf))
		rng.Read(buf[:n]) //nolint:errcheck // ChaCha8.Read never fails
		if _, err := w.Write(buf[:n]); err != nil {
			return "", err
		}
	}
	if _, err := w.Write(tail); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), f.Sync()
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
