package intake

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/credential"
	"github.com/errandhq/errand/internal/fault"
	"github.com/errandhq/errand/internal/filestore"
	"github.com/errandhq/errand/internal/seclog"
)

// The ops review queue. Admin-only and across tenants: reading a queue
// that spans every tenant is the one place the intake scans as the system
// (db.Store.AsSystem); every write goes back inside the credential's own
// tenant. Each decision is recorded in credential_reviews (who, when,
// what, the note) and in the security log, and so is every view of a
// document.

type adminCredentialJSON struct {
	credentialJSON
	TenantID   string `json:"tenant_id"`
	TenantName string `json:"tenant_name"`
	// NumberFull is the number as uploaded: reviewers compare it with the
	// document.
	NumberFull  string       `json:"number_full"`
	Error       *string      `json:"error"`
	DocumentURL string       `json:"document_url"`
	Reviews     []reviewJSON `json:"reviews,omitempty"`
}

type reviewJSON struct {
	ID         int64     `json:"id,string"` // IDs are opaque strings (API.md)
	Actor      string    `json:"actor"`
	Reviewer   string    `json:"reviewer"`
	Decision   string    `json:"decision"`
	Note       string    `json:"note"`
	FromStatus string    `json:"from_status"`
	ToStatus   string    `json:"to_status"`
	RemoteAddr string    `json:"remote_addr"`
	RequestID  string    `json:"request_id"`
	CreatedAt  time.Time `json:"created_at"`
}

func adminCredentialView(c db.Credential, proExternalID, tenantName string) adminCredentialJSON {
	return adminCredentialJSON{credentialJSON: credentialView(c, proExternalID), TenantID: c.TenantID.String(),
		TenantName: tenantName, NumberFull: c.Number, Error: c.Error,
		DocumentURL: "/admin/v1/credentials/" + c.ID.String() + "/document"}
}

var credentialStatuses = map[string]bool{credential.StatusPending: true, credential.StatusVerified: true,
	credential.StatusNeedsReview: true, credential.StatusRejected: true, credential.StatusExpired: true}

// handleCredentialReviewQueue lists credentials by status (needs_review
// unless ?status= says otherwise), oldest first; ?tenant_id= narrows it
// to one tenant and ?limit= (at most 500, default 100) bounds it.
func (s *Server) handleCredentialReviewQueue(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	params := db.CredentialListForReviewParams{Status: credential.StatusNeedsReview, MaxRows: 100}
	problems := map[string]string{}
	if v := q.Get("status"); v != "" {
		if !credentialStatuses[v] {
			problems["status"] = "one of pending, verified, needs_review, rejected, expired"
		}
		params.Status = v
	}
	if v := q.Get("tenant_id"); v != "" {
		id, err := uuid.Parse(v)
		if err != nil {
			problems["tenant_id"] = "must be a tenant id"
		}
		params.TenantID = &id
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			problems["limit"] = "a number from 1 to 500"
		}
		params.MaxRows = int32(n)
	}
	if len(problems) > 0 {
		return fault.Fields(problems)
	}
	var rows []db.CredentialListForReviewRow
	err := s.Store.AsSystem(r.Context(), func(q *db.Queries) (err error) {
		rows, err = q.CredentialListForReview(r.Context(), params)
		return err
	})
	if err != nil {
		return err
	}
	out := make([]adminCredentialJSON, len(rows))
	for i, row := range rows {
		out[i] = adminCredentialView(row.Credential, row.ProExternalID, row.TenantName)
	}
	encode(w, http.StatusOK, map[string]any{"credentials": out})
	return nil
}

var errNoCredential = fault.New(fault.NotFound, "no credential with this id")

// adminCredential finds a credential by ID alone (the admin knows no tenant).
func (s *Server) adminCredential(r *http.Request) (db.CredentialGetForAdminRow, error) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return db.CredentialGetForAdminRow{}, errNoCredential
	}
	var row db.CredentialGetForAdminRow
	err = s.Store.AsSystem(r.Context(), func(q *db.Queries) (err error) {
		row, err = q.CredentialGetForAdmin(r.Context(), id)
		return err
	})
	if db.IsNotFound(err) {
		return row, errNoCredential
	}
	return row, err
}

func (s *Server) handleAdminCredentialGet(w http.ResponseWriter, r *http.Request) error {
	row, err := s.adminCredential(r)
	if err != nil {
		return err
	}
	c := row.Credential
	var reviews []db.CredentialReview
	err = s.Store.InTenant(r.Context(), c.TenantID, func(q *db.Queries) (err error) {
		reviews, err = q.CredentialReviewList(r.Context(), db.CredentialReviewListParams{TenantID: c.TenantID, CredentialID: c.ID})
		return err
	})
	if err != nil {
		return err
	}
	out := adminCredentialView(c, row.ProExternalID, row.TenantName)
	for _, rv := range reviews {
		out.Reviews = append(out.Reviews, reviewView(rv))
	}
	encode(w, http.StatusOK, out)
	return nil
}

func reviewView(rv db.CredentialReview) reviewJSON {
	return reviewJSON{ID: rv.ID, Actor: rv.Actor, Reviewer: rv.Reviewer, Decision: rv.Decision, Note: rv.Note,
		FromStatus: rv.FromStatus, ToStatus: rv.ToStatus, RemoteAddr: rv.RemoteAddr, RequestID: rv.RequestID,
		CreatedAt: rv.CreatedAt}
}

