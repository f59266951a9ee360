package intake

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/fault"
)

// Batch limits. 50,000 IDs of 10 characters fit the default 1 MiB body.
const (
	maxBatchContacts = 50_000
	batchInsertChunk = 5_000
	batchLookupChunk = 10_000
	maxUnknownShown  = 10
)

// createBatch is POST /v1/messages with contact_ids: one body, one send
// time, many contacts. Every recipient gets its own message row, written
// in a few multi-row statements in one transaction (all or nothing), each
// then tracked, opted out, held for quiet hours and retried on its own.
// The rows wait in PostgreSQL and reach Redis through the tenant's bulk
// window (jobs.BulkWindow), so the batch never delays another tenant.
func (s *Server) createBatch(w http.ResponseWriter, r *http.Request, p principal, req messageRequest,
	subject *string, body string, sendAt time.Time, problems map[string]string) error {
	if req.ContactID != "" {
		problems["contact_id"] = "give contact_id or contact_ids, not both"
	}
	ids := make([]string, 0, len(req.ContactIDs))
	seen := make(map[string]bool, len(req.ContactIDs))
	switch n := len(req.ContactIDs); {
	case n == 0:
		problems["contact_ids"] = "at least one contact id"
	case n > maxBatchContacts:
		problems["contact_ids"] = "at most 50000 contact ids; send several batches"
	default:
		for _, id := range req.ContactIDs {
			if !validExternalID(id) {
				problems["contact_ids"] = "each must be a contact id: 1 to 200 printable characters"
				break
			}
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	if len(problems) > 0 {
		return fault.Fields(problems)
	}

	now := s.Clock.Now()
	status := "queued"
	if sendAt.After(now) {
		status = "scheduled"
	}
	var batch db.MessageBatch
	err := s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) error {
		contacts := make([]uuid.UUID, 0, len(ids))
		var unknown []string
		for start := 0; start < len(ids); start += batchLookupChunk {
			chunk := ids[start:min(start+batchLookupChunk, len(ids))]
			rows, err := q.ContactIDsByExternalIDs(r.Context(), db.ContactIDsByExternalIDsParams{TenantID: p.TenantID, ExternalIds: chunk})
			if err != nil {
				return err
			}
			found := make(map[string]uuid.UUID, len(rows))
			for _, row := range rows {
				found[row.ExternalID] = row.ID
			}
			for _, id := range chunk {
				if c, ok := found[id]; ok {
					contacts = append(contacts, c)
				} else {
					unknown = append(unknown, id)
				}
			}
		}
		if len(unknown) > 0 {
			shown := unknown[:min(len(unknown), maxUnknownShown)]
			msg := "no such contacts: " + strings.Join(shown, ", ")
			if len(unknown) > len(shown) {
				msg += " and " + strconv.Itoa(len(unknown)-len(shown)) + " more"
			}
			return &fault.Error{Code: fault.NotFound, Message: "the batch names unknown contacts; nothing was sent",
				Details: map[string]string{"contact_ids": msg}}
		}
		var err error
		batch, err = q.MessageBatchCreate(r.Context(), db.MessageBatchCreateParams{TenantID: p.TenantID,
			Channel: req.Channel, SendAt: sendAt, Total: int32(len(contacts)), Now: now})
		if err != nil {
			return err
		}
		for start := 0; start < len(contacts); start += batchInsertChunk {
			_, err := q.MessageBatchInsertMessages(r.Context(), db.MessageBatchInsertMessagesParams{TenantID: p.TenantID,
				Channel: req.Channel, Subject: subject, Body: body, Status: status, SendAt: sendAt, BatchID: &batch.ID,
				Now: now, ContactIds: contacts[start:min(start+batchInsertChunk, len(contacts))]})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if s.Dispatcher.Within(sendAt) {
		if _, err := s.Dispatcher.AdmitBulk(r.Context(), p.TenantID); err != nil {
			s.logger.WarnContext(r.Context(), "bulk admission deferred to the due-scan", "err", err)
		}
	}
	encode(w, http.StatusAccepted, map[string]any{"batch_id": batch.ID.String(), "status": status,
		"count": batch.Total, "send_at": batch.SendAt})
	return nil
}

var errNoBatch = fault.New(fault.NotFound, "no message batch with this id")

// handleBatchGet counts a batch's messages by status.
func (s *Server) handleBatchGet(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return errNoBatch
	}
	var batch db.MessageBatch
	var counts []db.MessageBatchCountsRow
	err = s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) error {
		var err error
		batch, err = q.MessageBatchGet(r.Context(), db.MessageBatchGetParams{TenantID: p.TenantID, ID: id})
		if db.IsNotFound(err) {
			return errNoBatch
		}
		if err != nil {
			return err
		}
		counts, err = q.MessageBatchCounts(r.Context(), db.MessageBatchCountsParams{TenantID: p.TenantID, BatchID: &id})
		return err
	})
	if err != nil {
		return err
	}
	byStatus := map[string]int32{}
	for _, c := range counts {
		byStatus[c.Status] = c.N
	}
	encode(w, http.StatusOK, map[string]any{"id": batch.ID.String(), "channel": batch.Channel, "send_at": batch.SendAt,
		"total": batch.Total, "counts": byStatus, "created_at": batch.CreatedAt})
	return nil
}

