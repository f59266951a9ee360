package intake

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/export"
	"github.com/errandhq/errand/internal/fault"
	"github.com/errandhq/errand/internal/filestore"
	"github.com/errandhq/errand/internal/importer"
	"github.com/errandhq/errand/jobs"
)

// Imports of client lists (issue 5). The upload, a text/csv body or the
// multipart part "file", is streamed into the encrypted file store (never
// held in memory, at most ImportMaxBytes, 413 above); an import row is
// written and its task (import:contacts) reads the file back, in batches
// (jobs/import_contacts.go; states in db/migrations/0060_imports.sql).
// GET shows the counts and progress; /errors serves the rejected rows as a
// formula-safe CSV; DELETE cancels between batches.

// DefaultImportMaxBytes bounds an upload unless ERRAND_IMPORT_MAX_BYTES
// says otherwise.
const DefaultImportMaxBytes = 100 << 20

func (s *Server) importMaxBytes() int64 {
	if s.ImportMaxBytes > 0 {
		return s.ImportMaxBytes
	}
	return DefaultImportMaxBytes
}

func (s *Server) importBodyLimit() int64 { return s.importMaxBytes() + formOverhead }

type importJSON struct {
	ID             string     `json:"id"`
	Status         string     `json:"status"`
	DryRun         bool       `json:"dry_run"`
	Progress       int32      `json:"progress"`
	RowsTotal      int64      `json:"rows_total"`
	RowsCreated    int64      `json:"rows_created"`
	RowsUpdated    int64      `json:"rows_updated"`
	RowsRejected   int64      `json:"rows_rejected"`
	RowsDuplicates int64      `json:"rows_duplicates"`
	UnknownColumns []string   `json:"unknown_columns"`
	Encoding       string     `json:"encoding,omitempty"`
	Delimiter      string     `json:"delimiter,omitempty"`
	FileBytes      int64      `json:"file_bytes"`
	FileSHA256     string     `json:"file_sha256"`
	Error          *string    `json:"error"`
	ErrorsURL      string     `json:"errors_url"`
	CreatedAt      time.Time  `json:"created_at"`
	FinishedAt     *time.Time `json:"finished_at"`
}

func importView(i db.Import) importJSON {
	return importJSON{ID: i.ID.String(), Status: i.Status, DryRun: i.DryRun, Progress: i.Progress,
		RowsTotal: i.RowsTotal, RowsCreated: i.RowsCreated, RowsUpdated: i.RowsUpdated, RowsRejected: i.RowsRejected,
		RowsDuplicates: i.RowsDuplicates, UnknownColumns: i.UnknownColumns, Encoding: i.Encoding,
		Delimiter: i.Delimiter, FileBytes: i.FileBytes, FileSHA256: i.FileSha256, Error: i.Error,
		ErrorsURL: "/v1/imports/" + i.ID.String() + "/errors", CreatedAt: i.CreatedAt, FinishedAt: i.FinishedAt}
}

// csvTypes are the media types a bare-body upload may declare.
var csvTypes = map[string]bool{"text/csv": true, "text/plain": true, "application/csv": true,
	"text/tab-separated-values": true, "application/vnd.ms-excel": true, "application/octet-stream": true}

