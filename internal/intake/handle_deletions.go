package intake

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/fault"
	"github.com/errandhq/errand/internal/seclog"
	"github.com/errandhq/errand/jobs"
)

// Deletions (API.md "Deletions"): a tenant cancels itself (90 days of
// grace, then the purge) or erases one person at once; GET shows the
// certificate, DELETE during the grace period restores the tenant. The
// work is jobs.Deletions'; the admin places legal holds and tightens a
// tenant's retention policies.

// DeletionService is what the intake needs of the deletions feature
// (jobs.Deletions); it also starts the deletions of approved privacy
// requests (DeletionStarter).
type DeletionService interface {
	DeletionStarter
	Start(ctx context.Context, tenantID uuid.UUID, scope string, contactID *uuid.UUID, reason string,
		privacyRequestID *uuid.UUID) (db.Deletion, error)
	Cancel(ctx context.Context, tenantID, id uuid.UUID) (jobs.Restored, error)
	Get(ctx context.Context, tenantID, id uuid.UUID) (db.Deletion, error)
}

type deletionRequest struct {
	Scope     string  `json:"scope"`
	ContactID *string `json:"contact_id"`
	Reason    *string `json:"reason"`
}

type deletionWaitJSON struct {
	HoldID string     `json:"hold_id"`
	Reason string     `json:"reason"`
	Since  time.Time  `json:"since"`
	Until  *time.Time `json:"until"`
}

type deletionJSON struct {
	ID               string            `json:"id"`
	Scope            string            `json:"scope"`
	Status           string            `json:"status"`
	Reason           string            `json:"reason"`
	PurgeAfter       time.Time         `json:"purge_after"`
	Counts           map[string]int64  `json:"counts,omitempty"`
	WaitedFor        *deletionWaitJSON `json:"waited_for,omitempty"`
	PrivacyRequestID *string           `json:"privacy_request_id"`
	CreatedAt        time.Time         `json:"created_at"`
	StartedAt        *time.Time        `json:"started_at"`
	CompletedAt      *time.Time        `json:"completed_at"`
	CancelledAt      *time.Time        `json:"cancelled_at"`
	// Restore only.
	RestoredMessages *int32 `json:"restored_messages,omitempty"`
	ExpiredMessages  *int32 `json:"messages_not_restored,omitempty"`
	Note             string `json:"note,omitempty"`
}

func deletionView(d db.Deletion) deletionJSON {
	out := deletionJSON{ID: d.ID.String(), Scope: d.Scope, Status: d.Status, Reason: d.Reason,
		PurgeAfter: d.PurgeAfter, PrivacyRequestID: idString(d.PrivacyRequestID), CreatedAt: d.CreatedAt,
		StartedAt: d.StartedAt, CompletedAt: d.CompletedAt, CancelledAt: d.CancelledAt,
		RestoredMessages: d.RestoredMessages, ExpiredMessages: d.ExpiredMessages}
	if d.Status == jobs.DeletionCompleted || d.Status == jobs.DeletionRunning {
		out.Counts = map[string]int64{}
		_ = json.Unmarshal(d.Counts, &out.Counts)
	}
	if d.HoldID != nil && d.HeldSince != nil {
		out.WaitedFor = &deletionWaitJSON{HoldID: d.HoldID.String(), Since: *d.HeldSince, Until: d.HeldUntil}
		if d.HoldReason != nil {
			out.WaitedFor.Reason = *d.HoldReason
		}
	}
	return out
}

var errNoDeletion = fault.New(fault.NotFound, "no deletion with this id")

