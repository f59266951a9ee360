package intake

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/downloadlink"
	"github.com/errandhq/errand/internal/fault"
	"github.com/errandhq/errand/internal/filestore"
	"github.com/errandhq/errand/jobs"
)

// Exports. An export is a job row (queued → running → succeeded →
// expired, or failed; db/migrations/0040_exports.sql); the worker streams
// the archive into the file store (jobs/export_run.go). GET answers with a
// download link signed for 15 minutes, issued afresh on every GET; the
// link works without an API key and serves the zip.

type exportRequest struct {
	Scope     string  `json:"scope"`
	ContactID *string `json:"contact_id"`
	Format    string  `json:"format"`
}

type exportJSON struct {
	ID               string     `json:"id"`
	Status           string     `json:"status"`
	Scope            string     `json:"scope"`
	ContactID        *string    `json:"contact_id"`
	Format           string     `json:"format"`
	Progress         int32      `json:"progress"`
	RowsDone         int64      `json:"rows_done"`
	RowsTotal        int64      `json:"rows_total"`
	Bytes            *int64     `json:"bytes"`
	SHA256           *string    `json:"sha256"`
	DownloadURL      *string    `json:"download_url"`
	ExpiresAt        *time.Time `json:"expires_at"`
	FileExpiresAt    *time.Time `json:"file_expires_at"`
	PrivacyRequestID *string    `json:"privacy_request_id"`
	Error            *string    `json:"error"`
	CreatedAt        time.Time  `json:"created_at"`
	FinishedAt       *time.Time `json:"finished_at"`
}

// exportView shows an export; a finished one gets a fresh signed link.
func (s *Server) exportView(e db.Export, contactExternalID *string) exportJSON {
	out := exportJSON{ID: e.ID.String(), Status: e.Status, Scope: e.Scope, ContactID: contactExternalID,
		Format: e.Format, Progress: jobs.ExportPercent(e.RowsDone, e.RowsTotal), RowsDone: e.RowsDone,
		RowsTotal: e.RowsTotal, Bytes: e.Bytes, SHA256: e.Sha256, FileExpiresAt: e.FileExpiresAt,
		Error: e.Error, CreatedAt: e.CreatedAt, FinishedAt: e.FinishedAt}
	if e.PrivacyRequestID != nil {
		id := e.PrivacyRequestID.String()
		out.PrivacyRequestID = &id
	}
	switch e.Status {
	case "succeeded":
		out.Progress = 100
		if s.links != nil {
			q, exp := s.links.Sign("export", e.TenantID, e.ID)
			link := s.PublicURL + "/v1/exports/" + e.ID.String() + "/download?" + q.Encode()
			out.DownloadURL, out.ExpiresAt = &link, &exp
		}
	case "expired":
		out.Progress = 100
	}
	return out
}

func (s *Server) handleExportCreate(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	req, err := decode[exportRequest](r)
	if err != nil {
		return err
	}
	problems := map[string]string{}
	switch req.Scope {
	case "tenant":
		if req.ContactID != nil {
			problems["contact_id"] = `only for scope "contact"`
		}
	case "contact":
		if req.ContactID == nil || *req.ContactID == "" {
			problems["contact_id"] = `required for scope "contact"`
		}
	default:
		problems["scope"] = `must be "tenant" or "contact"`
	}
	if req.Format != "csv" && req.Format != "json" {
		problems["format"] = `must be "csv" or "json"`
	}
	if len(problems) > 0 {
		return fault.Fields(problems)
	}
	var contactID *uuid.UUID
	if req.Scope == "contact" {
		c, err := s.contactByExternalID(r, p, *req.ContactID)
		if err != nil {
			return noSuchContact(err)
		}
		contactID = &c.ID
	}
	var exp db.Export
	err = s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) error {
		// A soft limit (two requests racing may both pass): exports are
		// heavy, and one finished is enough to download many times.
		active, err := q.ExportCountActive(r.Context(), p.TenantID)
		if err != nil {
			return err
		}
		if active >= jobs.MaxActiveExports {
			return &fault.Error{Code: fault.Conflict, Subcode: "too_many_exports", RetryAfter: 60,
				Message: "this account already has " + strconv.Itoa(jobs.MaxActiveExports) + " exports in progress; wait for one to finish"}
		}
		exp, err = s.Dispatcher.InsertExport(r.Context(), q, jobs.NewExport{TenantID: p.TenantID, Scope: req.Scope,
			ContactID: contactID, Format: req.Format})
		return err
	})
	if err != nil {
		return err
	}
	s.Dispatcher.EnqueueExport(r.Context(), exp)
	encode(w, http.StatusAccepted, s.exportView(exp, req.ContactID))
	return nil
}

