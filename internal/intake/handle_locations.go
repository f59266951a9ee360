package intake

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/account"
	"github.com/errandhq/errand/internal/fault"
	"github.com/errandhq/errand/internal/notify"
)

// locationRequest is PUT /v1/locations/{external_id}: API.md's shape;
// every notification setting is optional and defaults as API.md says.
type locationRequest struct {
	Name          string                     `json:"name"`
	Timezone      string                     `json:"timezone"`
	Notifications *notify.NotificationsInput `json:"notifications"`
	QuietHours    *notify.QuietHoursInput    `json:"quiet_hours"`
}

type templateJSON struct {
	Event     string    `json:"event"`
	Channel   string    `json:"channel"`
	Subject   *string   `json:"subject"`
	Body      string    `json:"body"`
	UpdatedAt time.Time `json:"updated_at"`
}

// locationJSON is a location as the API shows it: its settings with every
// default filled in, and the templates it overrides.
type locationJSON struct {
	ID            string               `json:"id"`
	Name          string               `json:"name"`
	Timezone      string               `json:"timezone"`
	Notifications notify.Notifications `json:"notifications"`
	QuietHours    notify.QuietHours    `json:"quiet_hours"`
	Templates     []templateJSON       `json:"templates"`
	CreatedAt     time.Time            `json:"created_at"`
	UpdatedAt     time.Time            `json:"updated_at"`
}

func locationView(l db.Location, templates []db.LocationTemplate) locationJSON {
	s := notify.ParseSettings(l.Settings)
	out := locationJSON{ID: l.ExternalID, Name: l.Name, Timezone: l.Timezone, Notifications: s.Notifications,
		QuietHours: s.QuietHours, Templates: make([]templateJSON, len(templates)), CreatedAt: l.CreatedAt, UpdatedAt: l.UpdatedAt}
	for i, t := range templates {
		out.Templates[i] = templateJSON{Event: t.Event, Channel: t.Channel, Subject: t.Subject, Body: t.Body, UpdatedAt: t.UpdatedAt}
	}
	return out
}

func (s *Server) handleLocationPut(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	ext := r.PathValue("external_id")
	if !validExternalID(ext) {
		return fault.Fields(map[string]string{"external_id": "1 to 200 printable characters"})
	}
	req, err := decode[locationRequest](r)
	if err != nil {
		return err
	}
	settings, problems := notify.SettingsInput{Notifications: req.Notifications, QuietHours: req.QuietHours}.Resolve()
	name := strings.TrimSpace(req.Name)
	if name == "" || utf8.RuneCountInString(name) > 200 {
		problems["name"] = "required, at most 200 characters"
	}
	if _, err := account.LoadZone(req.Timezone); err != nil {
		problems["timezone"] = err.Error()
	}
	if len(problems) > 0 {
		return fault.Fields(problems)
	}
	raw, err := json.Marshal(settings)
	if err != nil {
		return err
	}
	var row db.LocationUpsertRow
	var templates []db.LocationTemplate
	err = s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) (err error) {
		row, err = q.LocationUpsert(r.Context(), db.LocationUpsertParams{TenantID: p.TenantID, ExternalID: ext,
			Name: name, Timezone: req.Timezone, Settings: raw, Now: s.Clock.Now()})
		if err != nil {
			return err
		}
		templates, err = q.LocationTemplateList(r.Context(), db.LocationTemplateListParams{TenantID: p.TenantID, LocationID: row.ID})
		return err
	})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if row.Inserted {
		status = http.StatusCreated
	}
	encode(w, status, locationView(db.Location{ID: row.ID, TenantID: row.TenantID, ExternalID: row.ExternalID,
		Name: row.Name, Timezone: row.Timezone, Settings: row.Settings, CreatedAt: row.CreatedAt, UpdatedAt: row.UpdatedAt}, templates))
	return nil
}

func (s *Server) handleLocationGet(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	var l db.Location
	var templates []db.LocationTemplate
	err := s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) (err error) {
		l, err = locationByExternalID(r, q, p, r.PathValue("external_id"))
		if err != nil {
			return err
		}
		templates, err = q.LocationTemplateList(r.Context(), db.LocationTemplateListParams{TenantID: p.TenantID, LocationID: l.ID})
		return err
	})
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, locationView(l, templates))
	return nil
}

var errNoLocation = fault.New(fault.NotFound, "no location with this id")

func locationByExternalID(r *http.Request, q *db.Queries, p principal, ext string) (db.Location, error) {
	if !validExternalID(ext) {
		return db.Location{}, errNoLocation
	}
	l, err := q.LocationGetByExternalID(r.Context(), db.LocationGetByExternalIDParams{TenantID: p.TenantID, ExternalID: ext})
	if db.IsNotFound(err) {
		return db.Location{}, errNoLocation
	}
	return l, err
}

