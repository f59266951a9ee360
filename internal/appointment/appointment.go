// Package appointment keeps an appointment's messages in step with the
// appointment: a confirmation when it is booked, a reminder per configured
// offset before it, a follow-up after it is completed, a tech-on-the-way
// message on request; moved reminders when it moves, nothing pending when
// it is cancelled. The same change applied twice plans nothing new.
//
// It only writes message rows (through the dispatcher) in the caller's
// tenant; what a message says, and whether it is still wanted, is decided
// when it is sent (jobs.AppointmentRenderer). It must never send anything
// itself.
package appointment

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/fault"
	"github.com/errandhq/errand/internal/notify"
	"github.com/errandhq/errand/jobs"
)

// Statuses of an appointment.
const (
	Scheduled = "scheduled"
	Cancelled = "cancelled"
	Completed = "completed"
)

// Slots of an appointment's plan (a reminder's slot names its offset).
const (
	slotConfirmation = "confirmation"
	slotFollowUp     = "follow_up"
	slotOnTheWay     = "on_the_way"
)

func reminderSlot(offset notify.Duration) string { return "reminder:" + offset.String() }

// Service plans appointments' messages.
type Service struct {
	Store      *db.Store
	Dispatcher *jobs.Dispatcher
	Clock      clock.Clock
}

// Change is the new state of an appointment (a PUT).
type Change struct {
	TenantID   uuid.UUID
	ExternalID string
	ContactID  uuid.UUID
	LocationID uuid.UUID
	StartsAt   time.Time
	Address    *string
	Technician *string
	Status     string
}

// Result is what a change did.
type Result struct {
	Appointment db.Appointment
	Created     bool
	Planned     int // messages written (suppressed records included)
	Moved       int
	Cancelled   int
}

// work is what a plan does in Redis once its transaction committed.
type work struct {
	enqueue []db.Message // new or moved, to enqueue
	forget  []db.Message // cancelled or moved, whose old task to remove
}

// Put creates or updates an appointment and plans its messages, all in
// one transaction, holding the appointment's row so that two PUTs of the
// same appointment plan one after the other.
func (s *Service) Put(ctx context.Context, c Change) (Result, error) {
	var res Result
	var w work
	err := s.Store.InTenant(ctx, c.TenantID, func(q *db.Queries) error {
		res, w = Result{}, work{}
		now := s.Clock.Now()
		var prev *db.Appointment
		cur, err := q.AppointmentLock(ctx, db.AppointmentLockParams{TenantID: c.TenantID, ExternalID: c.ExternalID})
		switch {
		case db.IsNotFound(err):
			cur, err = q.AppointmentInsert(ctx, db.AppointmentInsertParams{TenantID: c.TenantID, ExternalID: c.ExternalID,
				ContactID: c.ContactID, LocationID: c.LocationID, StartsAt: c.StartsAt, Address: c.Address,
				Technician: c.Technician, Status: c.Status, Now: now})
			if db.IsNotFound(err) {
				// A concurrent PUT created it first: update that one.
				cur, err = q.AppointmentLock(ctx, db.AppointmentLockParams{TenantID: c.TenantID, ExternalID: c.ExternalID})
				if err != nil {
					return err
				}
				prev = &cur
			} else if err != nil {
				return err
			} else {
				res.Created = true
			}
		case err != nil:
			return err
		default:
			prev = &cur
		}
		next := cur
		if prev != nil {
			next, err = q.AppointmentUpdate(ctx, db.AppointmentUpdateParams{TenantID: c.TenantID, ID: prev.ID,
				ContactID: c.ContactID, LocationID: c.LocationID, StartsAt: c.StartsAt, Address: c.Address,
				Technician: c.Technician, Status: c.Status, Now: now})
			if err != nil {
				return err
			}
		}
		res.Appointment = next
		return s.plan(ctx, q, prev, next, &res, &w)
	})
	if err != nil {
		return Result{}, err
	}
	s.apply(ctx, w)
	return res, nil
}