// noSuchContact names the contact_id field when the contact is unknown.
func noSuchContact(err error) error {
	if f, ok := fault.As(err); ok && f.Code == fault.NotFound {
		return &fault.Error{Code: fault.NotFound, Message: "no contact with this contact_id",
			Details: map[string]string{"contact_id": "no such contact"}}
	}
	return err
}

var errNoExport = fault.New(fault.NotFound, "no export with this id")

func (s *Server) handleExportGet(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return errNoExport
	}
	var e db.Export
	var ext *string
	err = s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) (err error) {
		e, err = q.ExportGet(r.Context(), db.ExportGetParams{TenantID: p.TenantID, ID: id})
		if err != nil {
			return err
		}
		ext, err = contactExternalID(r.Context(), q, p.TenantID, e.ContactID)
		return err
	})
	if db.IsNotFound(err) {
		return errNoExport
	}
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store") // the body holds a live link
	encode(w, http.StatusOK, s.exportView(e, ext))
	return nil
}

var (
	errLinkInvalid = &fault.Error{Code: fault.Forbidden, Subcode: "download_link_invalid",
		Message: "this download link is not valid; GET the export again for a fresh one"}
	errLinkExpired = &fault.Error{Code: fault.Forbidden, Subcode: "download_link_expired",
		Message: "this download link has expired; GET the export again for a fresh one"}
	errExportGone = fault.New(fault.NotFound, "this export's file is no longer available")
)

// exportDownloaded is the security-log kind of a download.
const exportDownloaded = "export_downloaded"

// handleExportDownload serves an export's zip to whoever holds a valid
// link: no API key, only the signature, checked before anything is read.
func (s *Server) handleExportDownload(w http.ResponseWriter, r *http.Request) error {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil || s.links == nil {
		return errLinkInvalid
	}
	tenantID, err := s.links.Verify("export", id, r.URL.Query())
	switch {
	case errors.Is(err, downloadlink.ErrExpired):
		return errLinkExpired
	case err != nil:
		return errLinkInvalid
	}
	var e db.Export
	err = s.Store.InTenant(r.Context(), tenantID, func(q *db.Queries) (err error) {
		e, err = q.ExportGet(r.Context(), db.ExportGetParams{TenantID: tenantID, ID: id})
		return err
	})
	if db.IsNotFound(err) {
		return errExportGone // deleted with its tenant
	}
	if err != nil {
		return err
	}
	if e.Status != "succeeded" || e.FileKey == nil || e.Bytes == nil || s.Files == nil {
		return errExportGone
	}
	rc, err := s.Files.Open(r.Context(), *e.FileKey)
	if errors.Is(err, filestore.ErrNotFound) {
		return errExportGone
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	ev := s.actor(r, "download_link")
	ev.Kind, ev.TenantID, ev.Detail = exportDownloaded, &tenantID, map[string]any{"export_id": id.String()}
	s.SecLog.Record(r.Context(), ev)

	h := w.Header()
	h.Set("Content-Type", "application/zip")
	h.Set("Content-Length", strconv.FormatInt(*e.Bytes, 10))
	h.Set("Content-Disposition", `attachment; filename="errand-export-`+e.ID.String()+`.zip"`)
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if e.Sha256 != nil {
		h.Set("ETag", `"`+*e.Sha256+`"`)
	}
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil {
		// The headers are out. The response stops short of its
		// Content-Length, so no client takes it for a complete file.
		s.logger.ErrorContext(r.Context(), "export download cut short", "export_id", id, "err", err)
	}
	return nil
}

// handleExportList pages through the tenant's exports, newest first; a
// succeeded one carries a fresh download link, as its GET does.
func (s *Server) handleExportList(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Cache-Control", "no-store") // the body holds live links
	return list(s, w, r, "exports", newestFirst,
		func(ctx context.Context, q *db.Queries, tenant uuid.UUID, pg page) ([]db.ExportListRow, error) {
			return q.ExportList(ctx, db.ExportListParams{TenantID: tenant, BeforeAt: pg.At, BeforeID: pg.ID, MaxRows: pg.fetch()})
		},
		func(x db.ExportListRow) (time.Time, uuid.UUID) { return x.Export.CreatedAt, x.Export.ID },
		func(x db.ExportListRow) exportJSON { return s.exportView(x.Export, x.ContactExternalID) })
}
