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
)

// TypePrivacyDeadlines is the periodic deadline watcher of privacy
// requests: it emails the tenant's owner 7 days and 1 day before a request
// is due, once per threshold, and marks requests overdue.
const TypePrivacyDeadlines = "maintenance:privacy_deadlines"

// Reminder thresholds before a privacy request's due_at.
const (
	PrivacyRemindWeek = 7 * 24 * time.Hour
	PrivacyRemindDay  = 24 * time.Hour
)

// PrivacyDeadlines is the watcher.
type PrivacyDeadlines struct {
	Store      *db.Store
	Clock      clock.Clock
	Logger     *slog.Logger
	Dispatcher *Dispatcher
	Batch      int32
}

// NewPrivacyDeadlines builds the watcher from the shared dependencies.
func NewPrivacyDeadlines(d Deps) *PrivacyDeadlines {
	return &PrivacyDeadlines{Store: d.Store, Clock: d.Clock, Logger: d.Logger, Dispatcher: d.Dispatcher, Batch: 200}
}

// WatchResult counts what one pass did.
type WatchResult struct {
	WeekReminders int `json:"week_reminders"`
	DayReminders  int `json:"day_reminders"`
	MarkedOverdue int `json:"marked_overdue"`
}

// ProcessTask implements asynq.Handler; the counts are the task's result.
func (h *PrivacyDeadlines) ProcessTask(ctx context.Context, t *asynq.Task) error {
	res, err := h.Watch(ctx)
	if w := t.ResultWriter(); w != nil {
		out, _ := json.Marshal(res)
		w.Write(out) //nolint:errcheck // informational
	}
	return err
}

// Watch does everything due at this moment. Each request is handled in its
// own transaction under its row lock, and each threshold's mark is written
// with its email, so a reminder goes out once however many watchers run
// and however often.
func (h *PrivacyDeadlines) Watch(ctx context.Context) (WatchResult, error) {
	var res WatchResult
	now := h.Clock.Now()
	seen := map[uuid.UUID]bool{}
	for {
		var due []db.PrivacyRequestListWatchRow
		err := h.Store.AsSystem(ctx, func(q *db.Queries) (err error) {
			due, err = q.PrivacyRequestListWatch(ctx, db.PrivacyRequestListWatchParams{
				WeekAhead: now.Add(PrivacyRemindWeek), DayAhead: now.Add(PrivacyRemindDay), Now: now, MaxRows: h.Batch})
			return err
		})
		if err != nil {
			return res, fmt.Errorf("list privacy deadlines: %w", err)
		}
		fresh := 0
		for _, r := range due {
			if seen[r.ID] {
				continue // changed under us; the next pass looks again
			}
			seen[r.ID] = true
			fresh++
			if err := h.watchOne(ctx, r.TenantID, r.ID, now, &res); err != nil {
				return res, err
			}
		}
		if len(due) < int(h.Batch) || fresh == 0 {
			return res, nil
		}
	}
}