type templateRequest struct {
	Subject *string `json:"subject"`
	Body    string  `json:"body"`
}

// Template limits: an SMS template renders to at most ten segments once
// its placeholders are filled; the margin is theirs.
const (
	maxSMSTemplate   = 1000
	maxEmailTemplate = 20_000
)

// templatePath reads {event}/{channel}, answering 404 for names that are
// not events or channels (there is no such resource).
func templatePath(r *http.Request) (string, string, error) {
	event, channel := r.PathValue("event"), r.PathValue("channel")
	if !notify.IsEvent(event) || !notify.IsChannel(channel) {
		return "", "", fault.New(fault.NotFound, "no such template: events are %s; channels sms, email",
			strings.Join(notify.Events, ", "))
	}
	return event, channel, nil
}

// handleTemplatePut sets a location's own wording for one event on one
// channel. Placeholders are checked now, so a typo is a 422 today rather
// than a broken text at 7 a.m. tomorrow.
func (s *Server) handleTemplatePut(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	event, channel, err := templatePath(r)
	if err != nil {
		return err
	}
	req, err := decode[templateRequest](r)
	if err != nil {
		return err
	}
	problems := map[string]string{}
	body := strings.TrimSpace(req.Body)
	limit := maxSMSTemplate
	if channel == "email" {
		limit = maxEmailTemplate
	}
	switch {
	case body == "" || utf8.RuneCountInString(body) > limit:
		problems["body"] = "required, at most " + strconv.Itoa(limit) + " characters"
	default:
		if err := notify.Validate(body); err != nil {
			problems["body"] = err.Error()
		}
	}
	subject := optional(req.Subject, maxSubject, "subject", problems)
	switch {
	case subject != nil && channel == "sms":
		problems["subject"] = "only email templates have a subject"
	case subject != nil && problems["subject"] == "":
		if err := notify.Validate(*subject); err != nil {
			problems["subject"] = err.Error()
		}
	}
	if len(problems) > 0 {
		return fault.Fields(problems)
	}
	var t db.LocationTemplate
	err = s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) error {
		l, err := locationByExternalID(r, q, p, r.PathValue("external_id"))
		if err != nil {
			return err
		}
		t, err = q.LocationTemplateUpsert(r.Context(), db.LocationTemplateUpsertParams{TenantID: p.TenantID,
			LocationID: l.ID, Event: event, Channel: channel, Subject: subject, Body: body, Now: s.Clock.Now()})
		return err
	})
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, templateJSON{Event: t.Event, Channel: t.Channel, Subject: t.Subject, Body: t.Body, UpdatedAt: t.UpdatedAt})
	return nil
}

// handleTemplateDelete goes back to the built-in wording.
func (s *Server) handleTemplateDelete(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	event, channel, err := templatePath(r)
	if err != nil {
		return err
	}
	err = s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) error {
		l, err := locationByExternalID(r, q, p, r.PathValue("external_id"))
		if err != nil {
			return err
		}
		_, err = q.LocationTemplateDelete(r.Context(), db.LocationTemplateDeleteParams{TenantID: p.TenantID,
			LocationID: l.ID, Event: event, Channel: channel})
		return err
	})
	if err != nil {
		return err
	}
	writeBuiltinTemplate(w, event, channel)
	return nil
}

// handleTemplateGet shows the wording in use for one event on one channel:
// the location's own, or the built-in one.
func (s *Server) handleTemplateGet(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	event, channel, err := templatePath(r)
	if err != nil {
		return err
	}
	var own *db.LocationTemplate
	err = s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) error {
		l, err := locationByExternalID(r, q, p, r.PathValue("external_id"))
		if err != nil {
			return err
		}
		all, err := q.LocationTemplateList(r.Context(), db.LocationTemplateListParams{TenantID: p.TenantID, LocationID: l.ID})
		for i := range all {
			if all[i].Event == event && all[i].Channel == channel {
				own = &all[i]
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	if own != nil {
		encode(w, http.StatusOK, map[string]any{"event": event, "channel": channel, "subject": own.Subject,
			"body": own.Body, "builtin": false})
		return nil
	}
	writeBuiltinTemplate(w, event, channel)
	return nil
}

func writeBuiltinTemplate(w http.ResponseWriter, event, channel string) {
	builtin := notify.Builtin(event, channel)
	var subject *string
	if channel == "email" {
		subject = &builtin.Subject
	}
	encode(w, http.StatusOK, map[string]any{"event": event, "channel": channel, "subject": subject,
		"body": builtin.Body, "builtin": true})
}
