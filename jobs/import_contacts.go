package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/filestore"
	"github.com/errandhq/errand/internal/importer"
	"github.com/errandhq/errand/internal/logging"
	"github.com/errandhq/errand/internal/pseudonym"
)

// TypeImportContacts reads one uploaded client list into contacts.
const TypeImportContacts = "import:contacts"

// ImportContactsPayload names the import; the file and its options stay in
// PostgreSQL and the file store.
type ImportContactsPayload struct {
	TenantID uuid.UUID `json:"tenant_id"`
	ImportID uuid.UUID `json:"import_id"`
}

// Import limits. An attempt proves it is alive with every batch it
// commits (about every importBatchEvery: batches are sized so); one silent
// for importStale is presumed dead and the next attempt resumes after its
// last batch.
const (
	importTimeout     = 4 * time.Hour
	importMaxRetry    = 8
	importStale       = 2 * time.Minute
	maxImportAttempts = importMaxRetry + 3
	importResultKeep  = 24 * time.Hour
	importBookkeeping = 15 * time.Second
	// ImportBatchRows and importBatchEvery bound a batch: whichever comes
	// first ends it, so progress is committed every few seconds. The
	// rows per batch start at importFirstBatchRows and follow how long
	// the last batch took to commit (nextBatchRows): a database that
	// merges slowly gets smaller batches, not rarer progress.
	ImportBatchRows      = 5000
	importBatchEvery     = 2 * time.Second
	importFirstBatchRows = 1000
	importMinBatchRows   = 100
	// importMergeTries bounds how often a batch is merged again after a
	// concurrent writer created one of its contacts.
	importMergeTries = 3
	// ImportFileKey is where an upload is stored: tenant, import.
	ImportFileKey = "tenants/%s/imports/%s.csv"
	// DefaultImportFilesTTL is how long an import's upload and rejected
	// rows are kept after it ends.
	DefaultImportFilesTTL = 7 * 24 * time.Hour
)

// NewImportContactsJob describes the task of one import. Its result
// (progress and counts) is kept a day for asynqmon.
func NewImportContactsJob(tenantID, importID uuid.UUID) Job {
	payload, _ := json.Marshal(ImportContactsPayload{TenantID: tenantID, ImportID: importID})
	return Job{
		ID:      "import:" + importID.String(),
		Queue:   QueueBulk,
		Type:    TypeImportContacts,
		Payload: payload,
		Opts: []asynq.Option{asynq.MaxRetry(importMaxRetry), asynq.Timeout(importTimeout),
			asynq.Retention(importResultKeep)},
	}
}

// ImportContacts streams an upload from the file store through the
// importer and merges it into contacts in batches.
//
// Each batch is one transaction: its rows are COPYed into import_rows and
// merged into contacts with one statement (ImportMergeBatch; a dry run
// only counts, ImportDryRunBatch), its rejected rows are COPYed into
// import_errors, and the import's counts and resume point (records
// consumed) move forward, but only while the row is still running under
// this attempt's claim. A worker killed mid-batch loses that batch only;
// the next attempt skips the records already committed and goes on. A
// cancelled import (DELETE) makes the next batch's update match nothing:
// the batch is rolled back and the attempt stops.
//
// Duplicates: a row's key is its external_id, else its phone, else its
// email (importKey). Rows of a batch with the same key are merged in memory,
// the later row's non-blank cells winning ("last wins"); ImportMergeBatch
// finds a key's contact the same way in every batch (README, "Duplicates"),
// so a row whose key an earlier batch already wrote is merged into that
// contact. Either way it is counted as a duplicate.
type ImportContacts struct {
	Store      *db.Store
	Clock      clock.Clock
	Logger     *slog.Logger
	Files      filestore.Store
	Pseudonyms *pseudonym.Hasher
	Retry      RetryPolicy
	FilesTTL   time.Duration
	// BatchRows is the most rows per batch (0 = ImportBatchRows).
	BatchRows int
	// AfterBatch, when set, runs after each committed batch (tests: an
	// error ends the attempt there, as if its worker had died).
	AfterBatch func(batch int32) error
	// BeforeMerge, when set, runs after a batch is staged and before it is
	// merged (tests: a concurrent writer).
	BeforeMerge func()
}

