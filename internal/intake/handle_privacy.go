package intake

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/fault"
	"github.com/errandhq/errand/internal/seclog"
	"github.com/errandhq/errand/jobs"
)

// Privacy requests: access, deletion and correction requests the tenant
// received, each with a deadline (received + 30 days unless the tenant's
// setting says otherwise), an audit trail of every state change, and a
// link to the export or deletion that fulfils it. The state machine is
// jobs.PrivacyCanMove (drawn in db/migrations/0041_privacy_requests.sql);
// the deadline watcher is jobs/privacy_deadlines.go.

// DeletionStarter starts a deletion that fulfils an approved deletion
// request (the deletions feature implements it). Without one, an approved
// request stays approved, awaiting fulfilment, and its deadline is still
// watched.
type DeletionStarter interface {
	StartDeletion(ctx context.Context, tenantID uuid.UUID, scope string, contactID *uuid.UUID,
		privacyRequestID uuid.UUID) (deletionID uuid.UUID, err error)
}

// DefaultPrivacyResponseDays is how long a request has unless the tenant's
// privacy settings say otherwise: "we will respond within 30 days".
const DefaultPrivacyResponseDays = 30

const maxPrivacyNote = 2000

type privacyRequestCreate struct {
	Type       string  `json:"type"`
	Subject    string  `json:"subject"`
	ContactID  *string `json:"contact_id"`
	ReceivedAt *string `json:"received_at"`
	Format     *string `json:"format"` // access requests: the export's format, csv unless set
	Note       *string `json:"note"`
}

type privacyTransition struct {
	Status string  `json:"status"`
	Note   *string `json:"note"`
	Format *string `json:"format"` // access → in_progress: the new export's format
}

type privacyEventJSON struct {
	Action     string    `json:"action"`
	Actor      string    `json:"actor"`
	From       *string   `json:"from"`
	To         string    `json:"to"`
	Note       string    `json:"note"`
	OccurredAt time.Time `json:"occurred_at"`
}

type privacyRequestJSON struct {
	ID           string             `json:"id"`
	TenantID     string             `json:"tenant_id,omitempty"` // admin views only
	Type         string             `json:"type"`
	Subject      string             `json:"subject"`
	ContactID    *string            `json:"contact_id"`
	Status       string             `json:"status"`
	ReceivedAt   time.Time          `json:"received_at"`
	DueAt        time.Time          `json:"due_at"`
	Overdue      bool               `json:"overdue"`
	ExportID     *string            `json:"export_id"`
	DeletionID   *string            `json:"deletion_id"`
	Notified7dAt *time.Time         `json:"reminded_7d_at"`
	Notified1dAt *time.Time         `json:"reminded_1d_at"`
	OverdueAt    *time.Time         `json:"overdue_at"`
	ClosedAt     *time.Time         `json:"closed_at"`
	CreatedAt    time.Time          `json:"created_at"`
	UpdatedAt    time.Time          `json:"updated_at"`
	Events       []privacyEventJSON `json:"events,omitempty"`
}

func idString(id *uuid.UUID) *string {
	if id == nil {
		return nil
	}
	s := id.String()
	return &s
}

func (s *Server) privacyView(r db.PrivacyRequest, contactExternalID *string, events []db.PrivacyRequestEvent) privacyRequestJSON {
	out := privacyRequestJSON{ID: r.ID.String(), Type: r.Type, Subject: r.Subject, ContactID: contactExternalID,
		Status: r.Status, ReceivedAt: r.ReceivedAt, DueAt: r.DueAt,
		Overdue:  jobs.PrivacyOpen(r.Status) && !r.DueAt.After(s.Clock.Now()),
		ExportID: idString(r.ExportID), DeletionID: idString(r.DeletionID), Notified7dAt: r.Notified7dAt,
		Notified1dAt: r.Notified1dAt, OverdueAt: r.OverdueAt, ClosedAt: r.ClosedAt, CreatedAt: r.CreatedAt,
		UpdatedAt: r.UpdatedAt}
	for _, e := range events {
		out.Events = append(out.Events, privacyEventJSON{Action: e.Action, Actor: e.Actor, From: e.FromStatus,
			To: e.ToStatus, Note: e.Note, OccurredAt: e.OccurredAt})
	}
	return out
}

