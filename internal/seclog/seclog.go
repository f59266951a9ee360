// Package seclog writes the security log: authentication failures, API key
// creation, rotation and revocation, admin actions and console logins. The
// log is kept one year. It records who and what (tenant, key prefix,
// remote address, request ID), never a secret and never a customer's data.
package seclog

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/google/uuid"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/clock"
)

// Event kinds.
const (
	AuthFailed      = "auth_failed"
	AdminAuthFailed = "admin_auth_failed"
	TenantCreated   = "tenant_created"
	KeyCreated      = "api_key_created"
	KeyRevoked      = "api_key_revoked"
	ConsoleLogin    = "console_login"
	ConsoleLoginBad = "console_login_failed"
	ConsoleLogout   = "console_logout"
	AdminAction     = "admin_action"
)

// Event is one entry.
type Event struct {
	Kind       string
	TenantID   *uuid.UUID
	Actor      string // "admin", "api_key:<prefix>", "console", "cli"
	RemoteAddr string
	RequestID  string
	Detail     map[string]any
}

// Log writes events.
type Log struct {
	Store  *db.Store
	Clock  clock.Clock
	Logger *slog.Logger
}

// Record writes e. A failure to write is logged, not returned: refusing a
// request because its refusal could not be logged would help no one.
func (l *Log) Record(ctx context.Context, e Event) {
	detail := []byte("{}")
	if len(e.Detail) > 0 {
		detail, _ = json.Marshal(e.Detail)
	}
	err := l.Store.Q().SecurityEventRecord(ctx, db.SecurityEventRecordParams{
		OccurredAt: l.Clock.Now(), TenantID: e.TenantID, Kind: e.Kind, Actor: e.Actor,
		RemoteAddr: e.RemoteAddr, RequestID: e.RequestID, Detail: detail,
	})
	if err != nil {
		l.Logger.ErrorContext(ctx, "could not write security event", "kind", e.Kind, "err", err)
	}
}