// NewImportContacts builds the handler from the shared dependencies.
func NewImportContacts(d Deps) *ImportContacts {
	return &ImportContacts{Store: d.Store, Clock: d.Clock, Logger: d.Logger, Files: d.Files,
		Pseudonyms: d.Pseudonyms, Retry: d.Retry, FilesTTL: DefaultImportFilesTTL}
}

// ImportResult is the task's result as asynqmon shows it.
type ImportResult struct {
	Status     string `json:"status"`
	Progress   int32  `json:"progress"`
	Total      int64  `json:"rows_total"`
	Created    int64  `json:"rows_created"`
	Updated    int64  `json:"rows_updated"`
	Rejected   int64  `json:"rows_rejected"`
	Duplicates int64  `json:"rows_duplicates"`
	Error      string `json:"error,omitempty"`
}

func importResult(i db.Import) ImportResult {
	r := ImportResult{Status: i.Status, Progress: i.Progress, Total: i.RowsTotal, Created: i.RowsCreated,
		Updated: i.RowsUpdated, Rejected: i.RowsRejected, Duplicates: i.RowsDuplicates}
	if i.Error != nil {
		r.Error = *i.Error
	}
	return r
}

// errImportStopped ends an attempt whose batch found the import cancelled
// or claimed by another attempt.
var errImportStopped = errors.New("the import was cancelled or taken over")

// ProcessTask implements asynq.Handler.
func (h *ImportContacts) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p ImportContactsPayload
	if err := decode(t, &p); err != nil {
		return err
	}
	ctx = logging.With(ctx, slog.String("tenant_id", p.TenantID.String()), slog.String("import_id", p.ImportID.String()))
	err := h.attempt(ctx, t, p)
	h.report(ctx, t, p)
	return err
}

func (h *ImportContacts) attempt(ctx context.Context, t *asynq.Task, p ImportContactsPayload) error {
	imp, attempt, done, err := h.claim(ctx, p)
	if err != nil || done {
		return err
	}
	return h.run(ctx, t, imp, attempt)
}

// report writes the import as the attempt leaves it (succeeded, failed,
// cancelled, queued for a retry, or still running under another attempt)
// as the task's result, so asynqmon never shows a finished import as
// running.
func (h *ImportContacts) report(ctx context.Context, t *asynq.Task, p ImportContactsPayload) {
	if t.ResultWriter() == nil {
		return
	}
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), importBookkeeping)
	defer cancel()
	var cur db.Import
	err := h.Store.InTenant(bg, p.TenantID, func(q *db.Queries) (err error) {
		cur, err = q.ImportGet(bg, db.ImportGetParams{TenantID: p.TenantID, ID: p.ImportID})
		return err
	})
	if err != nil {
		if !db.IsNotFound(err) {
			h.Logger.WarnContext(ctx, "could not write the import's task result", "err", err)
		}
		return
	}
	writeImportResult(t, importResult(cur))
}

func (h *ImportContacts) claim(ctx context.Context, p ImportContactsPayload) (db.Import, int32, bool, error) {
	var imp db.Import
	var attempt int32
	done := false
	failure := ""
	err := h.Store.InTenant(ctx, p.TenantID, func(q *db.Queries) error {
		i, err := q.ImportLock(ctx, db.ImportLockParams{TenantID: p.TenantID, ID: p.ImportID})
		if db.IsNotFound(err) {
			done = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock import: %w", err)
		}
		imp = i
		now := h.Clock.Now()
		switch i.Status {
		case "queued":
			if i.DueAt.After(now.Add(earlyTolerance)) {
				done = true
				return q.ImportDefer(ctx, db.ImportDeferParams{TenantID: i.TenantID, ID: i.ID, Now: now})
			}
		case "running":
			if i.HeartbeatAt != nil && now.Sub(*i.HeartbeatAt) < importStale {
				return Retry(errors.New("another worker is running this import"), importStale-now.Sub(*i.HeartbeatAt))
			}
			h.Logger.WarnContext(ctx, "earlier import attempt went silent; resuming", "attempt", i.Attempts,
				"records_done", i.RecordsDone)
		default:
			done = true // succeeded, failed, cancelled
			return nil
		}
		if i.Attempts >= maxImportAttempts {
			failure = fmt.Sprintf("gave up after %d attempts", i.Attempts)
			return nil
		}
		if i.FileKey == nil {
			failure = "the uploaded file is no longer available"
			return nil
		}
		attempt, err = q.ImportClaim(ctx, db.ImportClaimParams{TenantID: i.TenantID, ID: i.ID, Now: now})
		return err
	})
	if err != nil {
		return imp, 0, false, err
	}
	if failure != "" {
		return imp, 0, true, h.fail(ctx, imp, failure, Permanent(errors.New(failure)))
	}
	return imp, attempt, done, nil
}