// privacyActor names who made a change, for the audit trail.
func privacyActor(p principal) string { return "api_key:" + p.KeyPrefix }

func exportFormat(v *string, problems map[string]string) string {
	if v == nil || *v == "" {
		return "csv"
	}
	if *v != "csv" && *v != "json" {
		problems["format"] = `must be "csv" or "json"`
	}
	return *v
}

func privacyNote(v *string, problems map[string]string) string {
	if v == nil {
		return ""
	}
	n := strings.TrimSpace(*v)
	if utf8.RuneCountInString(n) > maxPrivacyNote || !utf8.ValidString(n) {
		problems["note"] = "at most " + strconv.Itoa(maxPrivacyNote) + " characters"
	}
	return n
}

// responseDays is the tenant's deadline setting.
func responseDays(ctx context.Context, q *db.Queries, tenantID uuid.UUID) (int, error) {
	st, err := q.PrivacySettingsGet(ctx, tenantID)
	if db.IsNotFound(err) {
		return DefaultPrivacyResponseDays, nil
	}
	if err != nil {
		return 0, err
	}
	return int(st.ResponseDays), nil
}

// startAccessExport starts the export that answers an access request and
// moves the request to in_progress, in the caller's transaction.
func (s *Server) startAccessExport(ctx context.Context, q *db.Queries, r db.PrivacyRequest, format, actor string) (db.PrivacyRequest, db.Export, error) {
	exp, err := s.Dispatcher.InsertExport(ctx, q, jobs.NewExport{TenantID: r.TenantID, Scope: r.Subject,
		ContactID: r.ContactID, Format: format, PrivacyRequestID: &r.ID})
	if err != nil {
		return r, exp, err
	}
	now := s.Clock.Now()
	if err := q.PrivacyRequestLinkExport(ctx, db.PrivacyRequestLinkExportParams{ExportID: &exp.ID, Now: now,
		TenantID: r.TenantID, ID: r.ID}); err != nil {
		return r, exp, err
	}
	r.ExportID = &exp.ID
	r, err = jobs.PrivacyMove(ctx, q, r, jobs.PrivacyInProgress, "export_started", actor,
		"export "+exp.ID.String()+" ("+format+") started", now)
	return r, exp, err
}

func (s *Server) handlePrivacyRequestCreate(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	req, err := decode[privacyRequestCreate](r)
	if err != nil {
		return err
	}
	problems := map[string]string{}
	now := s.Clock.Now()
	switch req.Type {
	case jobs.PrivacyAccess, jobs.PrivacyDeletion, jobs.PrivacyCorrection:
	default:
		problems["type"] = `must be "access", "deletion" or "correction"`
	}
	switch req.Subject {
	case "tenant":
		if req.ContactID != nil {
			problems["contact_id"] = `only for subject "contact"`
		}
	case "contact":
		if req.ContactID == nil || *req.ContactID == "" {
			problems["contact_id"] = `required for subject "contact"`
		}
	default:
		problems["subject"] = `must be "tenant" or "contact"`
	}
	received := now
	if t := parseTime(req.ReceivedAt, "received_at", problems); t != nil {
		if t.After(now.Add(5 * time.Minute)) {
			problems["received_at"] = "cannot be in the future"
		}
		received = t.UTC()
	}
	format := exportFormat(req.Format, problems)
	if req.Format != nil && req.Type != jobs.PrivacyAccess {
		problems["format"] = "only access requests start an export"
	}
	note := privacyNote(req.Note, problems)
	if len(problems) > 0 {
		return fault.Fields(problems)
	}
	var contactID *uuid.UUID
	if req.Subject == "contact" {
		c, err := s.contactByExternalID(r, p, *req.ContactID)
		if err != nil {
			return noSuchContact(err)
		}
		contactID = &c.ID
	}

	actor := privacyActor(p)
	var pr db.PrivacyRequest
	var exp *db.Export
	err = s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) error {
		days, err := responseDays(r.Context(), q, p.TenantID)
		if err != nil {
			return err
		}
		pr, err = q.PrivacyRequestCreate(r.Context(), db.PrivacyRequestCreateParams{TenantID: p.TenantID,
			Type: req.Type, Subject: req.Subject, ContactID: contactID, ReceivedAt: received,
			DueAt: received.AddDate(0, 0, days), Now: now})
		if err != nil {
			return err
		}
		err = q.PrivacyRequestEventRecord(r.Context(), db.PrivacyRequestEventRecordParams{TenantID: p.TenantID,
			RequestID: pr.ID, Action: "received", Actor: actor, ToStatus: pr.Status, Note: note, OccurredAt: now})
		if err != nil || req.Type != jobs.PrivacyAccess {
			return err
		}
		var e db.Export
		pr, e, err = s.startAccessExport(r.Context(), q, pr, format, actor)
		exp = &e
		return err
	})
	if err != nil {
		return err
	}
	if exp != nil {
		s.Dispatcher.EnqueueExport(r.Context(), *exp)
	}
	return s.writePrivacyRequest(w, r, p.TenantID, pr.ID, http.StatusCreated)
}