func (s *Server) handleDeletionCreate(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	if s.DeletionSvc == nil {
		return fault.New(fault.Unavailable, "deletions are not available on this server")
	}
	req, err := decode[deletionRequest](r)
	if err != nil {
		return err
	}
	problems := map[string]string{}
	switch req.Scope {
	case jobs.DeletionScopeTenant:
		if req.ContactID != nil {
			problems["contact_id"] = `only for scope "contact"`
		}
	case jobs.DeletionScopeContact:
		if req.ContactID == nil || *req.ContactID == "" {
			problems["contact_id"] = `required for scope "contact"`
		}
	default:
		problems["scope"] = `must be "tenant" or "contact"`
	}
	// The reason is recorded as a word, never as free text: the deletion
	// record outlives the data and must not carry it ("Pat Doe asked by
	// phone"). API.md lets a caller send any reason, so text that is not
	// one of the words is accepted and recorded as "other".
	reason := jobs.DeletionReasonRequest
	if req.Reason != nil {
		reason = strings.ToLower(strings.TrimSpace(*req.Reason))
		if !slices.Contains(jobs.DeletionReasons, reason) {
			reason = jobs.DeletionReasonOther
		} else if reason == jobs.DeletionReasonMinor && req.Scope != jobs.DeletionScopeContact {
			problems["reason"] = `"minor" is for scope "contact": a child's data`
		}
	}
	if len(problems) > 0 {
		return fault.Fields(problems)
	}
	var contactID *uuid.UUID
	if req.Scope == jobs.DeletionScopeContact {
		c, err := s.contactByExternalID(r, p, *req.ContactID)
		if err != nil {
			return noSuchContact(err)
		}
		contactID = &c.ID
	}
	d, err := s.DeletionSvc.Start(r.Context(), p.TenantID, req.Scope, contactID, reason, nil)
	if errors.Is(err, jobs.ErrTenantAlreadyCancelled) {
		return &fault.Error{Code: fault.Conflict, Subcode: "deletion_exists",
			Message: "this account already has a deletion under way"}
	}
	if err != nil {
		return err
	}
	s.keys.forgetTenant(p.TenantID)
	encode(w, http.StatusAccepted, map[string]any{"id": d.ID.String(), "status": d.Status, "purge_after": d.PurgeAfter})
	return nil
}

func (s *Server) deletionID(r *http.Request) (uuid.UUID, error) {
	if s.DeletionSvc == nil {
		return uuid.Nil, errNoDeletion
	}
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return uuid.Nil, errNoDeletion
	}
	return id, nil
}

func (s *Server) handleDeletionGet(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	id, err := s.deletionID(r)
	if err != nil {
		return err
	}
	d, err := s.DeletionSvc.Get(r.Context(), p.TenantID, id)
	if db.IsNotFound(err) {
		return errNoDeletion
	}
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, deletionView(d))
	return nil
}

// handleDeletionCancel restores a cancelled tenant during its grace period.
func (s *Server) handleDeletionCancel(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	id, err := s.deletionID(r)
	if err != nil {
		return err
	}
	res, err := s.DeletionSvc.Cancel(r.Context(), p.TenantID, id)
	if db.IsNotFound(err) {
		return errNoDeletion
	}
	if errors.Is(err, jobs.ErrNotRestorable) {
		return &fault.Error{Code: fault.Conflict, Subcode: "deletion_not_cancellable",
			Message: "only a tenant deletion still in its grace period can be cancelled; an erasure cannot be undone"}
	}
	if err != nil {
		return err
	}
	s.keys.forgetTenant(p.TenantID)
	out := deletionView(res.Deletion)
	out.Note = "the account and its API keys work again; pending messages whose send time has not come are " +
		"scheduled again, but messages whose time passed while the account was cancelled are not restored"
	encode(w, http.StatusOK, out)
	return nil
}

// Admin: legal holds and retention overrides.

type legalHoldRequest struct {
	TenantID  string  `json:"tenant_id"`
	ContactID *string `json:"contact_id"` // the contact's external ID
	Reason    string  `json:"reason"`
	PlacedBy  string  `json:"placed_by"`
}

type legalHoldJSON struct {
	ID         string     `json:"id"`
	TenantID   string     `json:"tenant_id"`
	ContactID  *string    `json:"contact_id"` // internal ID
	Reason     string     `json:"reason"`
	PlacedBy   string     `json:"placed_by"`
	PlacedAt   time.Time  `json:"placed_at"`
	ReleasedBy *string    `json:"released_by"`
	ReleasedAt *time.Time `json:"released_at"`
}

func legalHoldView(h db.LegalHold) legalHoldJSON {
	return legalHoldJSON{ID: h.ID.String(), TenantID: h.TenantID.String(), ContactID: idString(h.ContactID),
		Reason: h.Reason, PlacedBy: h.PlacedBy, PlacedAt: h.PlacedAt, ReleasedBy: h.ReleasedBy, ReleasedAt: h.ReleasedAt}
}

var errNoHold = fault.New(fault.NotFound, "no legal hold with this id")