// countingReader counts the stored (raw) bytes read, for progress.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// batch is the rows of one transaction.
type importBatch struct {
	rows     []stagedRow
	index    map[string]int // key → index in rows
	rejected []importer.Record
	dups     int64
	total    int64
	started  time.Time
}

type stagedRow struct {
	line int64
	key  string
	row  importer.Row
}

func (b *importBatch) reset(now time.Time) {
	b.rows, b.rejected = b.rows[:0], b.rejected[:0]
	clear(b.index)
	b.dups, b.total, b.started = 0, 0, now
}

// importKey is what identifies a row's client: its external_id, else its
// phone, else its email (lower-cased). Rows with the same key are one
// client; rows with different keys never merge, whatever else they share.
func importKey(r importer.Row) string {
	switch {
	case r.ExternalID != nil:
		return "x:" + *r.ExternalID
	case r.Phone != nil:
		return "p:" + *r.Phone
	default:
		return "e:" + strings.ToLower(*r.Email)
	}
}

// add puts an accepted row in the batch, merging it into the batch's
// earlier row of the same key (the later non-blank cells win).
func (b *importBatch) add(line int64, r importer.Row) {
	key := importKey(r)
	if i, ok := b.index[key]; ok {
		prev := &b.rows[i]
		prev.row, prev.line = mergeRow(prev.row, r), line
		b.dups++
		return
	}
	b.rows = append(b.rows, stagedRow{line: line, key: key, row: r})
	b.index[key] = len(b.rows) - 1
}

func mergeRow(old, cur importer.Row) importer.Row {
	pick := func(a, b *string) *string {
		if b != nil {
			return b
		}
		return a
	}
	out := cur
	out.ExternalID = pick(old.ExternalID, cur.ExternalID)
	if out.Name == "" {
		out.Name = old.Name
	}
	out.Phone, out.Email = pick(old.Phone, cur.Phone), pick(old.Email, cur.Email)
	out.Address, out.PropertyType = pick(old.Address, cur.Address), pick(old.PropertyType, cur.PropertyType)
	out.Notes = pick(old.Notes, cur.Notes)
	if out.ClosingDate == nil {
		out.ClosingDate = old.ClosingDate
	}
	return out
}

