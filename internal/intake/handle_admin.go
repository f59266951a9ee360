package intake

import (
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/account"
	"github.com/errandhq/errand/internal/fault"
)

type tenantCreateRequest struct {
	Name          string `json:"name"`
	Timezone      string `json:"timezone"`
	DefaultRegion string `json:"default_region"`
}

type tenantJSON struct {
	ID            string    `json:"id"`
	Name          string    `json:"name"`
	Timezone      string    `json:"timezone"`
	DefaultRegion string    `json:"default_region"`
	Status        string    `json:"status"`
	OwnerEmail    *string   `json:"owner_email"`
	CreatedAt     time.Time `json:"created_at"`
	APIKey        *string   `json:"api_key,omitempty"`
}

func tenantView(t db.Tenant) tenantJSON {
	return tenantJSON{ID: t.ID.String(), Name: t.Name, Timezone: t.Timezone, DefaultRegion: t.DefaultRegion,
		Status: t.Status, OwnerEmail: t.OwnerEmail, CreatedAt: t.CreatedAt}
}

func (s *Server) handleTenantCreate(w http.ResponseWriter, r *http.Request) error {
	req, err := decode[tenantCreateRequest](r)
	if err != nil {
		return err
	}
	t, key, err := s.accounts.CreateTenant(r.Context(), account.NewTenant{
		Name: req.Name, Timezone: req.Timezone, DefaultRegion: req.DefaultRegion}, s.actor(r, "admin"))
	if err != nil {
		return err
	}
	out := tenantView(t)
	out.APIKey = &key
	redactOnReplay(r, "api_key")
	encode(w, http.StatusCreated, out)
	return nil
}

func (s *Server) handleTenantGet(w http.ResponseWriter, r *http.Request) error {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return fault.New(fault.NotFound, "no such tenant")
	}
	t, err := s.Store.Q().TenantGet(r.Context(), id)
	if db.IsNotFound(err) {
		return fault.New(fault.NotFound, "no such tenant")
	}
	if err != nil {
		return err
	}
	encode(w, http.StatusOK, tenantView(t))
	return nil
}

func (s *Server) handleAPIKeyCreate(w http.ResponseWriter, r *http.Request) error {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return fault.New(fault.NotFound, "no such tenant")
	}
	key, err := s.accounts.IssueKey(r.Context(), id, s.actor(r, "admin"))
	if err != nil {
		return err
	}
	redactOnReplay(r, "api_key")
	encode(w, http.StatusCreated, map[string]string{"api_key": key.Plain, "prefix": key.Prefix})
	return nil
}

func (s *Server) handleAPIKeyRevoke(w http.ResponseWriter, r *http.Request) error {
	k, err := s.accounts.RevokeKey(r.Context(), r.PathValue("prefix"), s.actor(r, "admin"))
	if err != nil {
		return err
	}
	s.keys.forget(k.Prefix)
	encode(w, http.StatusOK, map[string]any{"prefix": k.Prefix, "tenant_id": k.TenantID.String(), "revoked_at": k.RevokedAt})
	return nil
}

type securityEventJSON struct {
	ID         int64      `json:"id,string"` // IDs are opaque strings (API.md)
	OccurredAt time.Time  `json:"occurred_at"`
	TenantID   *uuid.UUID `json:"tenant_id"`
	Kind       string     `json:"kind"`
	Actor      string     `json:"actor"`
	RemoteAddr string     `json:"remote_addr"`
	RequestID  string     `json:"request_id"`
	Detail     any        `json:"detail"`
}

// handleSecurityEvents lists the security log, newest first, 100 a page;
// ?before=<id> pages back, ?tenant_id= and ?kind= filter.
func (s *Server) handleSecurityEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	params := db.SecurityEventListParams{BeforeID: 1<<62 - 1, MaxRows: 100}
	problems := map[string]string{}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			problems["before"] = "must be an event id"
		}
		params.BeforeID = n
	}
	if v := q.Get("tenant_id"); v != "" {
		id, err := uuid.Parse(v)
		if err != nil {
			problems["tenant_id"] = "must be a tenant id"
		}
		params.TenantID = &id
	}
	if v := q.Get("kind"); v != "" {
		params.Kind = &v
	}
	if len(problems) > 0 {
		return fault.Fields(problems)
	}
	rows, err := s.Store.Q().SecurityEventList(r.Context(), params)
	if err != nil {
		return err
	}
	out := make([]securityEventJSON, len(rows))
	for i, e := range rows {
		out[i] = securityEventJSON{ID: e.ID, OccurredAt: e.OccurredAt, TenantID: e.TenantID, Kind: e.Kind,
			Actor: e.Actor, RemoteAddr: e.RemoteAddr, RequestID: e.RequestID, Detail: e.Detail}
	}
	encode(w, http.StatusOK, map[string]any{"events": out})
	return nil
}