func (s *Server) handleLegalHoldPlace(w http.ResponseWriter, r *http.Request) error {
	req, err := decode[legalHoldRequest](r)
	if err != nil {
		return err
	}
	problems := map[string]string{}
	tenantID, err := uuid.Parse(req.TenantID)
	if err != nil {
		problems["tenant_id"] = "must be a tenant id"
	}
	reason := strings.TrimSpace(req.Reason)
	if reason == "" || utf8.RuneCountInString(reason) > 500 {
		problems["reason"] = "required, at most 500 characters"
	}
	placedBy := strings.TrimSpace(req.PlacedBy)
	if placedBy == "" {
		placedBy = "admin"
	}
	if len(problems) > 0 {
		return fault.Fields(problems)
	}
	if _, err := s.Store.Q().TenantGet(r.Context(), tenantID); db.IsNotFound(err) {
		return fault.New(fault.NotFound, "no tenant with this id")
	} else if err != nil {
		return err
	}
	var contactID *uuid.UUID
	if req.ContactID != nil {
		c, err := s.contactByExternalID(r, principal{TenantID: tenantID}, *req.ContactID)
		if err != nil {
			return noSuchContact(err)
		}
		contactID = &c.ID
	}
	// legal_holds has row-level security (a deletion reads it in its
	// tenant's scope); the admin writes it as the system.
	var h db.LegalHold
	err = s.Store.AsSystem(r.Context(), func(q *db.Queries) (err error) {
		h, err = q.LegalHoldPlace(r.Context(), db.LegalHoldPlaceParams{TenantID: tenantID, ContactID: contactID,
			Reason: reason, PlacedBy: placedBy, Now: s.Clock.Now()})
		return err
	})
	if err != nil {
		return err
	}
	ev := s.actor(r, "admin")
	ev.Kind, ev.TenantID, ev.Detail = "legal_hold_placed", &tenantID, map[string]any{"hold_id": h.ID.String()}
	s.SecLog.Record(r.Context(), ev)
	encode(w, http.StatusCreated, legalHoldView(h))
	return nil
}

func (s *Server) handleLegalHoldRelease(w http.ResponseWriter, r *http.Request) error {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return errNoHold
	}
	var h db.LegalHold
	var gerr error
	err = s.Store.AsSystem(r.Context(), func(q *db.Queries) error {
		h, err = q.LegalHoldRelease(r.Context(), db.LegalHoldReleaseParams{ReleasedBy: ptrTo("admin"),
			Now: ptrTo(s.Clock.Now()), ID: id})
		if db.IsNotFound(err) {
			_, gerr = q.LegalHoldGet(r.Context(), id)
		}
		return err
	})
	if db.IsNotFound(err) {
		if db.IsNotFound(gerr) {
			return errNoHold
		}
		return &fault.Error{Code: fault.Conflict, Subcode: "hold_released", Message: "this legal hold is already released"}
	}
	if err != nil {
		return err
	}
	ev := s.actor(r, "admin")
	ev.Kind, ev.TenantID, ev.Detail = "legal_hold_released", &h.TenantID, map[string]any{"hold_id": h.ID.String()}
	s.SecLog.Record(r.Context(), ev)
	encode(w, http.StatusOK, legalHoldView(h))
	return nil
}

func ptrTo[T any](v T) *T { return &v }

type retentionPolicyJSON struct {
	What string `json:"what"`
	// Keep, DefaultKeep and MinKeep are calendar intervals ("3 years",
	// "30 days").
	Keep        string `json:"keep"`
	DefaultKeep string `json:"default_keep"`
	MinKeep     string `json:"min_keep"`
	Action      string `json:"action"`
	Overridden  bool   `json:"overridden"`
	Note        string `json:"note"`
}

func (s *Server) adminTenantID(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return id, fault.New(fault.NotFound, "no tenant with this id")
	}
	if _, err := s.Store.Q().TenantGet(r.Context(), id); db.IsNotFound(err) {
		return id, fault.New(fault.NotFound, "no tenant with this id")
	} else if err != nil {
		return id, err
	}
	return id, nil
}

func (s *Server) writeRetentionPolicies(w http.ResponseWriter, r *http.Request, tenantID uuid.UUID) error {
	rows, err := s.Store.Q().RetentionPolicyEffective(r.Context(), &tenantID)
	if err != nil {
		return err
	}
	out := make([]retentionPolicyJSON, 0, len(rows))
	for _, p := range rows {
		out = append(out, retentionPolicyJSON{What: p.What, Keep: p.Keep, DefaultKeep: p.DefaultKeep, MinKeep: p.MinKeep,
			Action: p.Action, Overridden: p.Overridden, Note: p.Note})
	}
	encode(w, http.StatusOK, map[string]any{"tenant_id": tenantID.String(), "policies": out})
	return nil
}