func (h *ImportContacts) run(ctx context.Context, t *asynq.Task, imp db.Import, attempt int32) error {
	rc, err := h.Files.Open(ctx, *imp.FileKey)
	if errors.Is(err, filestore.ErrNotFound) {
		return h.fail(ctx, imp, "the uploaded file is no longer available", Permanent(err))
	}
	if err != nil {
		return h.retryLater(ctx, imp, attempt, err)
	}
	defer rc.Close()
	src := &countingReader{r: rc}

	var region string
	var mapping map[importer.Field]string
	if len(imp.Mapping) > 0 {
		if err := json.Unmarshal(imp.Mapping, &mapping); err != nil {
			return h.fail(ctx, imp, "the mapping cannot be read", Permanent(err))
		}
	}
	err = h.Store.InTenant(ctx, imp.TenantID, func(q *db.Queries) (err error) {
		region, err = q.ImportTenantRegion(ctx, imp.TenantID)
		return err
	})
	if err != nil {
		return h.retryLater(ctx, imp, attempt, err)
	}
	rd, err := importer.NewReader(src, importer.Options{Mapping: mapping, Region: region})
	var le *importer.LayoutError
	if errors.As(err, &le) {
		return h.fail(ctx, imp, le.Reason, Permanent(le))
	}
	if err != nil {
		return h.retryLater(ctx, imp, attempt, err)
	}
	layout := rd.Layout()
	err = h.Store.InTenant(ctx, imp.TenantID, func(q *db.Queries) error {
		n, err := q.ImportSetLayout(ctx, db.ImportSetLayoutParams{TenantID: imp.TenantID, ID: imp.ID, Attempt: attempt,
			Header: layout.Header, UnknownColumns: nonNil(layout.Unknown), Encoding: layout.Encoding,
			Delimiter: string(layout.Delimiter), Now: h.Clock.Now()})
		if err == nil && n == 0 {
			return errImportStopped
		}
		return err
	})
	if errors.Is(err, errImportStopped) {
		return h.stopped(ctx, imp)
	}
	if err != nil {
		return h.retryLater(ctx, imp, attempt, err)
	}
	if err := rd.Skip(imp.RecordsDone); err != nil {
		return h.readFailed(ctx, imp, attempt, err)
	}

	limit := h.BatchRows
	if limit <= 0 {
		limit = ImportBatchRows
	}
	// Reading (decoding, parsing, phone numbers) and merging overlap: the
	// next batch is read while the database merges this one. At most two
	// batches are held. The rows per batch follow the commits' pace.
	batches := make(chan readBatch, 1)
	var rows atomic.Int64
	rows.Store(int64(min(limit, importFirstBatchRows)))
	rctx, stopReading := context.WithCancel(ctx)
	go h.readBatches(rctx, rd, src, imp.FileBytes, &rows, batches)
	defer func() {
		stopReading()
		for range batches { //nolint:revive // wait for the reader to let go of the file
		}
	}()
	for rb := range batches {
		if rb.err != nil {
			return h.readFailed(ctx, imp, attempt, rb.err)
		}
		started := time.Now()
		cur, err := h.commitBatch(ctx, imp, attempt, rb.batch, rb.records, rb.progress)
		if errors.Is(err, errImportStopped) {
			return h.stopped(ctx, imp)
		}
		if err != nil {
			return h.retryLater(ctx, imp, attempt, err)
		}
		rows.Store(int64(nextBatchRows(int(rb.batch.total), time.Since(started), limit)))
		writeImportResult(t, importResult(cur))
		if h.AfterBatch != nil {
			if err := h.AfterBatch(cur.BatchesDone); err != nil {
				return err
			}
		}
		if rb.fileErr != nil {
			return h.fail(ctx, imp, rb.fileErr.Error()+"; the rows before it were imported", Permanent(rb.fileErr))
		}
		if rb.eof {
			return h.succeed(ctx, imp, attempt)
		}
	}
	return h.retryLater(ctx, imp, attempt, ctx.Err())
}

// readBatch is one batch as the reader hands it over.
type readBatch struct {
	batch    *importBatch
	records  int64 // the resume point once this batch is committed
	progress int32
	eof      bool
	fileErr  *importer.FileError // the rest of the file cannot be read
	err      error               // reading failed (transient)
}

// nextBatchRows sizes the next batch from the last: as many rows as the
// database commits in importBatchEvery at the last batch's pace, at most
// twice as many as before and within [importMinBatchRows, limit].
func nextBatchRows(rows int, took time.Duration, limit int) int {
	floor := min(importMinBatchRows, limit)
	n := 2 * rows
	if took > 0 {
		n = min(n, int(float64(rows)*float64(importBatchEvery)/float64(took)))
	}
	return max(floor, min(n, limit))
}