// writePrivacyRequest answers with a request and its trail.
func (s *Server) writePrivacyRequest(w http.ResponseWriter, r *http.Request, tenantID, id uuid.UUID, status int) error {
	var row db.PrivacyRequestGetRow
	var events []db.PrivacyRequestEvent
	err := s.Store.InTenant(r.Context(), tenantID, func(q *db.Queries) (err error) {
		row, err = q.PrivacyRequestGet(r.Context(), db.PrivacyRequestGetParams{TenantID: tenantID, ID: id})
		if err != nil {
			return err
		}
		events, err = q.PrivacyRequestEventList(r.Context(), db.PrivacyRequestEventListParams{TenantID: tenantID, RequestID: id})
		return err
	})
	if db.IsNotFound(err) {
		return errNoPrivacyRequest
	}
	if err != nil {
		return err
	}
	encode(w, status, s.privacyView(row.PrivacyRequest, row.ContactExternalID, events))
	return nil
}

var errNoPrivacyRequest = fault.New(fault.NotFound, "no privacy request with this id")

func (s *Server) handlePrivacyRequestGet(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return errNoPrivacyRequest
	}
	return s.writePrivacyRequest(w, r, p.TenantID, id, http.StatusOK)
}

// handlePrivacyRequestList lists the tenant's requests, newest first, 100
// a page; ?status= and ?overdue=true filter, ?before=<created_at of the
// last one seen> pages back.
func (s *Server) handlePrivacyRequestList(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	qv := r.URL.Query()
	problems := map[string]string{}
	params := db.PrivacyRequestListParams{TenantID: p.TenantID, Now: s.Clock.Now(),
		Before: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), MaxRows: 100}
	if v := qv.Get("status"); v != "" {
		params.Status = &v
	}
	switch qv.Get("overdue") {
	case "", "false":
	case "true":
		params.OverdueOnly = true
	default:
		problems["overdue"] = `must be "true" or "false"`
	}
	if v := qv.Get("before"); v != "" {
		if t := parseTime(&v, "before", problems); t != nil {
			params.Before = *t
		}
	}
	if len(problems) > 0 {
		return fault.Fields(problems)
	}
	var rows []db.PrivacyRequestListRow
	err := s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) (err error) {
		rows, err = q.PrivacyRequestList(r.Context(), params)
		return err
	})
	if err != nil {
		return err
	}
	out := make([]privacyRequestJSON, len(rows))
	for i, row := range rows {
		out[i] = s.privacyView(row.PrivacyRequest, row.ContactExternalID, nil)
	}
	encode(w, http.StatusOK, map[string]any{"privacy_requests": out})
	return nil
}

