package db

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// AppRole is the role the application runs as: not a superuser, not the
// owner of any table, so row-level security applies to it.
const AppRole = "errand_app"

// Store is the application's handle on PostgreSQL. Tenant data is only
// reachable through InTenant (row-level security sees that tenant alone)
// or AsSystem (an explicit, greppable cross-tenant scan).
type Store struct {
	Pool *pgxpool.Pool
}

// Open connects a pool to databaseURL. Production logs in as a role that
// is neither superuser nor owner (a member of AppRole), and the pool uses
// it as it is. As a development convenience, when the URL's user is
// privileged (a superuser, allowed to bypass row-level security, or owner
// of a table in the schema) and role is not empty, every connection
// switches to role, so queries still run under row-level security — but a
// RESET ROLE would escape it, which a real unprivileged login cannot.
func Open(ctx context.Context, databaseURL, role string, maxConns int32) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "errand"
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		// Times come back in UTC, as they are stored and shown.
		conn.TypeMap().RegisterType(&pgtype.Type{Name: "timestamptz", OID: pgtype.TimestamptzOID,
			Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC}})
		if role == "" {
			return nil
		}
		var privileged bool
		if err := conn.QueryRow(ctx, privilegedLoginSQL).Scan(&privileged); err != nil {
			return fmt.Errorf("inspect login role: %w", err)
		}
		if !privileged {
			return nil
		}
		_, err := conn.Exec(ctx, "SET ROLE "+pgx.Identifier{role}.Sanitize())
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	return &Store{Pool: pool}, nil
}

// privilegedLoginSQL is true when the session's login role would not be
// held by row-level security: a superuser, a role with BYPASSRLS, or the
// owner of a table in the schema (or a member inheriting an owner's rights).
const privilegedLoginSQL = `SELECT r.rolsuper OR r.rolbypassrls OR EXISTS (
    SELECT FROM pg_tables t WHERE t.schemaname = current_schema() AND pg_has_role(r.oid, t.tableowner, 'USAGE'))
FROM pg_roles r WHERE r.rolname = session_user`

// Close closes the pool.
func (s *Store) Close() { s.Pool.Close() }

// Q runs queries on tables that are not tenant-scoped (tenants, api_keys,
// idempotency_keys, security_events, console_sessions).
func (s *Store) Q() *Queries { return New(s.Pool) }

// Tx runs fn in a transaction on tables that are not tenant-scoped.
func (s *Store) Tx(ctx context.Context, fn func(q *Queries) error) error {
	return s.inTx(ctx, "errand.scope", "", fn)
}

// InTenant runs fn in a transaction that can see only tenantID's rows.
func (s *Store) InTenant(ctx context.Context, tenantID uuid.UUID, fn func(q *Queries) error) error {
	return s.inTx(ctx, "errand.tenant_id", tenantID.String(), fn)
}

// InTenantTx is InTenant for raw SQL that sqlc cannot express (COPY … TO
// STDOUT, server-side cursors): fn gets the pgx transaction itself, begun
// with opts (e.g. a read-only repeatable-read snapshot) and scoped to
// tenantID, so row-level security applies exactly as in InTenant.
func (s *Store) InTenantTx(ctx context.Context, tenantID uuid.UUID, opts pgx.TxOptions, fn func(tx pgx.Tx) error) error {
	tx, err := s.Pool.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit this is a no-op
	if _, err := tx.Exec(ctx, "SELECT set_config('errand.tenant_id', $1, true)", tenantID.String()); err != nil {
		return fmt.Errorf("scope transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// InTenantUnsynced is InTenant for a write that a crash may lose without
// harm, because the next attempt repairs it: its commit does not wait for
// the write-ahead log to reach disk (synchronous_commit = off for this
// transaction only). A message recorded as sent is one: if the record is
// lost, the row still says 'sending', and the next attempt finds the
// message at the provider instead of sending it again. Never use it for
// what a caller was promised (an accepted request) or for a claim that
// must precede a provider call.
func (s *Store) InTenantUnsynced(ctx context.Context, tenantID uuid.UUID, fn func(q *Queries) error) error {
	return s.begin(ctx, "BEGIN; SELECT set_config('errand.tenant_id', '"+tenantID.String()+"', true); "+
		"SET LOCAL synchronous_commit = off", fn)
}

// AsSystem runs fn in a transaction that sees every tenant's rows. Only the
// dispatcher, retention sweeps and similar cross-tenant jobs use it.
func (s *Store) AsSystem(ctx context.Context, fn func(q *Queries) error) error {
	return s.inTx(ctx, "errand.scope", "system", fn)
}

// AsSystemTx is AsSystem for raw SQL that sqlc cannot express (the
// table-driven retention sweep): fn gets the pgx transaction itself.
func (s *Store) AsSystemTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := s.Pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: "BEGIN; SELECT set_config('errand.scope', 'system', true)"})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit this is a no-op
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// inTx runs fn in a transaction scoped by setting = value. The scope is
// set by the statement that begins the transaction (one round trip, not
// two); setting and value come from this file only (a constant name, and
// a UUID or a constant), never from a request, so they are safe to inline.
func (s *Store) inTx(ctx context.Context, setting, value string, fn func(q *Queries) error) error {
	return s.begin(ctx, "BEGIN; SELECT set_config('"+setting+"', '"+value+"', true)", fn)
}

// begin runs fn in a transaction opened by beginSQL.
func (s *Store) begin(ctx context.Context, beginSQL string, fn func(q *Queries) error) error {
	tx, err := s.Pool.BeginTx(ctx, pgx.TxOptions{BeginQuery: beginSQL})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit this is a no-op
	if err := fn(New(tx)); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// IsNotFound reports whether err means a query matched no row.
func IsNotFound(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// IsUniqueViolation reports whether err is a unique-constraint violation.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// IsCheckViolation reports whether err is a check-constraint violation
// (a CHECK, or a trigger raising check_violation).
func IsCheckViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23514"
}

// EnsureDatabase creates the database named in databaseURL when it does not
// exist, connecting to the server's "postgres" database to do so.
func EnsureDatabase(ctx context.Context, databaseURL string) error {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" {
		return errors.New("DATABASE_URL names no database")
	}
	admin := *u
	admin.Path = "/postgres"
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database: %w", err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	if err != nil && !isDuplicateDatabase(err) {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

func isDuplicateDatabase(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "42P04" || pgErr.Code == "23505")
}
