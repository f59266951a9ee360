package intake

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/fault"
	"github.com/errandhq/errand/jobs"
)

type messageRequest struct {
	ContactID string `json:"contact_id"`
	// ContactIDs makes the request a batch: one message per contact, each
	// tracked on its own (handle_message_batches.go).
	ContactIDs []string `json:"contact_ids"`
	Channel    string   `json:"channel"`
	Subject    *string  `json:"subject"`
	Body       string   `json:"body"`
	SendAt     *string  `json:"send_at"`
}

// Message limits: an SMS is at most ten segments; an email body 100 kB.
const (
	maxSMSBody      = 1600
	maxEmailBody    = 100_000
	maxSubject      = 200
	maxScheduleAway = 366 * 24 * time.Hour
)

type messageJSON struct {
	ID                string     `json:"id"`
	ContactID         *string    `json:"contact_id"`
	Kind              string     `json:"kind"`
	Channel           string     `json:"channel"`
	Status            string     `json:"status"`
	SendAt            time.Time  `json:"send_at"`
	DueAt             time.Time  `json:"due_at"`
	SentAt            *time.Time `json:"sent_at"`
	DeliveredAt       *time.Time `json:"delivered_at"`
	ProviderMessageID *string    `json:"provider_message_id"`
	Error             *string    `json:"error"`
	Attempts          int32      `json:"attempts"`
	CancelRequestedAt *time.Time `json:"cancel_requested_at,omitempty"`
	CreatedAt         time.Time  `json:"created_at"`
}

func messageView(m db.Message, contactExternalID *string) messageJSON {
	return messageJSON{ID: m.ID.String(), ContactID: contactExternalID, Kind: m.Kind, Channel: m.Channel,
		Status: m.Status, SendAt: m.SendAt, DueAt: m.DueAt, SentAt: m.SentAt, DeliveredAt: m.DeliveredAt,
		ProviderMessageID: m.ProviderMessageID, Error: m.Error, Attempts: m.Attempts,
		CancelRequestedAt: m.CancelRequestedAt, CreatedAt: m.CreatedAt}
}

// parseTime reads an RFC 3339 time field.
func parseTime(v *string, field string, problems map[string]string) *time.Time {
	if v == nil || strings.TrimSpace(*v) == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(*v))
	if err != nil {
		problems[field] = "must be an RFC 3339 time such as 2026-05-01T15:04:05Z"
		return nil
	}
	return &t
}

func (s *Server) handleMessageCreate(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	req, err := decode[messageRequest](r)
	if err != nil {
		return err
	}
	problems := map[string]string{}
	now := s.Clock.Now()
	switch req.Channel {
	case "sms", "email":
	default:
		problems["channel"] = `must be "sms" or "email"`
	}
	body := strings.TrimSpace(req.Body)
	max := maxSMSBody
	if req.Channel == "email" {
		max = maxEmailBody
	}
	if body == "" || utf8.RuneCountInString(body) > max || !utf8.ValidString(body) {
		problems["body"] = "required, at most " + strconv.Itoa(max) + " characters for " + req.Channel
	} else if !storable(body) {
		problems["body"] = errNUL
	}
	subject := optional(req.Subject, maxSubject, "subject", problems)
	if subject != nil && req.Channel == "sms" {
		problems["subject"] = "only email messages have a subject"
	}
	sendAt := now
	if t := parseTime(req.SendAt, "send_at", problems); t != nil {
		if t.Sub(now) > maxScheduleAway {
			problems["send_at"] = "at most a year ahead"
		}
		if t.After(now) {
			sendAt = t.UTC()
		}
	}
	if req.ContactIDs != nil {
		return s.createBatch(w, r, p, req, subject, body, sendAt, problems)
	}
	if req.ContactID == "" {
		problems["contact_id"] = "required"
	}
	if len(problems) > 0 {
		return fault.Fields(problems)
	}
	if !validExternalID(req.ContactID) {
		return errNoContactID
	}
	// One statement (the contact looked up by the insert) in a transaction
	// of its own: one round trip, committed before the 202.
	var msg db.Message
	err = s.Store.InTenantOne(r.Context(), p.TenantID, func(q *db.Queries) (err error) {
		msg, err = s.Dispatcher.InsertMessageForContact(r.Context(), q, req.ContactID, jobs.NewMessage{
			TenantID: p.TenantID, Kind: "manual", Channel: req.Channel, Subject: subject, Body: body, SendAt: sendAt})
		return err
	})
	if db.IsNotFound(err) {
		return errNoContactID
	}
	if err != nil {
		return err
	}
	s.Dispatcher.EnqueueMessages(r.Context(), msg)
	encode(w, http.StatusAccepted, map[string]any{"id": msg.ID.String(), "status": msg.Status, "send_at": msg.SendAt})
	return nil
}

var errNoMessage = fault.New(fault.NotFound, "no message with this id")

var errNoContactID = &fault.Error{Code: fault.NotFound, Message: "no contact with this contact_id",
	Details: map[string]string{"contact_id": "no such contact"}}

func (s *Server) messageByID(r *http.Request, p principal) (db.Message, *string, error) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return db.Message{}, nil, errNoMessage
	}
	var m db.Message
	var ext *string
	err = s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) error {
		var err error
		m, err = q.MessageGet(r.Context(), db.MessageGetParams{TenantID: p.TenantID, ID: id})
		if err != nil {
			return err
		}
		ext, err = contactExternalID(r.Context(), q, p.TenantID, m.ContactID)
		return err
	})
	if db.IsNotFound(err) {
		return db.Message{}, nil, errNoMessage
	}
	return m, ext, err
}

func (s *Server) handleMessageGet(w http.ResponseWriter, r *http.Request) error {
	m, ext, err := s.messageByID(r, tenantOf(r.Context()))
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, messageView(m, ext))
	return nil
}

// handleMessageCancel cancels a message not yet handed to a provider. One
// an attempt has claimed may be at the provider already: 409, never a
// cancelled label on a text the customer may have (MessageCancel).
func (s *Server) handleMessageCancel(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	m, ext, err := s.messageByID(r, p)
	if err != nil {
		return err
	}
	var cancelled db.Message
	requested := false
	err = s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) (err error) {
		cancelled, err = q.MessageCancel(r.Context(), db.MessageCancelParams{TenantID: p.TenantID, ID: m.ID, Now: s.Clock.Now()})
		if db.IsNotFound(err) {
			// Waiting for a retry after an attempt whose outcome is
			// unknown (the provider may have accepted it): the request is
			// recorded, and the message's next run asks the provider and
			// records what happened, never sending it again.
			cancelled, err = q.MessageCancelRequest(r.Context(), db.MessageCancelRequestParams{TenantID: p.TenantID, ID: m.ID, Now: s.Clock.Now()})
			requested = err == nil
		}
		return err
	})
	if db.IsNotFound(err) {
		return &fault.Error{Code: fault.Conflict, Subcode: "message_not_cancellable",
			Message: "the message is " + m.Status + " and can no longer be cancelled"}
	}
	if err != nil {
		return err
	}
	if requested {
		encode(w, http.StatusAccepted, messageView(cancelled, ext))
		return nil
	}
	s.Dispatcher.ForgetMessage(cancelled)
	encode(w, http.StatusOK, messageView(cancelled, ext))
	return nil
}