// handlePrivacyRequestTransition moves a request by hand: approve a
// deletion request (which starts the deletion when one can be started),
// start another export for an access request, record a correction as in
// progress, complete or reject. Every move lands in the audit trail.
func (s *Server) handlePrivacyRequestTransition(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return errNoPrivacyRequest
	}
	req, err := decode[privacyTransition](r)
	if err != nil {
		return err
	}
	problems := map[string]string{}
	switch req.Status {
	case jobs.PrivacyApproved, jobs.PrivacyInProgress, jobs.PrivacyCompleted, jobs.PrivacyRejected:
	default:
		problems["status"] = `must be "approved", "in_progress", "completed" or "rejected"`
	}
	format := exportFormat(req.Format, problems)
	note := privacyNote(req.Note, problems)
	if len(problems) > 0 {
		return fault.Fields(problems)
	}
	actor := privacyActor(p)
	now := s.Clock.Now()
	var pr db.PrivacyRequest
	var exp *db.Export
	err = s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) error {
		pr, err = q.PrivacyRequestLock(r.Context(), db.PrivacyRequestLockParams{TenantID: p.TenantID, ID: id})
		if db.IsNotFound(err) {
			return errNoPrivacyRequest
		}
		if err != nil {
			return err
		}
		if req.Format != nil && !(pr.Type == jobs.PrivacyAccess && req.Status == jobs.PrivacyInProgress) {
			return fault.Fields(map[string]string{"format": "only when moving an access request to in_progress"})
		}
		// Approving again an approved deletion request whose deletion has
		// not started retries starting it.
		if req.Status == jobs.PrivacyApproved && pr.Status == jobs.PrivacyApproved && pr.DeletionID == nil {
			return nil
		}
		if !jobs.PrivacyCanMove(pr.Type, pr.Status, req.Status) {
			return &fault.Error{Code: fault.Conflict, Subcode: "invalid_transition",
				Message: "a " + pr.Type + " request that is " + pr.Status + " cannot become " + req.Status}
		}
		if pr.Type == jobs.PrivacyAccess && req.Status == jobs.PrivacyInProgress {
			var e db.Export
			pr, e, err = s.startAccessExport(r.Context(), q, pr, format, actor)
			exp = &e
			return err
		}
		pr, err = jobs.PrivacyMove(r.Context(), q, pr, req.Status, "status_changed", actor, note, now)
		return err
	})
	if err != nil {
		return err
	}
	if exp != nil {
		s.Dispatcher.EnqueueExport(r.Context(), *exp)
	}
	if pr.Type == jobs.PrivacyDeletion && pr.Status == jobs.PrivacyApproved && pr.DeletionID == nil && s.Deletions != nil {
		if err := s.startDeletion(r.Context(), pr); err != nil {
			return err
		}
	}
	return s.writePrivacyRequest(w, r, p.TenantID, pr.ID, http.StatusOK)
}

// startDeletion hands an approved deletion request to the deletions
// feature and records the link. On failure the request stays approved;
// approving it again retries.
func (s *Server) startDeletion(ctx context.Context, pr db.PrivacyRequest) error {
	deletionID, err := s.Deletions.StartDeletion(ctx, pr.TenantID, pr.Subject, pr.ContactID, pr.ID)
	if err != nil {
		s.logger.ErrorContext(ctx, "could not start the deletion of a privacy request", "privacy_request_id", pr.ID, "err", err)
		return &fault.Error{Code: fault.Unavailable, RetryAfter: 30,
			Message: "the request is approved but its deletion could not be started; approve it again to retry"}
	}
	s.keys.forgetTenant(pr.TenantID) // a tenant-scope deletion has just cancelled the account
	return s.Store.InTenant(ctx, pr.TenantID, func(q *db.Queries) error {
		locked, err := q.PrivacyRequestLock(ctx, db.PrivacyRequestLockParams{TenantID: pr.TenantID, ID: pr.ID})
		if err != nil {
			return err
		}
		now := s.Clock.Now()
		if err := q.PrivacyRequestLinkDeletion(ctx, db.PrivacyRequestLinkDeletionParams{DeletionID: &deletionID,
			Now: now, TenantID: pr.TenantID, ID: pr.ID}); err != nil {
			return err
		}
		if locked.Status != jobs.PrivacyApproved {
			return nil // moved on meanwhile (rejected, or completed by hand)
		}
		_, err = jobs.PrivacyMove(ctx, q, locked, jobs.PrivacyInProgress, "deletion_started", "system",
			"deletion "+deletionID.String()+" started", now)
		return err
	})
}

// Admin: overdue requests across tenants, and each tenant's deadline.