// plan brings the appointment's messages in line with its new state.
// Nothing changes unless the appointment's status, time, contact or
// location did: the same PUT twice plans nothing.
func (s *Service) plan(ctx context.Context, q *db.Queries, prev *db.Appointment, next db.Appointment, res *Result, w *work) error {
	if prev != nil && prev.Status == next.Status && prev.StartsAt.Equal(next.StartsAt) &&
		prev.ContactID == next.ContactID && prev.LocationID == next.LocationID {
		return nil
	}
	loc, err := q.LocationGet(ctx, db.LocationGetParams{TenantID: next.TenantID, ID: next.LocationID})
	if err != nil {
		return fmt.Errorf("load location: %w", err)
	}
	settings := notify.ParseSettings(loc.Settings)
	if prev != nil && (prev.ContactID != next.ContactID || prev.LocationID != next.LocationID) {
		if err := q.AppointmentRedirectPending(ctx, db.AppointmentRedirectPendingParams{TenantID: next.TenantID,
			AppointmentID: &next.ID, ContactID: &next.ContactID, LocationID: &next.LocationID, Now: s.Clock.Now()}); err != nil {
			return err
		}
	}
	p := &planner{s: s, q: q, a: next, settings: settings, res: res, w: w}
	switch next.Status {
	case Scheduled:
		if prev == nil {
			if err := p.create(ctx, notify.Confirmation, slotConfirmation, s.Clock.Now()); err != nil {
				return err
			}
		}
		if err := p.cancel(ctx, []string{slotFollowUp}, "the appointment was scheduled again"); err != nil {
			return err
		}
		return p.reminders(ctx)
	case Cancelled:
		return p.cancelAll(ctx, "the appointment was cancelled")
	case Completed:
		reminders, err := p.existingReminderSlots(ctx)
		if err != nil {
			return err
		}
		if err := p.cancel(ctx, append([]string{slotConfirmation}, reminders...), "the appointment was completed"); err != nil {
			return err
		}
		return p.followUp(ctx)
	}
	return nil
}

// apply removes the tasks of cancelled and moved messages from Redis and
// enqueues new and moved ones, after commit.
func (s *Service) apply(ctx context.Context, w work) {
	for _, m := range w.forget {
		s.Dispatcher.ForgetMessage(m)
	}
	s.Dispatcher.EnqueueMessages(ctx, w.enqueue...)
}

// planner plans one appointment's messages inside its transaction.
type planner struct {
	s        *Service
	q        *db.Queries
	a        db.Appointment
	settings notify.Settings
	res      *Result
	w        *work
	existing []db.Message // the appointment's messages, loaded on first use
	loaded   bool
}

func (p *planner) messages(ctx context.Context) ([]db.Message, error) {
	if p.loaded {
		return p.existing, nil
	}
	ms, err := p.q.AppointmentMessages(ctx, db.AppointmentMessagesParams{TenantID: p.a.TenantID, AppointmentID: &p.a.ID})
	p.existing, p.loaded = ms, err == nil
	return ms, err
}

// create writes the event's message on each channel for sendAt: to be
// sent if the location notifies about it on that channel, otherwise as a
// suppressed record saying so.
func (p *planner) create(ctx context.Context, event, slot string, sendAt time.Time) error {
	for _, ch := range notify.Channels {
		if err := p.createOn(ctx, event, slot, ch, sendAt); err != nil {
			return err
		}
	}
	return nil
}

func (p *planner) createOn(ctx context.Context, event, slot, channel string, sendAt time.Time) error {
	nm := jobs.NewMessage{TenantID: p.a.TenantID, ContactID: p.a.ContactID, Kind: event, Channel: channel,
		SendAt: sendAt, AppointmentID: &p.a.ID, LocationID: &p.a.LocationID, Slot: &slot}
	if !p.settings.Enabled(event, channel) {
		nm.Suppressed = notify.SwitchedOff(event, channel)
	}
	m, err := p.s.Dispatcher.InsertMessage(ctx, p.q, nm)
	if err != nil {
		return fmt.Errorf("plan %s: %w", event, err)
	}
	p.res.Planned++
	p.w.enqueue = append(p.w.enqueue, m)
	p.existing = append(p.existing, m)
	return nil
}

// cancel cancels the pending messages of the given slots.
func (p *planner) cancel(ctx context.Context, slots []string, reason string) error {
	if len(slots) == 0 {
		return nil
	}
	return p.cancelSlots(ctx, slots, reason)
}

// cancelAll cancels every pending message of the appointment.
func (p *planner) cancelAll(ctx context.Context, reason string) error {
	return p.cancelSlots(ctx, []string{}, reason) // no slots: all (AppointmentCancelPending)
}

func (p *planner) cancelSlots(ctx context.Context, slots []string, reason string) error {
	ms, err := p.q.AppointmentCancelPending(ctx, db.AppointmentCancelPendingParams{TenantID: p.a.TenantID,
		AppointmentID: &p.a.ID, Slots: slots, Reason: &reason, Now: p.s.Clock.Now()})
	if err != nil {
		return err
	}
	p.res.Cancelled += len(ms)
	for _, m := range ms {
		if m.EnqueuedAt != nil {
			p.w.forget = append(p.w.forget, m)
		}
	}
	if len(ms) > 0 {
		p.loaded = false // reload: statuses changed
	}
	return nil
}