func (s *Server) handleImportCreate(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	if s.Files == nil {
		return fault.New(fault.Unavailable, "file storage is not configured")
	}
	opts := map[string]string{"dry_run": r.URL.Query().Get("dry_run"), "mapping": r.URL.Query().Get("mapping")}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "multipart/form-data" && !csvTypes[mt]) {
		return fault.New(fault.UnsupportedType, "send the file as a text/csv body, or as the part \"file\" of multipart/form-data")
	}
	id := uuid.New()
	key := fmt.Sprintf(jobs.ImportFileKey, p.TenantID, id)
	var stored *filestore.Info
	committed := false
	defer func() {
		if stored != nil && !committed {
			if err := s.Files.Delete(context.WithoutCancel(r.Context()), key); err != nil {
				s.logger.ErrorContext(r.Context(), "could not delete a refused import upload", "import_id", id, "err", err)
			}
		}
	}()
	if mt == "multipart/form-data" {
		mr, err := r.MultipartReader()
		if err != nil {
			return fault.New(fault.Malformed, "the multipart body cannot be read")
		}
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return uploadReadFault(err, s.importBodyLimit())
			}
			switch name := part.FormName(); name {
			case "file":
				if stored != nil {
					return fault.Fields(map[string]string{"file": "send one file"})
				}
				if stored, err = s.storeImport(r.Context(), key, part); err != nil {
					return err
				}
			case "dry_run", "mapping":
				b, err := io.ReadAll(io.LimitReader(part, maxFieldBytes*8+1))
				if err != nil {
					return uploadReadFault(err, s.importBodyLimit())
				}
				if len(b) > maxFieldBytes*8 {
					return fault.Fields(map[string]string{name: "too long"})
				}
				if opts[name] == "" {
					opts[name] = string(b)
				}
			default:
				return fault.Fields(map[string]string{name: "unknown field (expected file, dry_run, mapping)"})
			}
		}
		if stored == nil {
			return fault.Fields(map[string]string{"file": "required: the CSV file"})
		}
	} else if stored, err = s.storeImport(r.Context(), key, r.Body); err != nil {
		return err
	}

	dryRun, mapping, err := importOptions(opts)
	if err != nil {
		return err
	}
	var imp db.Import
	err = s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) (err error) {
		imp, err = s.Dispatcher.InsertImport(r.Context(), q, jobs.NewImport{ID: id, TenantID: p.TenantID, DryRun: dryRun,
			FileKey: key, FileBytes: stored.Size, FileSHA256: stored.SHA256, Mapping: mapping})
		return err
	})
	if err != nil {
		return err
	}
	committed = true
	s.Dispatcher.EnqueueImport(r.Context(), imp)
	encode(w, http.StatusAccepted, importView(imp))
	return nil
}

// importOptions validates dry_run and mapping (a JSON object of field →
// header name).
func importOptions(opts map[string]string) (bool, json.RawMessage, error) {
	problems := map[string]string{}
	dryRun := false
	if v := strings.TrimSpace(opts["dry_run"]); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			problems["dry_run"] = "must be true or false"
		}
		dryRun = b
	}
	var raw json.RawMessage
	if v := strings.TrimSpace(opts["mapping"]); v != "" {
		var m map[string]string
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			problems["mapping"] = `must be a JSON object of field to column header, e.g. {"phone": "Cell #"}`
		} else {
			var bad []string
			for f, h := range m {
				known := false
				for _, k := range importer.Fields {
					known = known || string(k) == f
				}
				if !known || strings.TrimSpace(h) == "" {
					bad = append(bad, f)
				}
			}
			sort.Strings(bad)
			if len(bad) > 0 {
				problems["mapping"] = "unknown fields or empty headers: " + strings.Join(bad, ", ") +
					" (fields: external_id, name, first_name, last_name, phone, email, address, property_type, closing_date, notes)"
			}
			raw, _ = json.Marshal(m)
		}
	}
	if len(problems) > 0 {
		return false, nil, fault.Fields(problems)
	}
	return dryRun, raw, nil
}

// storeImport streams an upload into the file store, at most
// importMaxBytes.
func (s *Server) storeImport(ctx context.Context, key string, body io.Reader) (*filestore.Info, error) {
	limit := s.importMaxBytes()
	fw, err := s.Files.Create(ctx, key)
	if err != nil {
		return nil, err
	}
	n, err := io.Copy(fw, io.LimitReader(body, limit+1))
	if err == nil && n > limit {
		err = &http.MaxBytesError{Limit: limit}
	}
	if err == nil && n == 0 {
		fw.Abort() //nolint:errcheck // nothing was committed
		return nil, fault.Fields(map[string]string{"file": "the file is empty"})
	}
	if err != nil {
		fw.Abort() //nolint:errcheck // nothing was committed
		if tooLarge(err) {
			return nil, fault.New(fault.TooLarge, "the file is larger than the %d bytes allowed", limit)
		}
		return nil, fault.New(fault.Malformed, "the upload was cut short")
	}
	info, err := fw.Commit()
	if err != nil {
		return nil, err
	}
	return &info, nil
}

