package intake

import (
	"net/http"
	"time"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/appointment"
	"github.com/errandhq/errand/internal/fault"
)

// appointmentRequest is PUT /v1/appointments/{external_id}. contact_id and
// location_id are the tenant's external IDs; status defaults to scheduled.
type appointmentRequest struct {
	ContactID  string  `json:"contact_id"`
	LocationID string  `json:"location_id"`
	StartsAt   *string `json:"starts_at"`
	Address    *string `json:"address"`
	Technician *string `json:"technician"`
	Status     string  `json:"status"`
}

type appointmentJSON struct {
	ID         string    `json:"id"`
	ContactID  string    `json:"contact_id"`
	LocationID string    `json:"location_id"`
	StartsAt   time.Time `json:"starts_at"`
	Address    *string   `json:"address"`
	Technician *string   `json:"technician"`
	Status     string    `json:"status"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// How far ahead an appointment may be booked.
const maxAppointmentAhead = 2 * 366 * 24 * time.Hour

func (s *Server) appointments() *appointment.Service {
	return &appointment.Service{Store: s.Store, Dispatcher: s.Dispatcher, Clock: s.Clock}
}

// handleAppointmentPut creates or changes an appointment; its messages
// follow (see internal/appointment): created → confirmation now and the
// reminders; moved → pending reminders move; cancelled → every pending
// message cancelled; completed → the follow-up. The same PUT twice plans
// nothing new.
func (s *Server) handleAppointmentPut(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	ext := r.PathValue("external_id")
	if !validExternalID(ext) {
		return fault.Fields(map[string]string{"external_id": "1 to 200 printable characters"})
	}
	req, err := decode[appointmentRequest](r)
	if err != nil {
		return err
	}
	problems := map[string]string{}
	if req.Status == "" {
		req.Status = appointment.Scheduled
	}
	switch req.Status {
	case appointment.Scheduled, appointment.Cancelled, appointment.Completed:
	default:
		problems["status"] = `must be "scheduled", "cancelled" or "completed"`
	}
	startsAt := parseTime(req.StartsAt, "starts_at", problems)
	if startsAt == nil && problems["starts_at"] == "" {
		problems["starts_at"] = "required"
	}
	if startsAt != nil && startsAt.Sub(s.Clock.Now()) > maxAppointmentAhead {
		problems["starts_at"] = "at most two years ahead"
	}
	if !validExternalID(req.ContactID) {
		problems["contact_id"] = "required: the contact's id"
	}
	if !validExternalID(req.LocationID) {
		problems["location_id"] = "required: the location's id"
	}
	address := optional(req.Address, 500, "address", problems)
	technician := optional(req.Technician, 200, "technician", problems)
	if len(problems) > 0 {
		return fault.Fields(problems)
	}
	var contact db.Contact
	var loc db.Location
	err = s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) error {
		var err error
		contact, err = q.ContactGetByExternalID(r.Context(), db.ContactGetByExternalIDParams{TenantID: p.TenantID, ExternalID: req.ContactID})
		if db.IsNotFound(err) {
			problems["contact_id"] = "no such contact"
		} else if err != nil {
			return err
		}
		loc, err = q.LocationGetByExternalID(r.Context(), db.LocationGetByExternalIDParams{TenantID: p.TenantID, ExternalID: req.LocationID})
		if db.IsNotFound(err) {
			problems["location_id"] = "no such location"
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return &fault.Error{Code: fault.NotFound, Message: "the appointment refers to an unknown contact or location",
			Details: problems}
	}
	res, err := s.appointments().Put(r.Context(), appointment.Change{TenantID: p.TenantID, ExternalID: ext,
		ContactID: contact.ID, LocationID: loc.ID, StartsAt: startsAt.UTC(), Address: address, Technician: technician,
		Status: req.Status})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	encode(w, status, appointmentView(res.Appointment, contact.ExternalID, loc.ExternalID))
	return nil
}

func appointmentView(a db.Appointment, contactExt, locationExt string) appointmentJSON {
	return appointmentJSON{ID: a.ExternalID, ContactID: contactExt, LocationID: locationExt, StartsAt: a.StartsAt,
		Address: a.Address, Technician: a.Technician, Status: a.Status, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt}
}

func (s *Server) handleAppointmentGet(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	var out appointmentJSON
	err := s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) error {
		a, err := appointmentByExternalID(r, q, p)
		if err != nil {
			return err
		}
		c, err := q.ContactGet(r.Context(), db.ContactGetParams{TenantID: p.TenantID, ID: a.ContactID})
		if err != nil {
			return err
		}
		l, err := q.LocationGet(r.Context(), db.LocationGetParams{TenantID: p.TenantID, ID: a.LocationID})
		if err != nil {
			return err
		}
		out = appointmentView(a, c.ExternalID, l.ExternalID)
		return nil
	})
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, out)
	return nil
}

func appointmentByExternalID(r *http.Request, q *db.Queries, p principal) (db.Appointment, error) {
	ext := r.PathValue("external_id")
	if !validExternalID(ext) {
		return db.Appointment{}, appointment.ErrNotFound
	}
	a, err := q.AppointmentGetByExternalID(r.Context(), db.AppointmentGetByExternalIDParams{TenantID: p.TenantID, ExternalID: ext})
	if db.IsNotFound(err) {
		return db.Appointment{}, appointment.ErrNotFound
	}
	return a, err
}

// handleAppointmentMessages lists an appointment's messages, oldest send
// time first, with their status and why they were not sent.
func (s *Server) handleAppointmentMessages(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	var out []messageJSON
	err := s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) error {
		a, err := appointmentByExternalID(r, q, p)
		if err != nil {
			return err
		}
		c, err := q.ContactGet(r.Context(), db.ContactGetParams{TenantID: p.TenantID, ID: a.ContactID})
		if err != nil {
			return err
		}
		ms, err := q.AppointmentMessages(r.Context(), db.AppointmentMessagesParams{TenantID: p.TenantID, AppointmentID: &a.ID})
		if err != nil {
			return err
		}
		out = make([]messageJSON, len(ms))
		for i, m := range ms {
			ext := &c.ExternalID
			if m.ContactID == nil || *m.ContactID != c.ID {
				ext = nil // an earlier contact of the appointment
			}
			out[i] = messageView(m, ext)
		}
		return nil
	})
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, map[string]any{"messages": out})
	return nil
}

// handleAppointmentOnTheWay sends the tech-on-the-way message now.
func (s *Server) handleAppointmentOnTheWay(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	ext := r.PathValue("external_id")
	if !validExternalID(ext) {
		return appointment.ErrNotFound
	}
	ms, err := s.appointments().OnTheWay(r.Context(), p.TenantID, ext)
	if err != nil {
		return err
	}
	out := make([]messageJSON, len(ms))
	for i, m := range ms {
		out[i] = messageView(m, nil)
	}
	encode(w, http.StatusAccepted, map[string]any{"messages": out})
	return nil
}
