package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/credential"
)

// TypeCredentialExpiryWatch is the periodic expiry watch: it flips
// credentials past their expiry date to expired, and emails each tenant's
// owner about credentials crossing an expiry threshold (30 and 7 days).
const TypeCredentialExpiryWatch = "maintenance:credential-expiry"

// Expiry thresholds, in days before the expiry date.
const (
	ExpiryWarnFar  = 30
	ExpiryWarnNear = 7
)

// MessageKindCredentialExpiry is the kind of the owner's warning email.
const MessageKindCredentialExpiry = "credential_expiry"

// CredentialExpiryWatch runs one pass of the watch. Each credential is
// warned about once per threshold, to the tenant's owner email; a tenant
// without one is not warned until it has one (the warning is not spent on
// nobody): the warning is claimed in
// credential_expiry_notices in the same transaction that writes the email,
// so a re-run — or two schedulers' runs at once — never sends it twice,
// and a run that fails sends nothing it has not recorded. A credential
// first seen inside the 7-day threshold gets that warning only. Days are
// counted in the tenant's time zone.
type CredentialExpiryWatch struct {
	Store      *db.Store
	Clock      clock.Clock
	Logger     *slog.Logger
	Dispatcher *Dispatcher
	Batch      int32
}

// NewCredentialExpiryWatch builds the handler from the shared dependencies.
func NewCredentialExpiryWatch(d Deps) *CredentialExpiryWatch {
	return &CredentialExpiryWatch{Store: d.Store, Clock: d.Clock, Logger: d.Logger, Dispatcher: d.Dispatcher, Batch: 500}
}

// ExpiryWatchResult counts what one pass did.
type ExpiryWatchResult struct {
	Expired int64 `json:"expired"`
	Warned  int   `json:"warned"`
	Emails  int   `json:"emails"`
	// WaitingForOwner counts due warnings (up to one batch) held back
	// because their tenant has no owner email: not marked sent, they go
	// out on the first run after one is set.
	WaitingForOwner int `json:"waiting_for_owner"`
}

// ProcessTask implements asynq.Handler. The counts are the task's result,
// visible in asynqmon.
func (h *CredentialExpiryWatch) ProcessTask(ctx context.Context, t *asynq.Task) error {
	res, err := h.Run(ctx)
	if w := t.ResultWriter(); w != nil {
		out, _ := json.Marshal(res)
		w.Write(out) //nolint:errcheck // the result is informational
	}
	return err
}