func (h *PrivacyDeadlines) watchOne(ctx context.Context, tenantID, id uuid.UUID, now time.Time, res *WatchResult) error {
	var msg *db.Message
	err := h.Store.InTenant(ctx, tenantID, func(q *db.Queries) error {
		r, err := q.PrivacyRequestLock(ctx, db.PrivacyRequestLockParams{TenantID: tenantID, ID: id})
		if db.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("lock privacy request: %w", err)
		}
		if !PrivacyOpen(r.Status) {
			return nil
		}
		mark := db.PrivacyRequestMarkWatchedParams{TenantID: tenantID, ID: id, Now: now}
		var stage string
		switch {
		case r.Notified1dAt == nil && !r.DueAt.After(now.Add(PrivacyRemindDay)):
			// The day threshold (or, when it was never reached in time,
			// the overdue notice in its place) also settles the week one:
			// one email, the most urgent.
			stage = "day"
			if !r.DueAt.After(now) {
				stage = "overdue"
			}
			mark.Notified1dAt, mark.Notified7dAt = &now, &now
			res.DayReminders++
		case r.Notified7dAt == nil && !r.DueAt.After(now.Add(PrivacyRemindWeek)):
			stage = "week"
			mark.Notified7dAt = &now
			res.WeekReminders++
		}
		if r.OverdueAt == nil && !r.DueAt.After(now) {
			mark.OverdueAt = &now
			res.MarkedOverdue++
			if err := PrivacyNote(ctx, q, r, "overdue", "system", "the request passed its due time unanswered", now); err != nil {
				return err
			}
		}
		if stage != "" {
			tenant, err := q.TenantGet(ctx, tenantID)
			if err != nil {
				return fmt.Errorf("load tenant: %w", err)
			}
			subject, body := privacyReminder(r, tenant, stage)
			m, err := h.Dispatcher.InsertMessage(ctx, q, NewMessage{TenantID: tenantID, ContactID: uuid.Nil,
				Kind: "notice", Channel: "email", Subject: &subject, Body: body, SendAt: now})
			if err != nil {
				return fmt.Errorf("create reminder: %w", err)
			}
			msg = &m
			if err := PrivacyNote(ctx, q, r, "reminder_"+stage, "system", "reminder emailed to the account owner (message "+m.ID.String()+")", now); err != nil {
				return err
			}
		}
		return q.PrivacyRequestMarkWatched(ctx, mark)
	})
	if err != nil {
		return err
	}
	if msg != nil {
		h.Dispatcher.EnqueueMessages(ctx, *msg)
	}
	return nil
}

// privacyReminder is the email to the owner. It names the request, never
// the person it is about.
func privacyReminder(r db.PrivacyRequest, t db.Tenant, stage string) (string, string) {
	loc, err := time.LoadLocation(t.Timezone)
	if err != nil {
		loc = time.UTC
	}
	var subject, lead string
	switch stage {
	case "week":
		subject, lead = "A privacy request is due in 7 days", "is due in 7 days"
	case "day":
		subject, lead = "A privacy request is due tomorrow", "is due within a day"
	default:
		subject, lead = "A privacy request is overdue", "is overdue"
	}
	about := "your account"
	if r.Subject == "contact" {
		about = "one of your contacts"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "A privacy request to %s %s.\n\n", t.Name, lead)
	fmt.Fprintf(&b, "Request:  %s\n", r.ID)
	fmt.Fprintf(&b, "Type:     %s request about %s\n", r.Type, about)
	fmt.Fprintf(&b, "Received: %s\n", r.ReceivedAt.In(loc).Format("Monday 2 January 2006, 15:04 MST"))
	fmt.Fprintf(&b, "Due:      %s\n", r.DueAt.In(loc).Format("Monday 2 January 2006, 15:04 MST"))
	fmt.Fprintf(&b, "Status:   %s\n\n", strings.ReplaceAll(r.Status, "_", " "))
	b.WriteString("Please answer it before it is due. Its state and history: GET /v1/privacy-requests/" + r.ID.String() + "\n")
	return subject, b.String()
}

// PrivacyOverdue counts open privacy requests past their due time, by
// type, across tenants: the errand_privacy_requests_overdue gauge, read at
// scrape time so any process serving /metrics tells the truth.
func PrivacyOverdue(store *db.Store, clk clock.Clock) func(ctx context.Context) (map[string]int64, error) {
	return func(ctx context.Context) (map[string]int64, error) {
		out := map[string]int64{PrivacyAccess: 0, PrivacyDeletion: 0, PrivacyCorrection: 0}
		err := store.AsSystem(ctx, func(q *db.Queries) error {
			rows, err := q.PrivacyRequestCountOverdue(ctx, clk.Now())
			for _, r := range rows {
				out[r.Type] = r.Overdue
			}
			return err
		})
		return out, err
	}
}