func (s *Server) handleRetentionPoliciesGet(w http.ResponseWriter, r *http.Request) error {
	id, err := s.adminTenantID(r)
	if err != nil {
		return err
	}
	return s.writeRetentionPolicies(w, r, id)
}

type retentionOverride struct {
	Days   *int32 `json:"days"`
	Action string `json:"action"`
}

// handleRetentionPolicyPut tightens one of a tenant's policies: a number
// of days no longer than the default (never below its legal floor), and delete where the
// default deletes. The database refuses anything looser too.
func (s *Server) handleRetentionPolicyPut(w http.ResponseWriter, r *http.Request) error {
	id, err := s.adminTenantID(r)
	if err != nil {
		return err
	}
	req, err := decode[retentionOverride](r)
	if err != nil {
		return err
	}
	what := r.PathValue("what")
	defaults, err := s.Store.Q().RetentionPolicyDefaults(r.Context())
	if err != nil {
		return err
	}
	var def *db.RetentionPolicy
	for i := range defaults {
		if defaults[i].What == what {
			def = &defaults[i]
		}
	}
	if def == nil {
		return fault.New(fault.NotFound, "no retention policy with this name (message_logs, opt_out_records, billing_records, security_logs)")
	}
	problems := map[string]string{}
	stricter := "an override may only be stricter: between the legal floor and the default (see GET)"
	if req.Days == nil || *req.Days < 0 {
		problems["days"] = stricter
	}
	if req.Action == "" {
		req.Action = def.Action
	}
	if req.Action != "delete" && req.Action != "anonymise" {
		problems["action"] = `must be "delete" or "anonymise"`
	} else if def.Action == "delete" && req.Action != "delete" {
		problems["action"] = `must be "delete": the default deletes, and an override may only be stricter`
	}
	if len(problems) > 0 {
		return fault.Fields(problems)
	}
	// The database decides whether the days lie between the floor and
	// the default (calendar intervals: "3 years" is 1095 or 1096 days).
	// The action was checked above, so its refusal is about the days.
	if _, err := s.Store.Q().RetentionPolicyOverride(r.Context(), db.RetentionPolicyOverrideParams{TenantID: &id,
		What: what, Days: *req.Days, Action: req.Action, Now: s.Clock.Now()}); db.IsCheckViolation(err) {
		return fault.Fields(map[string]string{"days": stricter})
	} else if err != nil {
		return err
	}
	ev := s.actor(r, "admin")
	ev.Kind, ev.TenantID, ev.Detail = seclog.AdminAction, &id, map[string]any{"action": "retention_override_set",
		"what": what, "days": *req.Days, "override_action": req.Action}
	s.SecLog.Record(r.Context(), ev)
	return s.writeRetentionPolicies(w, r, id)
}

func (s *Server) handleRetentionPolicyDelete(w http.ResponseWriter, r *http.Request) error {
	id, err := s.adminTenantID(r)
	if err != nil {
		return err
	}
	n, err := s.Store.Q().RetentionPolicyDropOverride(r.Context(), db.RetentionPolicyDropOverrideParams{
		TenantID: &id, What: r.PathValue("what")})
	if err != nil {
		return err
	}
	if n > 0 {
		ev := s.actor(r, "admin")
		ev.Kind, ev.TenantID, ev.Detail = seclog.AdminAction, &id, map[string]any{"action": "retention_override_dropped",
			"what": r.PathValue("what")}
		s.SecLog.Record(r.Context(), ev)
	}
	return s.writeRetentionPolicies(w, r, id)
}

// handleDeletionList pages through the tenant's deletions, newest first;
// a cancelled tenant may list them (to find the one to cancel).
func (s *Server) handleDeletionList(w http.ResponseWriter, r *http.Request) error {
	return list(s, w, r, "deletions", newestFirst,
		func(ctx context.Context, q *db.Queries, tenant uuid.UUID, pg page) ([]db.Deletion, error) {
			return q.DeletionList(ctx, db.DeletionListParams{TenantID: tenant, BeforeAt: pg.At, BeforeID: pg.ID, MaxRows: pg.fetch()})
		},
		func(x db.Deletion) (time.Time, uuid.UUID) { return x.CreatedAt, x.ID }, deletionView)
}