// readBatches reads the file into batches of at most *limit rows (or
// importBatchEvery of reading) until its end, an error, or ctx ends.
func (h *ImportContacts) readBatches(ctx context.Context, rd *importer.Reader, src *countingReader, size int64,
	limit *atomic.Int64, out chan<- readBatch) {
	defer close(out)
	for {
		b := &importBatch{index: map[string]int{}}
		b.reset(time.Now())
		var rerr error
		for {
			rec, err := rd.Next()
			if err != nil {
				rerr = err
				break
			}
			b.total++
			if rec.Reason != "" {
				b.rejected = append(b.rejected, rec)
			} else {
				b.add(rec.Line, rec.Row)
			}
			if b.total >= limit.Load() || time.Since(b.started) >= importBatchEvery {
				break
			}
		}
		rb := readBatch{batch: b, records: rd.Records(), progress: int32(min(99, src.n.Load()*100/max(size, 1)))}
		var fe *importer.FileError
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF):
			rb.eof, rb.progress = true, 100
		case errors.As(rerr, &fe):
			// Report where, keep what came before.
			b.total++
			b.rejected = append(b.rejected, importer.Record{Line: fe.Line, Reason: fe.Reason})
			rb.fileErr = fe
		default:
			rb = readBatch{err: rerr}
		}
		select {
		case out <- rb:
		case <-ctx.Done():
			return
		}
		if rerr != nil {
			return
		}
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// keyHash is the pseudonym of a row's identity (dry runs remember these,
// never the values).
func (h *ImportContacts) keyHash(key string) []byte {
	if h.Pseudonyms != nil {
		return h.Pseudonyms.Address("import", key)
	}
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}

// importRowColumns are what a batch stages. Its batch number is the
// resume point it moves to (records): unique among the import's batches.
var importRowColumns = []string{"tenant_id", "import_id", "batch", "line", "key_hash", "external_id",
	"new_external_id", "name", "phone", "email", "email_key", "address", "property_type", "closing_date", "notes"}

// newExternalID is the external_id a row's new contact gets: its own, or
// "import-" and a UUID derived from the import and the key (a keyed
// hash: the ID does not give the phone or email away), by which the
// import's later batches find the contact again.
func (h *ImportContacts) newExternalID(importID uuid.UUID, s stagedRow) string {
	if s.row.ExternalID != nil {
		return *s.row.ExternalID
	}
	var id uuid.UUID
	copy(id[:], h.keyHash(importID.String()+"|"+s.key))
	id[6] = id[6]&0x0f | 0x80 // version 8: custom
	id[8] = id[8]&0x3f | 0x80 // RFC 9562 variant
	return "import-" + id.String()
}

// commitBatch writes one batch and moves the import forward, in one
// transaction.
func (h *ImportContacts) commitBatch(ctx context.Context, imp db.Import, attempt int32, b *importBatch,
	records int64, progress int32) (db.Import, error) {
	for try := 1; ; try++ {
		out, err := h.commitBatchOnce(ctx, imp, attempt, b, records, progress)
		// A contact someone else created while the batch merged (the same
		// external_id) fails its insert instead of losing the row; merged
		// again, the row finds and updates it.
		if try < importMergeTries && db.IsUniqueViolation(err) {
			h.Logger.InfoContext(ctx, "a contact of the batch was created meanwhile; merging the batch again")
			continue
		}
		return out, err
	}
}