// handleAdminPrivacyRequests lists open requests past their due time across
// tenants, most overdue first (?overdue=true; ?tenant_id= narrows). It is
// the one request path that reads across tenants, as the admin must.
func (s *Server) handleAdminPrivacyRequests(w http.ResponseWriter, r *http.Request) error {
	qv := r.URL.Query()
	problems := map[string]string{}
	if qv.Get("overdue") != "true" {
		problems["overdue"] = `only "true" is supported: the admin view lists overdue requests; a tenant lists its own with its API key`
	}
	params := db.PrivacyRequestListOverdueParams{Now: s.Clock.Now(), MaxRows: 500}
	if v := qv.Get("tenant_id"); v != "" {
		id, err := uuid.Parse(v)
		if err != nil {
			problems["tenant_id"] = "must be a tenant id"
		}
		params.TenantID = &id
	}
	if len(problems) > 0 {
		return fault.Fields(problems)
	}
	var rows []db.PrivacyRequest
	err := s.Store.AsSystem(r.Context(), func(q *db.Queries) (err error) {
		rows, err = q.PrivacyRequestListOverdue(r.Context(), params)
		return err
	})
	if err != nil {
		return err
	}
	out := make([]privacyRequestJSON, len(rows))
	for i, row := range rows {
		// The person's ID stays with the tenant: the admin sees the request, not whom it is about.
		out[i] = s.privacyView(row, nil, nil)
		out[i].TenantID = row.TenantID.String()
	}
	encode(w, http.StatusOK, map[string]any{"privacy_requests": out})
	return nil
}

type privacySettingsRequest struct {
	ResponseDays      *int `json:"response_days"`
	DeletionGraceDays *int `json:"deletion_grace_days"`
}

// maxResponseDays is the longest a tenant may take to answer a privacy
// request: the 30 days the privacy policies promise.
const maxResponseDays = 30

// maxDeletionGraceDays is the longest a cancelled account is kept before
// its purge: the 90 days of the longest published promise (seed 001).
const maxDeletionGraceDays = 90

func (s *Server) handleAdminPrivacySettings(w http.ResponseWriter, r *http.Request) error {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return fault.New(fault.NotFound, "no such tenant")
	}
	req, err := decode[privacySettingsRequest](r)
	if err != nil {
		return err
	}
	problems := map[string]string{}
	var params db.PrivacySettingsSetParams
	// The published promise is an answer within 30 days (seed 002): a
	// tenant may promise sooner, never later.
	if d := req.ResponseDays; d != nil {
		if *d < 1 || *d > maxResponseDays {
			problems["response_days"] = "a number of days from 1 to 30: requests are answered within 30 days, or sooner"
		}
		params.ResponseDays = ptrTo(int32(*d))
	}
	// A platform that promises deletion within 30 days (seed 000) keeps a
	// cancelled account for less than the 90-day default (seed 001).
	if d := req.DeletionGraceDays; d != nil {
		if *d < 1 || *d > maxDeletionGraceDays {
			problems["deletion_grace_days"] = "a number of days from 1 to 90: how long a cancelled account is kept before its purge"
		}
		params.DeletionGraceDays = ptrTo(int32(*d))
	}
	if req.ResponseDays == nil && req.DeletionGraceDays == nil {
		problems["response_days"] = "give response_days, deletion_grace_days or both"
	}
	if len(problems) > 0 {
		return fault.Fields(problems)
	}
	if _, err := s.Store.Q().TenantGet(r.Context(), id); db.IsNotFound(err) {
		return fault.New(fault.NotFound, "no such tenant")
	} else if err != nil {
		return err
	}
	params.TenantID, params.DefaultResponseDays, params.Now = id, DefaultPrivacyResponseDays, s.Clock.Now()
	var st db.PrivacySetting
	err = s.Store.InTenant(r.Context(), id, func(q *db.Queries) (err error) {
		st, err = q.PrivacySettingsSet(r.Context(), params)
		return err
	})
	if err != nil {
		return err
	}
	ev := s.actor(r, "admin")
	ev.Kind, ev.TenantID, ev.Detail = seclog.AdminAction, &id, map[string]any{"action": "privacy_settings",
		"response_days": st.ResponseDays, "deletion_grace_days": st.DeletionGraceDays}
	s.SecLog.Record(r.Context(), ev)
	// deletion_grace_days null: the platform's default (ERRAND_DELETION_GRACE, 90 days).
	encode(w, http.StatusOK, map[string]any{"tenant_id": id.String(), "response_days": st.ResponseDays,
		"deletion_grace_days": st.DeletionGraceDays, "updated_at": st.UpdatedAt})
	return nil
}