// existingReminderSlots lists the reminder slots the appointment has
// messages in.
func (p *planner) existingReminderSlots(ctx context.Context) ([]string, error) {
	ms, err := p.messages(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, m := range ms {
		if m.Kind == notify.Reminder && m.Slot != nil && !seen[*m.Slot] {
			seen[*m.Slot] = true
			out = append(out, *m.Slot)
		}
	}
	return out, nil
}

// reminders plans one reminder per offset and channel at starts_at minus
// the offset: a pending one moves to its new time (or is cancelled when
// that time has passed), a missing one is created unless one for exactly
// this time already went out, and pending ones whose offset is no longer
// configured are cancelled.
func (p *planner) reminders(ctx context.Context) error {
	now := p.s.Clock.Now()
	ms, err := p.messages(ctx)
	if err != nil {
		return err
	}
	planned := map[string]bool{}
	var tooLate []string
	type key struct{ slot, channel string }
	pending := map[key]db.Message{}
	sentFor := map[key]map[int64]bool{} // send times, in µs
	for _, m := range ms {
		if m.Kind != notify.Reminder || m.Slot == nil {
			continue
		}
		k := key{*m.Slot, m.Channel}
		switch m.Status {
		case "scheduled", "queued":
			pending[k] = m
		case "cancelled":
		default:
			if sentFor[k] == nil {
				sentFor[k] = map[int64]bool{}
			}
			sentFor[k][m.SendAt.UnixMicro()] = true
		}
	}
	for _, offset := range p.settings.Notifications.Reminder.Offsets {
		slot := reminderSlot(offset)
		planned[slot] = true
		at := p.a.StartsAt.Add(-time.Duration(offset))
		if !at.After(now) {
			tooLate = append(tooLate, slot)
			continue
		}
		for _, ch := range notify.Channels {
			k := key{slot, ch}
			if m, ok := pending[k]; ok {
				if m.SendAt.Equal(at) {
					continue
				}
				if err := p.move(ctx, m, at); err != nil {
					return err
				}
				continue
			}
			if sentFor[k][at.UnixMicro()] {
				continue // this very reminder already went out (or was suppressed)
			}
			if err := p.createOn(ctx, notify.Reminder, slot, ch, at); err != nil {
				return err
			}
		}
	}
	if err := p.cancel(ctx, tooLate, "the appointment is now sooner than this reminder's offset"); err != nil {
		return err
	}
	var dropped []string
	for k := range pending {
		if !planned[k.slot] {
			dropped = append(dropped, k.slot)
		}
	}
	return p.cancel(ctx, dropped, "the location no longer sends a reminder this far ahead")
}

// move gives a pending message a new send time.
func (p *planner) move(ctx context.Context, m db.Message, at time.Time) error {
	now := p.s.Clock.Now()
	status := "queued"
	if at.After(now) {
		status = "scheduled"
	}
	var enqueued *time.Time
	if p.s.Dispatcher.Within(at) {
		enqueued = &now
	}
	moved, err := p.q.AppointmentMoveMessage(ctx, db.AppointmentMoveMessageParams{TenantID: m.TenantID, ID: m.ID,
		SendAt: at, EnqueuedAt: enqueued, Status: status, Now: now})
	if db.IsNotFound(err) {
		return nil // no longer pending (a worker took it): it goes out as it is
	}
	if err != nil {
		return err
	}
	p.res.Moved++
	if m.EnqueuedAt != nil {
		p.w.forget = append(p.w.forget, m)
	}
	p.w.enqueue = append(p.w.enqueue, moved)
	return nil
}

// followUp plans the follow-up, once per appointment, the configured delay
// after now (when the appointment was reported completed).
func (p *planner) followUp(ctx context.Context) error {
	ms, err := p.messages(ctx)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.Kind == notify.FollowUp && m.Status != "cancelled" {
			return nil
		}
	}
	at := p.s.Clock.Now().Add(time.Duration(p.settings.Notifications.FollowUp.Delay))
	return p.create(ctx, notify.FollowUp, slotFollowUp, at)
}

// OnTheWay writes the tech-on-the-way message of a scheduled appointment,
// to go now, on each channel the location notifies it on.
func (s *Service) OnTheWay(ctx context.Context, tenantID uuid.UUID, externalID string) ([]db.Message, error) {
	var res Result
	var w work
	err := s.Store.InTenant(ctx, tenantID, func(q *db.Queries) error {
		res, w = Result{}, work{}
		a, err := q.AppointmentLock(ctx, db.AppointmentLockParams{TenantID: tenantID, ExternalID: externalID})
		if db.IsNotFound(err) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if a.Status != Scheduled {
			return &fault.Error{Code: fault.Conflict, Subcode: "appointment_not_scheduled",
				Message: "the appointment is " + a.Status + "; only a scheduled appointment has a technician on the way"}
		}
		loc, err := q.LocationGet(ctx, db.LocationGetParams{TenantID: tenantID, ID: a.LocationID})
		if err != nil {
			return err
		}
		p := &planner{s: s, q: q, a: a, settings: notify.ParseSettings(loc.Settings), res: &res, w: &w}
		return p.create(ctx, notify.OnTheWay, slotOnTheWay, s.Clock.Now())
	})
	if err != nil {
		return nil, err
	}
	s.apply(ctx, w)
	return w.enqueue, nil
}

// ErrNotFound is an unknown appointment, or another tenant's.
var ErrNotFound = fault.New(fault.NotFound, "no appointment with this id")
