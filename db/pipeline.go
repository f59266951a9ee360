package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The hot paths (a message's intake, claim and record) are dominated by
// round trips to PostgreSQL, not by work: on a busy machine each costs two
// context switches and a wake-up of a backend. The helpers here keep the
// guarantees of InTenant — one transaction, scoped by row-level security,
// committed (synchronously unless asked otherwise) before they return —
// while sending statements together with pgx's pipelined batches.

// InTenantPipelined is InTenant with fewer round trips: BEGIN and the
// tenant scope travel with the transaction's first query, and statements
// of sqlc's :exec kind (whose only result is an error) are held back and
// sent with the next query or with the COMMIT. Their errors therefore
// surface from a later call or from the commit, still before this returns,
// and still rolling the whole transaction back. Everything else (:one,
// :many, :execrows, raw SQL) runs when called, as in InTenant.
func (s *Store) InTenantPipelined(ctx context.Context, tenantID uuid.UUID, fn func(q *Queries) error) error {
	return s.pipelined(ctx, tenantID, false, fn)
}

// InTenantPipelinedUnsynced is InTenantPipelined whose commit does not wait
// for the write-ahead log to reach disk, with InTenantUnsynced's rules:
// only for a write a crash may lose because the next attempt repairs it.
// A transaction of :exec statements alone is one round trip.
func (s *Store) InTenantPipelinedUnsynced(ctx context.Context, tenantID uuid.UUID, fn func(q *Queries) error) error {
	return s.pipelined(ctx, tenantID, true, fn)
}

func (s *Store) pipelined(ctx context.Context, tenantID uuid.UUID, unsynced bool, fn func(q *Queries) error) (err error) {
	conn, err := s.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	// A connection left inside a transaction (an error, a cancelled
	// context) is closed by the pool on release, never reused.
	defer conn.Release()
	tx := &pipeTx{conn: conn}
	tx.hold("BEGIN")
	tx.hold("SELECT set_config('errand.tenant_id', $1, true)", tenantID.String())
	if unsynced {
		tx.hold("SELECT set_config('synchronous_commit', 'off', true)")
	}
	defer func() {
		if err != nil {
			tx.rollback()
		}
	}()
	if err := fn(New(tx)); err != nil {
		return err
	}
	if tx.err != nil {
		return tx.err
	}
	tag, err := tx.send(ctx, "COMMIT")
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if tag.String() != "COMMIT" {
		return fmt.Errorf("commit: %w", pgx.ErrTxCommitRollback)
	}
	return nil
}

type heldStatement struct {
	sql  string
	args []any
}

// pipeTx is the DBTX of a pipelined transaction.
type pipeTx struct {
	conn *pgxpool.Conn
	held []heldStatement
	sent bool  // BEGIN has reached the server
	err  error // a held statement failed: the transaction is lost
}

func (t *pipeTx) hold(sql string, args ...any) { t.held = append(t.held, heldStatement{sql, args}) }

// deferrable reports whether sql is a sqlc query whose only result is an
// error: "-- name: X :exec" (not :execrows or :execresult).
func deferrable(sql string) bool {
	first, _, _ := strings.Cut(sql, "\n")
	return strings.HasPrefix(first, "-- name: ") && strings.HasSuffix(strings.TrimSpace(first), " :exec")
}

// send sends the held statements and then sql (an Exec) in one round trip
// and returns sql's command tag.
func (t *pipeTx) send(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	b := t.batch()
	b.Queue(sql, args...)
	br := t.conn.SendBatch(ctx, b)
	if err := t.heldResults(br); err != nil {
		br.Close()
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.err = err
	}
	return tag, err
}

func (t *pipeTx) batch() *pgx.Batch {
	b := &pgx.Batch{}
	for _, h := range t.held {
		b.Queue(h.sql, h.args...)
	}
	t.sent = true
	return b
}

// heldResults reads the held statements' results off br.
func (t *pipeTx) heldResults(br pgx.BatchResults) error {
	held := t.held
	t.held = nil
	for range held {
		if _, err := br.Exec(); err != nil {
			t.err = err
			return err
		}
	}
	return nil
}

func (t *pipeTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.err != nil {
		return pgconn.CommandTag{}, t.err
	}
	if deferrable(sql) {
		t.hold(sql, args...)
		return pgconn.CommandTag{}, nil
	}
	return t.send(ctx, sql, args...)
}

func (t *pipeTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if t.err != nil {
		return nil, t.err
	}
	if len(t.held) > 0 {
		// Rare (no hot path reads many rows): flush, then query.
		if _, err := t.send(ctx, "SELECT 1"); err != nil {
			return nil, err
		}
	}
	return t.conn.Query(ctx, sql, args...)
}

func (t *pipeTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if t.err != nil {
		return errRow{t.err}
	}
	if len(t.held) == 0 {
		return t.conn.QueryRow(ctx, sql, args...)
	}
	b := t.batch()
	b.Queue(sql, args...)
	br := t.conn.SendBatch(ctx, b)
	if err := t.heldResults(br); err != nil {
		br.Close()
		return errRow{err}
	}
	return &batchRow{tx: t, br: br}
}

func (t *pipeTx) rollback() {
	if !t.sent || t.conn.Conn().PgConn().TxStatus() == 'I' {
		return
	}
	// A fresh context: the caller's may be the reason for the rollback.
	ctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
	defer cancel()
	t.conn.Exec(ctx, "ROLLBACK") //nolint:errcheck // if it fails the pool closes the connection
}

// batchRow is the last query of a batch: scanning it closes the batch.
type batchRow struct {
	tx *pipeTx
	br pgx.BatchResults
}

func (r *batchRow) Scan(dest ...any) error {
	err := r.br.QueryRow().Scan(dest...)
	cerr := r.br.Close()
	if err == nil {
		err = cerr
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		r.tx.err = err
	}
	return err
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

const rollbackTimeout = 5 * time.Second

// InTenantOne runs fn, which makes exactly one query, as a transaction of
// its own in a single round trip: the tenant scope and the statement are
// sent together without BEGIN, so PostgreSQL runs them as one implicit
// transaction and commits it (synchronously) before answering; the commit's
// outcome is part of the statement's result, so a caller that got a row
// back holds a durable row. A second query in fn is refused.
func (s *Store) InTenantOne(ctx context.Context, tenantID uuid.UUID, fn func(q *Queries) error) error {
	conn, err := s.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire: %w", err)
	}
	defer conn.Release()
	return fn(New(&oneTx{conn: conn, tenant: tenantID.String()}))
}

var errSecondStatement = errors.New("db: InTenantOne runs one statement")

// oneTx is the DBTX of InTenantOne.
type oneTx struct {
	conn   *pgxpool.Conn
	tenant string
	used   bool
}

func (t *oneTx) start(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	if t.used {
		return nil, errSecondStatement
	}
	t.used = true
	b := &pgx.Batch{}
	b.Queue("SELECT set_config('errand.tenant_id', $1, true)", t.tenant)
	b.Queue(sql, args...)
	br := t.conn.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return nil, err
	}
	return br, nil
}

func (t *oneTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	br, err := t.start(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

func (t *oneTx) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, errors.New("db: InTenantOne runs no multi-row query")
}

func (t *oneTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	br, err := t.start(ctx, sql, args)
	if err != nil {
		return errRow{err}
	}
	return oneRow{br}
}

// oneRow is the statement's row; scanning it reads the commit's outcome.
type oneRow struct{ br pgx.BatchResults }

func (r oneRow) Scan(dest ...any) error {
	err := r.br.QueryRow().Scan(dest...)
	if cerr := r.br.Close(); err == nil || errors.Is(err, pgx.ErrNoRows) && cerr != nil {
		err = cerr
	}
	return err
}
