package intake

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/account"
	"github.com/errandhq/errand/internal/fault"
	"github.com/errandhq/errand/internal/normalize"
)

type contactRequest struct {
	Name     string  `json:"name"`
	Phone    *string `json:"phone"`
	Email    *string `json:"email"`
	Timezone *string `json:"timezone"`
	Address  *string `json:"address"`
	Notes    *string `json:"notes"`
}

// contactJSON is a contact as the API shows it. Its id is the external ID
// the tenant chose: Errand's own row ID never leaves.
type contactJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Phone     *string   `json:"phone"`
	Email     *string   `json:"email"`
	Timezone  *string   `json:"timezone"`
	Address   *string   `json:"address"`
	Notes     *string   `json:"notes"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func contactView(c db.Contact) contactJSON {
	return contactJSON{ID: c.ExternalID, Name: c.Name, Phone: c.Phone, Email: c.Email, Timezone: c.Timezone,
		Address: c.Address, Notes: c.Notes, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

// validExternalID accepts what app servers use as IDs: 1–200 printable
// characters.
func validExternalID(id string) bool {
	if id == "" || len(id) > 200 || !utf8.ValidString(id) {
		return false
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// optional trims an optional string field, treating "" as absent, and
// checks its length.
func optional(v *string, max int, field string, problems map[string]string) *string {
	if v == nil {
		return nil
	}
	t := strings.TrimSpace(*v)
	if t == "" {
		return nil
	}
	if utf8.RuneCountInString(t) > max || !utf8.ValidString(t) {
		problems[field] = "at most " + strconv.Itoa(max) + " characters"
	} else if !storable(t) {
		problems[field] = errNUL
	}
	return &t
}

// errNUL explains the one character JSON can carry that PostgreSQL text
// cannot store (which would otherwise fail the request with a 500).
const errNUL = "must not contain the NUL character (\\u0000)"

func storable(s string) bool { return !strings.ContainsRune(s, 0) }

func (s *Server) handleContactPut(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	ext := r.PathValue("external_id")
	if !validExternalID(ext) {
		return fault.Fields(map[string]string{"external_id": "1 to 200 printable characters"})
	}
	req, err := decode[contactRequest](r)
	if err != nil {
		return err
	}
	problems := map[string]string{}
	name := strings.TrimSpace(req.Name)
	if name == "" || utf8.RuneCountInString(name) > 200 {
		problems["name"] = "required, at most 200 characters"
	} else if !storable(name) {
		problems["name"] = errNUL
	}
	phone := optional(req.Phone, 40, "phone", problems)
	if phone != nil && problems["phone"] == "" {
		e164, err := normalize.Phone(*phone, p.Region)
		if err != nil {
			problems["phone"] = err.Error()
		}
		phone = &e164
	}
	email := optional(req.Email, 254, "email", problems)
	if email != nil && problems["email"] == "" {
		norm, err := normalize.Email(*email)
		if err != nil {
			problems["email"] = err.Error()
		}
		email = &norm
	}
	tz := optional(req.Timezone, 64, "timezone", problems)
	if tz != nil {
		if _, err := account.LoadZone(*tz); err != nil {
			problems["timezone"] = err.Error()
		}
	}
	address := optional(req.Address, 500, "address", problems)
	notes := optional(req.Notes, 5000, "notes", problems)
	if len(problems) > 0 {
		return fault.Fields(problems)
	}

	var row db.ContactUpsertRow
	err = s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) error {
		row, err = q.ContactUpsert(r.Context(), db.ContactUpsertParams{
			TenantID: p.TenantID, ExternalID: ext, Name: name, Phone: phone, Email: email, Timezone: tz,
			Address: address, Notes: notes, Now: s.Clock.Now()})
		return err
	})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if row.Inserted {
		status = http.StatusCreated
	}
	encode(w, status, contactView(db.Contact{ID: row.ID, TenantID: row.TenantID, ExternalID: row.ExternalID,
		Name: row.Name, Phone: row.Phone, Email: row.Email, Timezone: row.Timezone, Address: row.Address,
		Notes: row.Notes, CreatedAt: row.CreatedAt, UpdatedAt: row.UpdatedAt}))
	return nil
}

func (s *Server) handleContactGet(w http.ResponseWriter, r *http.Request) error {
	p := tenantOf(r.Context())
	c, err := s.contactByExternalID(r, p, r.PathValue("external_id"))
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, contactView(c))
	return nil
}

var errNoContact = fault.New(fault.NotFound, "no contact with this id")

func (s *Server) contactByExternalID(r *http.Request, p principal, ext string) (db.Contact, error) {
	if !validExternalID(ext) {
		return db.Contact{}, errNoContact
	}
	var c db.Contact
	err := s.Store.InTenant(r.Context(), p.TenantID, func(q *db.Queries) (err error) {
		c, err = q.ContactGetByExternalID(r.Context(), db.ContactGetByExternalIDParams{TenantID: p.TenantID, ExternalID: ext})
		return err
	})
	if db.IsNotFound(err) {
		return db.Contact{}, errNoContact
	}
	return c, err
}

// contactExternalID is the external ID of a row's contact, or nil when the
// row has none or the contact is gone (erased).
func contactExternalID(ctx context.Context, q *db.Queries, tenantID uuid.UUID, contactID *uuid.UUID) (*string, error) {
	if contactID == nil {
		return nil, nil
	}
	c, err := q.ContactGet(ctx, db.ContactGetParams{TenantID: tenantID, ID: *contactID})
	if db.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &c.ExternalID, nil
}

// handleContactMessages pages through one contact's messages, newest
// first: the message log with each message's delivery status.
func (s *Server) handleContactMessages(w http.ResponseWriter, r *http.Request) error {
	ext := r.PathValue("external_id")
	if !validExternalID(ext) {
		return errNoContact
	}
	return list(s, w, r, "messages", newestFirst,
		func(ctx context.Context, q *db.Queries, tenant uuid.UUID, pg page) ([]db.Message, error) {
			c, err := q.ContactGetByExternalID(ctx, db.ContactGetByExternalIDParams{TenantID: tenant, ExternalID: ext})
			if db.IsNotFound(err) {
				return nil, errNoContact
			}
			if err != nil {
				return nil, err
			}
			return q.MessageListForContact(ctx, db.MessageListForContactParams{TenantID: tenant, ContactID: &c.ID,
				BeforeAt: pg.At, BeforeID: pg.ID, MaxRows: pg.fetch()})
		},
		func(x db.Message) (time.Time, uuid.UUID) { return x.CreatedAt, x.ID },
		func(x db.Message) messageJSON { return messageView(x, &ext) })
}