func (h *ImportContacts) commitBatchOnce(ctx context.Context, imp db.Import, attempt int32, b *importBatch,
	records int64, progress int32) (db.Import, error) {
	var out db.Import
	err := h.Store.InTenantTx(ctx, imp.TenantID, pgx.TxOptions{}, func(tx pgx.Tx) error {
		q := db.New(tx)
		// Match staged rows through the contacts indexes whatever the
		// statistics say: a first big import grows contacts faster than
		// autovacuum re-analyzes it, and a plan made for a "small" table
		// (a scan of contacts per staged row) would make each batch
		// quadratic.
		if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
			return err
		}
		var created, updated, dups int64
		if len(b.rows) > 0 {
			rows := make([][]any, len(b.rows))
			for i, s := range b.rows {
				var date pgtype.Date
				if s.row.ClosingDate != nil {
					date = pgtype.Date{Time: *s.row.ClosingDate, Valid: true}
				}
				// Only a dry run needs the key's hash (import_seen).
				key := []byte{}
				if imp.DryRun {
					key = h.keyHash(s.key)
				}
				var emailKey *string
				if s.row.Email != nil {
					k := strings.ToLower(*s.row.Email)
					emailKey = &k
				}
				rows[i] = []any{imp.TenantID, imp.ID, records, s.line, key, s.row.ExternalID, h.newExternalID(imp.ID, s),
					s.row.Name, s.row.Phone, s.row.Email, emailKey, s.row.Address, s.row.PropertyType, date, s.row.Notes}
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"import_rows"}, importRowColumns, pgx.CopyFromRows(rows)); err != nil {
				return fmt.Errorf("stage batch: %w", err)
			}
			if h.BeforeMerge != nil {
				h.BeforeMerge()
			}
			if imp.DryRun {
				r, err := q.ImportDryRunBatch(ctx, db.ImportDryRunBatchParams{TenantID: imp.TenantID, ImportID: imp.ID,
					Batch: records})
				if err != nil {
					return fmt.Errorf("count batch: %w", err)
				}
				created, updated, dups = r.Created, r.Updated, r.Duplicates
			} else {
				r, err := q.ImportMergeBatch(ctx, db.ImportMergeBatchParams{TenantID: imp.TenantID, ImportID: imp.ID,
					Batch: records, Now: h.Clock.Now()})
				if err != nil {
					return fmt.Errorf("merge batch: %w", err)
				}
				created, updated, dups = r.Created, r.Updated, r.Duplicates
			}
		}
		if len(b.rejected) > 0 {
			p := db.ImportErrorsAddParams{ImportID: imp.ID, TenantID: imp.TenantID}
			for _, r := range b.rejected {
				raw, _ := json.Marshal(storable(r.Raw))
				p.Lines, p.Reasons, p.Raws = append(p.Lines, r.Line), append(p.Reasons, r.Reason), append(p.Raws, raw)
			}
			if err := q.ImportErrorsAdd(ctx, p); err != nil {
				return fmt.Errorf("record rejected rows: %w", err)
			}
		}
		n, err := q.ImportCommitBatch(ctx, db.ImportCommitBatchParams{TenantID: imp.TenantID, ID: imp.ID, Attempt: attempt,
			Rows: b.total, Created: created, Updated: updated, Rejected: int64(len(b.rejected)),
			Duplicates: dups + b.dups, RecordsDone: records, LineDone: lastLine(b), Progress: progress,
			Now: h.Clock.Now()})
		if err != nil {
			return fmt.Errorf("record batch: %w", err)
		}
		if n == 0 {
			return errImportStopped
		}
		out, err = q.ImportGet(ctx, db.ImportGetParams{TenantID: imp.TenantID, ID: imp.ID})
		return err
	})
	return out, err
}

func lastLine(b *importBatch) int64 {
	var l int64
	for _, r := range b.rows {
		l = max(l, r.line)
	}
	for _, r := range b.rejected {
		l = max(l, r.Line)
	}
	return l
}

// storable makes cells safe for a jsonb column: valid UTF-8, no NUL.
func storable(raw []string) []string {
	out := make([]string, len(raw))
	for i, c := range raw {
		out[i] = strings.ReplaceAll(strings.ToValidUTF8(c, "\uFFFD"), "\x00", "")
	}
	return out
}

func writeImportResult(t *asynq.Task, r ImportResult) {
	if w := t.ResultWriter(); w != nil {
		out, _ := json.Marshal(r)
		w.Write(out) //nolint:errcheck // the result is informational
	}
}

func (h *ImportContacts) succeed(ctx context.Context, imp db.Import, attempt int32) error {
	now := h.Clock.Now()
	var done db.Import
	err := h.Store.InTenant(ctx, imp.TenantID, func(q *db.Queries) (err error) {
		done, err = q.ImportMarkSucceeded(ctx, db.ImportMarkSucceededParams{TenantID: imp.TenantID, ID: imp.ID,
			Attempt: attempt, FilesExpireAt: now.Add(h.filesTTL()), Now: now})
		if db.IsNotFound(err) {
			return errImportStopped
		}
		if err != nil {
			return err
		}
		return q.ImportStagingClear(ctx, db.ImportStagingClearParams{TenantID: imp.TenantID, ImportID: imp.ID})
	})
	if errors.Is(err, errImportStopped) {
		return h.stopped(ctx, imp)
	}
	if err != nil {
		return h.retryLater(ctx, imp, attempt, err)
	}
	h.Logger.InfoContext(ctx, "import finished", "rows_total", done.RowsTotal, "rows_created", done.RowsCreated,
		"rows_updated", done.RowsUpdated, "rows_rejected", done.RowsRejected, "rows_duplicates", done.RowsDuplicates)
	return nil
}

