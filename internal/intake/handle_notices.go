package intake

import (
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/fault"
	"github.com/errandhq/errand/internal/normalize"
	"github.com/errandhq/errand/internal/seclog"
)

// Account notices: the platform writes to every active tenant's owner
// (001 §13, 002 §11: a policy change, at least 30 days before it takes
// effect). A tenant's owner email is set by the admin API; messages with
// no contact go to it.

type ownerRequest struct {
	Email *string `json:"email"`
}

// handleTenantOwnerPut sets (or, with null, clears) the email address of a
// tenant's owner: where notices, warnings and deadlines go.
func (s *Server) handleTenantOwnerPut(w http.ResponseWriter, r *http.Request) error {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return fault.New(fault.NotFound, "no such tenant")
	}
	req, err := decode[ownerRequest](r)
	if err != nil {
		return err
	}
	var email *string
	if req.Email != nil && strings.TrimSpace(*req.Email) != "" {
		norm, err := normalize.Email(*req.Email)
		if err != nil {
			return fault.Fields(map[string]string{"email": err.Error()})
		}
		email = &norm
	}
	t, err := s.Store.Q().TenantSetOwnerEmail(r.Context(), db.TenantSetOwnerEmailParams{ID: id, OwnerEmail: email, Now: s.Clock.Now()})
	if db.IsNotFound(err) {
		return fault.New(fault.NotFound, "no such tenant")
	}
	if err != nil {
		return err
	}
	ev := s.actor(r, "admin")
	ev.Kind, ev.TenantID, ev.Detail = seclog.AdminAction, &t.ID, map[string]any{"action": "set_owner_email", "set": email != nil}
	s.SecLog.Record(r.Context(), ev)
	encode(w, http.StatusOK, tenantView(t))
	return nil
}

type noticeRequest struct {
	Subject     string  `json:"subject"`
	Body        string  `json:"body"`
	EffectiveAt *string `json:"effective_at"`
}

// noticeLead is how far ahead of its change a notice must go out.
const noticeLead = 30 * 24 * time.Hour

type noticeDeliveryJSON struct {
	TenantID    string     `json:"tenant_id"`
	MessageID   string     `json:"message_id"`
	Status      string     `json:"status"`
	Error       *string    `json:"error"`
	SentAt      *time.Time `json:"sent_at"`
	DeliveredAt *time.Time `json:"delivered_at"`
}

type noticeJSON struct {
	ID          string               `json:"id"`
	Subject     string               `json:"subject"`
	EffectiveAt time.Time            `json:"effective_at"`
	Recipients  int32                `json:"recipients"`
	CreatedAt   time.Time            `json:"created_at"`
	Counts      map[string]int       `json:"counts,omitempty"`
	Deliveries  []noticeDeliveryJSON `json:"deliveries,omitempty"`
}

// handleNoticeCreate emails every active tenant's owner once, each email
// a message tracked on its own. It refuses a change less than 30 days
// away. The messages are written in system scope (the platform writing to
// all its accounts) and sent by the dispatcher's next scan.
func (s *Server) handleNoticeCreate(w http.ResponseWriter, r *http.Request) error {
	req, err := decode[noticeRequest](r)
	if err != nil {
		return err
	}
	problems := map[string]string{}
	subject, body := strings.TrimSpace(req.Subject), strings.TrimSpace(req.Body)
	if subject == "" || utf8.RuneCountInString(subject) > maxSubject {
		problems["subject"] = "required, at most 200 characters"
	}
	if body == "" || utf8.RuneCountInString(body) > maxEmailBody {
		problems["body"] = "required, at most 100000 characters"
	}
	now := s.Clock.Now()
	effective := parseTime(req.EffectiveAt, "effective_at", problems)
	switch {
	case effective == nil && problems["effective_at"] == "":
		problems["effective_at"] = "required"
	case effective != nil && effective.Before(now.Add(noticeLead)):
		problems["effective_at"] = "must be at least 30 days from now (" + now.Add(noticeLead).Format(time.RFC3339) + ")"
	}
	if len(problems) > 0 {
		return fault.Fields(problems)
	}
	var n db.Notice
	err = s.Store.AsSystem(r.Context(), func(q *db.Queries) error {
		var err error
		n, err = q.NoticeCreate(r.Context(), db.NoticeCreateParams{Subject: subject, Body: body, EffectiveAt: effective.UTC(), Now: now})
		if err != nil {
			return err
		}
		count, err := q.NoticeAddressTenants(r.Context(), db.NoticeAddressTenantsParams{Subject: &subject, Body: body,
			EffectiveAt: n.EffectiveAt, Now: now, NoticeID: &n.ID})
		if err != nil {
			return err
		}
		n.Recipients = int32(count)
		return q.NoticeSetRecipients(r.Context(), db.NoticeSetRecipientsParams{ID: n.ID, Recipients: n.Recipients})
	})
	if err != nil {
		return err
	}
	ev := s.actor(r, "admin")
	ev.Kind, ev.Detail = seclog.AdminAction, map[string]any{"action": "notice_created", "notice_id": n.ID.String(),
		"recipients": n.Recipients}
	s.SecLog.Record(r.Context(), ev)
	encode(w, http.StatusCreated, noticeJSON{ID: n.ID.String(), Subject: n.Subject, EffectiveAt: n.EffectiveAt,
		Recipients: n.Recipients, CreatedAt: n.CreatedAt})
	return nil
}

// handleNoticeGet shows a notice and its delivery to each tenant.
func (s *Server) handleNoticeGet(w http.ResponseWriter, r *http.Request) error {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return fault.New(fault.NotFound, "no such notice")
	}
	var n db.Notice
	var rows []db.NoticeDeliveriesRow
	err = s.Store.AsSystem(r.Context(), func(q *db.Queries) error {
		var err error
		n, err = q.NoticeGet(r.Context(), id)
		if db.IsNotFound(err) {
			return fault.New(fault.NotFound, "no such notice")
		}
		if err != nil {
			return err
		}
		rows, err = q.NoticeDeliveries(r.Context(), &id)
		return err
	})
	if err != nil {
		return err
	}
	out := noticeJSON{ID: n.ID.String(), Subject: n.Subject, EffectiveAt: n.EffectiveAt, Recipients: n.Recipients,
		CreatedAt: n.CreatedAt, Counts: map[string]int{}, Deliveries: make([]noticeDeliveryJSON, len(rows))}
	for i, d := range rows {
		out.Counts[d.Status]++
		out.Deliveries[i] = noticeDeliveryJSON{TenantID: d.TenantID.String(), MessageID: d.ID.String(), Status: d.Status,
			Error: d.Error, SentAt: d.SentAt, DeliveredAt: d.DeliveredAt}
	}
	encode(w, http.StatusOK, out)
	return nil
}
