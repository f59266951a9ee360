package jobs

import (
	"context"
	"fmt"
	"strings"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/notify"
)

// AppointmentRenderer writes an appointment message (confirmation,
// reminder, on-the-way, follow-up) at send time, so it says what is true
// then: the appointment's current time, in the recipient's zone (the
// contact's, else the location's, else the tenant's), its technician and
// address, in the location's own wording for that event and channel or
// Errand's. It also re-checks that the message is still wanted: the
// location may have switched the event or channel off since it was
// planned ("if you turn them all off, we send nothing"), and the
// appointment may have been cancelled or have started already. The text
// it writes is recorded on the message with its claim, for the message log.
type AppointmentRenderer struct {
	Clock clock.Clock
}

// appointmentRenderers are the built-in renderers, one per appointment
// message kind.
func appointmentRenderers(c clock.Clock) map[string]Renderer {
	r := &AppointmentRenderer{Clock: c}
	out := map[string]Renderer{}
	for _, e := range notify.Events {
		out[e] = r
	}
	return out
}

// Render implements Renderer.
func (r *AppointmentRenderer) Render(ctx context.Context, q *db.Queries, m db.Message) (Rendered, error) {
	if m.AppointmentID == nil {
		return Rendered{}, Cancelled("the appointment this message was about no longer exists")
	}
	a, err := q.AppointmentMessageContext(ctx, db.AppointmentMessageContextParams{TenantID: m.TenantID,
		ID: *m.AppointmentID, Event: m.Kind, Channel: m.Channel})
	if db.IsNotFound(err) {
		return Rendered{}, Cancelled("the appointment this message was about no longer exists")
	}
	if err != nil {
		return Rendered{}, fmt.Errorf("load appointment: %w", err)
	}
	switch {
	case m.Kind == notify.FollowUp && a.AppointmentStatus != "completed":
		return Rendered{}, Cancelled("the appointment is " + a.AppointmentStatus + ", not completed")
	case m.Kind != notify.FollowUp && a.AppointmentStatus != "scheduled":
		return Rendered{}, Cancelled("the appointment is " + a.AppointmentStatus)
	case m.Kind == notify.Reminder && !r.Clock.Now().Before(a.StartsAt):
		return Rendered{}, Cancelled("the appointment had already started when the reminder was due")
	}
	settings := notify.ParseSettings(a.LocationSettings)
	if !settings.Enabled(m.Kind, m.Channel) {
		return Rendered{}, Suppressed(notify.SwitchedOff(m.Kind, m.Channel))
	}

	tpl := notify.Builtin(m.Kind, m.Channel)
	if a.TemplateBody != nil {
		tpl.Body = *a.TemplateBody
		if a.TemplateSubject != nil {
			tpl.Subject = *a.TemplateSubject
		}
	}
	zone := notify.Zone(deref(a.ContactTimezone), a.LocationTimezone, a.TenantTimezone)
	address := deref(a.Address)
	if address == "" {
		address = deref(a.ContactAddress)
	}
	values := notify.ValuesFor(notify.Appointment{Business: a.TenantName, Customer: firstName(a.ContactName),
		Technician: deref(a.Technician), Address: address, Location: a.LocationName, StartsAt: a.StartsAt}, zone)
	out := Rendered{Body: notify.Render(tpl.Body, values), Record: true}
	if m.Channel == "email" {
		out.Subject = notify.Render(tpl.Subject, values)
	}
	return out, nil
}

// firstName is how a message greets a contact.
func firstName(name string) string {
	if f := strings.Fields(name); len(f) > 0 {
		return f[0]
	}
	return ""
}