func (h *ImportContacts) filesTTL() time.Duration {
	if h.FilesTTL > 0 {
		return h.FilesTTL
	}
	return DefaultImportFilesTTL
}

// stopped ends an attempt that found the import cancelled (or another
// attempt holding it): what it staged is cleared, nothing else to do.
func (h *ImportContacts) stopped(ctx context.Context, imp db.Import) error {
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), importBookkeeping)
	defer cancel()
	var status string
	err := h.Store.InTenant(bg, imp.TenantID, func(q *db.Queries) error {
		cur, err := q.ImportGet(bg, db.ImportGetParams{TenantID: imp.TenantID, ID: imp.ID})
		if err != nil {
			return err
		}
		status = cur.Status
		if status == "cancelled" {
			return q.ImportStagingClear(bg, db.ImportStagingClearParams{TenantID: imp.TenantID, ImportID: imp.ID})
		}
		return nil
	})
	if err != nil && !db.IsNotFound(err) {
		h.Logger.WarnContext(ctx, "could not tidy a stopped import", "err", err)
	}
	h.Logger.InfoContext(ctx, "import attempt stopped", "status", status)
	return nil
}

// readFailed classifies a failure to read the stored file.
func (h *ImportContacts) readFailed(ctx context.Context, imp db.Import, attempt int32, err error) error {
	var fe *importer.FileError
	if errors.As(err, &fe) {
		return h.fail(ctx, imp, fe.Error(), Permanent(fe))
	}
	if errors.Is(err, filestore.ErrCorrupt) {
		return h.fail(ctx, imp, "the stored upload is damaged; upload the file again", Permanent(err))
	}
	return h.retryLater(ctx, imp, attempt, err)
}

// retryLater records a transient failure and tells asynq when to try
// again; the counts and resume point stay.
func (h *ImportContacts) retryLater(ctx context.Context, imp db.Import, attempt int32, cause error) error {
	delay := h.Retry.Delay(int(attempt))
	reason := importReason(cause) + "; retrying"
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), importBookkeeping)
	defer cancel()
	now := h.Clock.Now()
	err := h.Store.InTenant(bg, imp.TenantID, func(q *db.Queries) error {
		return q.ImportRetryLater(bg, db.ImportRetryLaterParams{TenantID: imp.TenantID, ID: imp.ID, Attempt: attempt,
			DueAt: now.Add(delay), Error: &reason, Now: now})
	})
	if err != nil {
		h.Logger.ErrorContext(ctx, "could not record import retry", "err", err)
	}
	h.Logger.WarnContext(ctx, "import attempt failed; will resume", "attempt", attempt, "reason", reason, "err", cause)
	return Retry(fmt.Errorf("import attempt %d: %w", attempt, cause), delay)
}

func importReason(err error) string {
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "interrupted (the worker stopped or the attempt timed out)"
	case errors.As(err, &pgErr):
		return "database error " + pgErr.Code
	}
	return "temporary failure"
}

// fail ends the import with a reason a person can read.
func (h *ImportContacts) fail(ctx context.Context, imp db.Import, reason string, ret error) error {
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), importBookkeeping)
	defer cancel()
	now := h.Clock.Now()
	err := h.Store.InTenant(bg, imp.TenantID, func(q *db.Queries) error {
		_, err := q.ImportFail(bg, db.ImportFailParams{TenantID: imp.TenantID, ID: imp.ID, Error: &reason,
			FilesExpireAt: now.Add(h.filesTTL()), Now: now})
		if db.IsNotFound(err) {
			return nil // already finished
		}
		if err != nil {
			return err
		}
		return q.ImportStagingClear(bg, db.ImportStagingClearParams{TenantID: imp.TenantID, ImportID: imp.ID})
	})
	if err != nil {
		return Retry(fmt.Errorf("record failed import: %w", err), h.Retry.Delay(1))
	}
	h.Logger.WarnContext(ctx, "import failed", "reason", reason)
	return ret
}