// Run flips expired credentials and sends due warnings, in bounded batches.
func (h *CredentialExpiryWatch) Run(ctx context.Context) (ExpiryWatchResult, error) {
	var res ExpiryWatchResult
	now := h.Clock.Now()
	for {
		var n int64
		err := h.Store.AsSystem(ctx, func(q *db.Queries) (err error) {
			n, err = q.CredentialExpireDue(ctx, db.CredentialExpireDueParams{Now: now, MaxRows: h.Batch})
			return err
		})
		if err != nil {
			return res, fmt.Errorf("expire credentials: %w", err)
		}
		res.Expired += n
		if n < int64(h.Batch) {
			break
		}
	}
	for {
		var rows []db.CredentialListExpiringRow
		err := h.Store.AsSystem(ctx, func(q *db.Queries) (err error) {
			rows, err = q.CredentialListExpiring(ctx, db.CredentialListExpiringParams{Now: now,
				NearDays: ExpiryWarnNear, FarDays: ExpiryWarnFar, WithOwner: true, MaxRows: h.Batch})
			return err
		})
		if err != nil {
			return res, fmt.Errorf("list expiring credentials: %w", err)
		}
		for start := 0; start < len(rows); {
			end := start
			for end < len(rows) && rows[end].TenantID == rows[start].TenantID {
				end++
			}
			warned, err := h.warn(ctx, rows[start].TenantID, rows[start:end], now)
			if err != nil {
				return res, err
			}
			res.Warned += warned
			if warned > 0 {
				res.Emails++
			}
			start = end
		}
		if len(rows) < int(h.Batch) {
			break
		}
	}
	err := h.Store.AsSystem(ctx, func(q *db.Queries) error {
		waiting, err := q.CredentialListExpiring(ctx, db.CredentialListExpiringParams{Now: now,
			NearDays: ExpiryWarnNear, FarDays: ExpiryWarnFar, WithOwner: false, MaxRows: h.Batch})
		res.WaitingForOwner = len(waiting)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("count warnings waiting for an owner: %w", err)
	}
	if res.WaitingForOwner > 0 {
		h.Logger.WarnContext(ctx, "credential expiry warnings wait for an owner email (PUT /admin/v1/tenants/{id}/owner)",
			"waiting", res.WaitingForOwner)
	}
	if res.Expired > 0 || res.Emails > 0 {
		h.Logger.InfoContext(ctx, "credential expiry watch", "expired", res.Expired, "warned", res.Warned, "emails", res.Emails)
	}
	return res, nil
}

// warn claims the tenant's warnings and writes one email to its owner
// listing them, in one transaction.
func (h *CredentialExpiryWatch) warn(ctx context.Context, tenantID uuid.UUID, rows []db.CredentialListExpiringRow, now time.Time) (int, error) {
	var msg db.Message
	var claimed []db.CredentialListExpiringRow
	err := h.Store.InTenant(ctx, tenantID, func(q *db.Queries) error {
		ids := make([]uuid.UUID, 0, len(rows))
		for _, r := range rows {
			_, err := q.CredentialExpiryNoticeClaim(ctx, db.CredentialExpiryNoticeClaimParams{CredentialID: r.ID,
				ThresholdDays: r.ThresholdDays, TenantID: tenantID, Now: now})
			if db.IsNotFound(err) {
				continue // warned already, by a run that overlapped this one
			}
			if err != nil {
				return fmt.Errorf("claim expiry notice: %w", err)
			}
			claimed = append(claimed, r)
			ids = append(ids, r.ID)
		}
		if len(claimed) == 0 {
			return nil
		}
		subject, body := expiryEmail(claimed)
		var err error
		msg, err = h.Dispatcher.InsertMessage(ctx, q, NewMessage{TenantID: tenantID, Kind: MessageKindCredentialExpiry,
			Channel: "email", Subject: &subject, Body: body, SendAt: now})
		if err != nil {
			return err
		}
		return q.CredentialExpiryNoticeSetMessage(ctx, db.CredentialExpiryNoticeSetMessageParams{MessageID: &msg.ID,
			TenantID: tenantID, CredentialIds: ids, Now: now})
	})
	if err != nil {
		return 0, fmt.Errorf("warn tenant %s: %w", tenantID, err)
	}
	if len(claimed) > 0 {
		h.Dispatcher.EnqueueMessages(ctx, msg)
	}
	return len(claimed), nil
}

// expiryEmail is the owner's warning. Numbers are masked: the email leaves
// Errand, and its reader only needs to tell credentials apart.
func expiryEmail(rows []db.CredentialListExpiringRow) (subject, body string) {
	subject = "A professional's credential expires soon"
	if len(rows) > 1 {
		subject = fmt.Sprintf("%d credentials of your professionals expire soon", len(rows))
	}
	var b strings.Builder
	b.WriteString("These credentials of your professionals expire soon:\n\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "- pro %q: %s %s (%s), expires on %s, %s\n", r.ProExternalID, credential.Label(r.Kind),
			credential.Mask(r.Number), r.Issuer, r.ExpiresOn.Time.Format(time.DateOnly), inDays(int(r.DaysLeft)))
	}
	fmt.Fprintf(&b, "\nAsk them to upload the renewed documents. You are warned %d and %d days before a credential expires.\n",
		ExpiryWarnFar, ExpiryWarnNear)
	return subject, b.String()
}

func inDays(n int) string {
	switch n {
	case 0:
		return "today"
	case 1:
		return "tomorrow"
	}
	return fmt.Sprintf("in %d days", n)
}