// handleAdminCredentialDocument streams a credential's document to ops,
// decrypted, as an attachment the browser will not sniff, and records who
// looked.
func (s *Server) handleAdminCredentialDocument(w http.ResponseWriter, r *http.Request) error {
	row, err := s.adminCredential(r)
	if err != nil {
		return err
	}
	c := row.Credential
	if s.Files == nil {
		return fault.New(fault.Unavailable, "document storage is not configured")
	}
	f, err := s.Files.Open(r.Context(), c.FileKey)
	if errors.Is(err, filestore.ErrNotFound) {
		return fault.New(fault.NotFound, "the credential's document is missing from storage")
	}
	if err != nil {
		return fmt.Errorf("open credential document: %w", err)
	}
	defer f.Close()
	ev := s.actor(r, "admin")
	ev.Kind, ev.TenantID = seclog.AdminAction, &c.TenantID
	ev.Detail = map[string]any{"action": "credential_document_viewed", "credential_id": c.ID.String()}
	s.SecLog.Record(r.Context(), ev)
	exts := map[string]string{credential.PDF: ".pdf", credential.JPEG: ".jpg", credential.PNG: ".png"}
	w.Header().Set("Content-Type", c.FileType)
	w.Header().Set("Content-Length", strconv.FormatInt(c.FileSize, 10))
	w.Header().Set("Content-Disposition", `attachment; filename="credential-`+c.ID.String()+exts[c.FileType]+`"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, f); err != nil {
		s.logger.ErrorContext(r.Context(), "credential document stream ended early", "credential_id", c.ID, "err", err)
	}
	return nil
}

type reviewRequest struct {
	Decision string `json:"decision"`
	Note     string `json:"note"`
	// Reviewer names the person deciding (the admin token does not); it
	// is required, since it is the audit trail's "who".
	Reviewer string `json:"reviewer"`
}

// handleCredentialReview records a person's decision on a credential
// waiting for one: needs_review → verified (approve) or rejected (reject).
// The note becomes the review's reason, which the tenant sees.
func (s *Server) handleCredentialReview(w http.ResponseWriter, r *http.Request) error {
	row, err := s.adminCredential(r)
	if err != nil {
		return err
	}
	req, err := decode[reviewRequest](r)
	if err != nil {
		return err
	}
	problems := map[string]string{}
	note := strings.TrimSpace(req.Note)
	reviewer := strings.TrimSpace(req.Reviewer)
	var to string
	var outcome credential.Outcome
	switch req.Decision {
	case "approve":
		to, outcome = credential.StatusVerified, credential.Pass
	case "reject":
		to, outcome = credential.StatusRejected, credential.Fail
		if note == "" {
			problems["note"] = "required when rejecting: the reason, which the tenant will see"
		}
	default:
		problems["decision"] = `must be "approve" or "reject"`
	}
	if utf8.RuneCountInString(note) > 2000 || !utf8.ValidString(note) {
		problems["note"] = "at most 2000 characters"
	}
	if reviewer == "" || utf8.RuneCountInString(reviewer) > 200 || !utf8.ValidString(reviewer) {
		problems["reviewer"] = "required, at most 200 characters: the person deciding (the admin token names no one), kept in the review trail"
	}
	if len(problems) > 0 {
		return fault.Fields(problems)
	}
	reason := map[string]string{"approve": "approved on review", "reject": "rejected on review"}[req.Decision]
	if note != "" {
		reason += ": " + note
	}
	entry, _ := json.Marshal(credential.Result{Check: "review", Outcome: outcome, Reason: reason})
	c := row.Credential
	now := s.Clock.Now()
	ev := s.actor(r, "admin")
	var updated db.Credential
	var audit db.CredentialReview
	err = s.Store.InTenant(r.Context(), c.TenantID, func(q *db.Queries) error {
		current, err := q.CredentialLock(r.Context(), db.CredentialLockParams{TenantID: c.TenantID, ID: c.ID})
		if err != nil {
			return err
		}
		updated, err = q.CredentialReview(r.Context(), db.CredentialReviewParams{ToStatus: to, Entry: entry, Now: now,
			TenantID: c.TenantID, ID: c.ID})
		if db.IsNotFound(err) {
			return &fault.Error{Code: fault.Conflict, Subcode: "credential_not_reviewable",
				Message: "the credential is " + current.Status + "; only credentials in needs_review can be reviewed"}
		}
		if err != nil {
			return err
		}
		audit, err = q.CredentialReviewRecord(r.Context(), db.CredentialReviewRecordParams{TenantID: c.TenantID,
			CredentialID: c.ID, Actor: ev.Actor, Reviewer: reviewer, Decision: req.Decision, Note: note,
			FromStatus: current.Status, ToStatus: to, RemoteAddr: ev.RemoteAddr, RequestID: ev.RequestID, Now: now})
		return err
	})
	if err != nil {
		return err
	}
	ev.Kind, ev.TenantID = seclog.AdminAction, &c.TenantID
	ev.Detail = map[string]any{"action": "credential_review", "credential_id": c.ID.String(), "decision": req.Decision,
		"review_id": audit.ID}
	s.SecLog.Record(r.Context(), ev)
	out := adminCredentialView(updated, row.ProExternalID, row.TenantName)
	out.Reviews = []reviewJSON{reviewView(audit)}
	encode(w, http.StatusOK, out)
	return nil
}
