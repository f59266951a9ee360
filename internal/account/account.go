// Package account creates tenants and manages their API keys, for the admin
// API, the `errand tenant` command and `errand dev`. A key's plain text
// leaves this package once, in the return value of the call that made it;
// only its hash is stored.
package account

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/apikey"
	"github.com/errandhq/errand/internal/clock"
	"github.com/errandhq/errand/internal/fault"
	"github.com/errandhq/errand/internal/normalize"
	"github.com/errandhq/errand/internal/seclog"
)

// Service creates tenants and keys.
type Service struct {
	Store  *db.Store
	Clock  clock.Clock
	SecLog *seclog.Log
}

// NewTenant is what creating a tenant needs.
type NewTenant struct {
	Name          string
	Timezone      string
	DefaultRegion string // ISO 3166 region for phones without a country code; "" = US
}

// Valid returns each problem by field name.
func (n NewTenant) Valid() map[string]string {
	p := map[string]string{}
	if strings.TrimSpace(n.Name) == "" || len(n.Name) > 200 {
		p["name"] = "required, at most 200 characters"
	} else if strings.ContainsRune(n.Name, 0) {
		p["name"] = "must not contain the NUL character (\\u0000)"
	}
	if _, err := LoadZone(n.Timezone); err != nil {
		p["timezone"] = err.Error()
	}
	if n.DefaultRegion != "" && !normalize.Region(n.DefaultRegion) {
		p["default_region"] = "not a known ISO 3166 region code"
	}
	return p
}

// LoadZone loads an IANA time zone name, refusing the empty name and
// "Local" (which would mean the server's zone).
func LoadZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, errors.New("required: an IANA time zone such as America/Chicago")
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, errors.New("not a known IANA time zone")
	}
	return loc, nil
}

// CreateTenant creates a tenant and its first key, returning the key's
// plain text, which is never available again.
func (s *Service) CreateTenant(ctx context.Context, n NewTenant, actor seclog.Event) (db.Tenant, string, error) {
	if p := n.Valid(); len(p) > 0 {
		return db.Tenant{}, "", fault.Fields(p)
	}
	region := strings.ToUpper(n.DefaultRegion)
	if region == "" {
		region = "US"
	}
	var tenant db.Tenant
	var key apikey.Key
	err := s.Store.Tx(ctx, func(q *db.Queries) error {
		var err error
		tenant, err = q.TenantCreate(ctx, db.TenantCreateParams{
			Name: strings.TrimSpace(n.Name), Timezone: n.Timezone, DefaultRegion: region, Now: s.Clock.Now()})
		if err != nil {
			return fmt.Errorf("create tenant: %w", err)
		}
		key, err = insertKey(ctx, q, tenant.ID, s.Clock.Now())
		return err
	})
	if err != nil {
		return db.Tenant{}, "", err
	}
	ev := actor
	ev.Kind, ev.TenantID = seclog.TenantCreated, &tenant.ID
	ev.Detail = map[string]any{"key_prefix": key.Prefix}
	s.SecLog.Record(ctx, ev)
	return tenant, key.Plain, nil
}

// IssueKey adds a key to a tenant (rotation: older keys keep working until
// revoked).
func (s *Service) IssueKey(ctx context.Context, tenantID uuid.UUID, actor seclog.Event) (apikey.Key, error) {
	var key apikey.Key
	err := s.Store.Tx(ctx, func(q *db.Queries) error {
		if _, err := q.TenantGet(ctx, tenantID); err != nil {
			if db.IsNotFound(err) {
				return fault.New(fault.NotFound, "no such tenant")
			}
			return err
		}
		var err error
		key, err = insertKey(ctx, q, tenantID, s.Clock.Now())
		return err
	})
	if err != nil {
		return apikey.Key{}, err
	}
	ev := actor
	ev.Kind, ev.TenantID = seclog.KeyCreated, &tenantID
	ev.Detail = map[string]any{"key_prefix": key.Prefix}
	s.SecLog.Record(ctx, ev)
	return key, nil
}

// RevokeKey revokes the key with this prefix.
func (s *Service) RevokeKey(ctx context.Context, prefix string, actor seclog.Event) (db.ApiKey, error) {
	k, err := s.Store.Q().APIKeyRevoke(ctx, db.APIKeyRevokeParams{Prefix: prefix, Now: s.Clock.Now()})
	if db.IsNotFound(err) {
		return db.ApiKey{}, fault.New(fault.NotFound, "no live API key with this prefix")
	}
	if err != nil {
		return db.ApiKey{}, fmt.Errorf("revoke key: %w", err)
	}
	ev := actor
	ev.Kind, ev.TenantID = seclog.KeyRevoked, &k.TenantID
	ev.Detail = map[string]any{"key_prefix": k.Prefix}
	s.SecLog.Record(ctx, ev)
	return k, nil
}

func insertKey(ctx context.Context, q *db.Queries, tenantID uuid.UUID, now time.Time) (apikey.Key, error) {
	for range 3 {
		key := apikey.New()
		_, err := q.APIKeyCreate(ctx, db.APIKeyCreateParams{TenantID: tenantID, Prefix: key.Prefix, KeyHash: key.Hash, Now: now})
		if err == nil {
			return key, nil
		}
		if !db.IsUniqueViolation(err) {
			return apikey.Key{}, fmt.Errorf("create key: %w", err)
		}
	}
	return apikey.Key{}, errors.New("create key: could not find a free prefix")
}