var errNoImport = fault.New(fault.NotFound, "no import with this id")

func (s *Server) importByID(r *http.Request) (db.Import, error) {
	p := tenantOf(r.Context())
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return db.Import{}, errNoImport
	}
	var imp db.Import
	err = s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) (err error) {
		imp, err = q.ImportGet(r.Context(), db.ImportGetParams{TenantID: p.TenantID, ID: id})
		return err
	})
	if db.IsNotFound(err) {
		return imp, errNoImport
	}
	return imp, err
}

func (s *Server) handleImportGet(w http.ResponseWriter, r *http.Request) error {
	imp, err := s.importByID(r)
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, importView(imp))
	return nil
}

func (s *Server) handleImportCancel(w http.ResponseWriter, r *http.Request) error {
	imp, err := s.importByID(r)
	if err != nil {
		return err
	}
	now := s.Clock.Now()
	var cancelled db.Import
	err = s.Store.InTenant(r.Context(), imp.TenantID, func(q *db.Queries) (err error) {
		cancelled, err = q.ImportCancel(r.Context(), db.ImportCancelParams{TenantID: imp.TenantID, ID: imp.ID,
			FilesExpireAt: now.Add(jobs.DefaultImportFilesTTL), Now: now})
		return err
	})
	if db.IsNotFound(err) {
		return &fault.Error{Code: fault.Conflict, Subcode: "import_not_cancellable",
			Message: "this import has already finished (" + imp.Status + ")"}
	}
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, importView(cancelled))
	return nil
}

// errorsPage is how many rejected rows one query reads.
const errorsPage = 1000

// handleImportErrors streams the rejected rows: line, reason, then the
// cells as uploaded under the file's own header, through the formula
// guard (no cell opens as a formula in a spreadsheet).
func (s *Server) handleImportErrors(w http.ResponseWriter, r *http.Request) error {
	imp, err := s.importByID(r)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="import-`+imp.ID.String()+`-errors.csv"`)
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	guard := export.NewFormulaGuard(w)
	cw := csv.NewWriter(guard)
	cw.Write(append([]string{"line", "reason"}, imp.Header...)) //nolint:errcheck // checked by Error below
	after := int64(0)
	for {
		var page []db.ImportErrorsPageRow
		err := s.Store.InTenant(r.Context(), imp.TenantID, func(q *db.Queries) (err error) {
			page, err = q.ImportErrorsPage(r.Context(), db.ImportErrorsPageParams{TenantID: imp.TenantID,
				ImportID: imp.ID, AfterLine: after, MaxRows: errorsPage})
			return err
		})
		if err != nil {
			s.logger.ErrorContext(r.Context(), "import errors cut short", "import_id", imp.ID, "err", err)
			return nil // the headers are out
		}
		for _, e := range page {
			var raw []string
			json.Unmarshal(e.Raw, &raw) //nolint:errcheck // written by the job as an array of strings
			row := make([]string, 0, 2+max(len(raw), len(imp.Header)))
			row = append(row, strconv.FormatInt(e.Line, 10), e.Reason)
			row = append(row, raw...)
			for len(row) < 2+len(imp.Header) {
				row = append(row, "")
			}
			cw.Write(row) //nolint:errcheck // checked by Error below
			after = e.Line
		}
		cw.Flush()
		if cw.Error() != nil || len(page) < errorsPage {
			break
		}
	}
	cw.Flush()
	guard.Close() //nolint:errcheck // the response is out
	return nil
}

// handleImportList pages through the tenant's imports, newest first.
func (s *Server) handleImportList(w http.ResponseWriter, r *http.Request) error {
	return list(s, w, r, "imports", newestFirst,
		func(ctx context.Context, q *db.Queries, tenant uuid.UUID, pg page) ([]db.Import, error) {
			return q.ImportList(ctx, db.ImportListParams{TenantID: tenant, BeforeAt: pg.At, BeforeID: pg.ID, MaxRows: pg.fetch()})
		},
		func(x db.Import) (time.Time, uuid.UUID) { return x.CreatedAt, x.ID }, importView)
}