// GiveUp marks the import failed when asynq stops retrying it.
func (h *ImportContacts) GiveUp(ctx context.Context, payload []byte, cause error) error {
	var p ImportContactsPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil
	}
	reason := "gave up after repeated failures; the last: " + importReason(cause)
	return h.fail(ctx, db.Import{TenantID: p.TenantID, ID: p.ImportID}, reason, nil)
}

// Imports is the imports table as the dispatcher sees it.
type Imports struct{}

// Name implements Dispatchable.
func (Imports) Name() string { return "import" }

// Job implements Dispatchable.
func (Imports) Job(ref Ref) (Job, error) { return NewImportContactsJob(ref.TenantID, ref.ID), nil }

// Undispatched implements Dispatchable.
func (Imports) Undispatched(ctx context.Context, q *db.Queries, until time.Time, limit int32) ([]Ref, error) {
	rows, err := q.ImportListUndispatched(ctx, db.ImportListUndispatchedParams{Until: until, MaxRows: limit})
	return Refs(rows, err, func(r db.ImportListUndispatchedRow) Ref {
		return Ref{TenantID: r.TenantID, ID: r.ID, DueAt: r.DueAt}
	})
}

// Stalled implements Dispatchable.
func (Imports) Stalled(ctx context.Context, q *db.Queries, now time.Time, limit int32) ([]Ref, error) {
	rows, err := q.ImportListStalled(ctx, db.ImportListStalledParams{OverdueBefore: now.Add(-stallGrace),
		CheckedBefore: now.Add(-stallRecheck), StaleBefore: now.Add(-importStale), MaxRows: limit})
	return Refs(rows, err, func(r db.ImportListStalledRow) Ref {
		return Ref{TenantID: r.TenantID, ID: r.ID, DueAt: r.DueAt}
	})
}

// MarkEnqueued implements Dispatchable.
func (Imports) MarkEnqueued(ctx context.Context, q *db.Queries, ids []uuid.UUID, now time.Time) error {
	return q.ImportMarkEnqueued(ctx, db.ImportMarkEnqueuedParams{Ids: ids, Now: now})
}

// ForgetEnqueued implements Dispatchable.
func (Imports) ForgetEnqueued(ctx context.Context, q *db.Queries) (int64, error) {
	return q.ImportForgetEnqueued(ctx)
}

// NewImport is an import to create; its file is already in the store.
type NewImport struct {
	ID         uuid.UUID
	TenantID   uuid.UUID
	DryRun     bool
	FileKey    string
	FileBytes  int64
	FileSHA256 string
	Mapping    json.RawMessage
}

// InsertImport writes an import row inside the caller's transaction,
// marked enqueued; the caller hands it to EnqueueImport after commit.
func (d *Dispatcher) InsertImport(ctx context.Context, q *db.Queries, i NewImport) (db.Import, error) {
	now := d.Clock.Now()
	mapping := i.Mapping
	if len(mapping) == 0 {
		mapping = json.RawMessage("{}")
	}
	return q.ImportCreate(ctx, db.ImportCreateParams{ID: i.ID, TenantID: i.TenantID, DryRun: i.DryRun,
		FileKey: &i.FileKey, FileBytes: i.FileBytes, FileSha256: i.FileSHA256, Mapping: mapping, Now: now,
		EnqueuedAt: &now})
}

// EnqueueImport puts a freshly committed import into Redis; when Redis
// refuses, the due-scan picks it up.
func (d *Dispatcher) EnqueueImport(ctx context.Context, i db.Import) {
	if err := d.Enqueue(ctx, Imports{}, Ref{TenantID: i.TenantID, ID: i.ID, DueAt: i.DueAt}); err != nil {
		d.Logger.WarnContext(ctx, "enqueue deferred to the due-scan", "import_id", i.ID, "err", err)
		uerr := d.Store.InTenant(ctx, i.TenantID, func(q *db.Queries) error {
			return q.ImportUnmarkEnqueued(ctx, db.ImportUnmarkEnqueuedParams{TenantID: i.TenantID, ID: i.ID})
		})
		if uerr != nil {
			d.Logger.ErrorContext(ctx, "could not unmark import; the stalled scan will recover it", "import_id", i.ID, "err", uerr)
		}
	}
}