type batchMessageJSON struct {
	ID        string    `json:"id"`
	ContactID *string   `json:"contact_id"`
	Status    string    `json:"status"`
	SendAt    time.Time `json:"send_at"`
	Error     *string   `json:"error"`
}

// handleBatchMessages lists a batch's messages, each with its contact,
// status, send time and reason, in ID order, a page at a time.
func (s *Server) handleBatchMessages(w http.ResponseWriter, r *http.Request) error {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return errNoBatch
	}
	return list(s, w, r, "messages", inIDOrder,
		func(ctx context.Context, q *db.Queries, tenant uuid.UUID, pg page) ([]db.MessageBatchMessagesRow, error) {
			if _, err := q.MessageBatchGet(ctx, db.MessageBatchGetParams{TenantID: tenant, ID: id}); db.IsNotFound(err) {
				return nil, errNoBatch
			} else if err != nil {
				return nil, err
			}
			return q.MessageBatchMessages(ctx, db.MessageBatchMessagesParams{TenantID: tenant, BatchID: &id, After: pg.ID, MaxRows: pg.fetch()})
		},
		func(x db.MessageBatchMessagesRow) (time.Time, uuid.UUID) { return time.Time{}, x.ID },
		func(m db.MessageBatchMessagesRow) batchMessageJSON {
			return batchMessageJSON{ID: m.ID.String(), ContactID: m.ContactExternalID, Status: m.Status, SendAt: m.SendAt, Error: m.Error}
		})
}

// handleBatchCancel cancels every message of a batch not yet handed to
// the provider; those already sent stay sent.
func (s *Server) handleBatchCancel(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return errNoBatch
	}
	var cancelled []db.MessageBatchCancelRow
	var requested int64
	err = s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) error {
		if _, err := q.MessageBatchGet(r.Context(), db.MessageBatchGetParams{TenantID: p.TenantID, ID: id}); err != nil {
			if db.IsNotFound(err) {
				return errNoBatch
			}
			return err
		}
		var err error
		cancelled, err = q.MessageBatchCancel(r.Context(), db.MessageBatchCancelParams{TenantID: p.TenantID, BatchID: &id, Now: s.Clock.Now()})
		if err != nil {
			return err
		}
		requested, err = q.MessageBatchCancelRequest(r.Context(), db.MessageBatchCancelRequestParams{TenantID: p.TenantID, BatchID: &id, Now: s.Clock.Now()})
		return err
	})
	if err != nil {
		return err
	}
	for _, m := range cancelled {
		if m.EnqueuedAt != nil {
			s.Dispatcher.ForgetMessage(db.Message{TenantID: m.TenantID, ID: m.ID, Kind: m.Kind})
		}
	}
	// cancel_requested: messages an earlier attempt claimed, settled with
	// the provider by their next run and never sent again.
	encode(w, http.StatusOK, map[string]any{"id": id.String(), "cancelled": len(cancelled), "cancel_requested": requested})
	return nil
}
