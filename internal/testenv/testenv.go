// Package testenv gives every test package its own PostgreSQL database
// (migrated by its owner, reached by the application as AppLogin, a login
// role that is neither superuser nor owner, so row-level security applies
// and cannot be escaped) and its own Redis database, leased so that
// concurrent `go test` processes never share one. It is for tests only. When a service is not
// answering it fails the run and says how to start it; it never skips.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/errandhq/errand/db"
)

// Redis databases 1..13 are handed out to test packages; 0 is left for
// `make dev` and 14 for `errand bench`.
const firstRedisDB, lastRedisDB = 1, 13

// AppLogin is the login role tests connect the application as: a member
// of db.AppRole (so it has the application's privileges and no more), not
// a superuser, owning nothing. Roles are the cluster's, so every test
// process shares it; it has no password (the test server trusts loopback).
const AppLogin = "errand_test_app"

type environment struct {
	serverURL   string // postgres server, any database
	databaseURL string // this package's database, as its owner
	appURL      string // this package's database, as AppLogin
	dbName      string
	redisAddr   string
	redisDB     int
	leaseKey    string
	leaseVal    string
	stopLease   chan struct{}
}

var (
	envMu sync.Mutex
	env   *environment
)

// Main sets up the package's databases, runs the tests and tears down.
func Main(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	e, err := setUp(ctx)
	cancel()
	if err != nil {
		return 0, err
	}
	envMu.Lock()
	env = e
	envMu.Unlock()
	code := m.Run()
	tearDown(e)
	return code, nil
}

func setUp(ctx context.Context) (*environment, error) {
	e := &environment{
		serverURL: getenv("ERRAND_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"),
		redisAddr: getenv("ERRAND_TEST_REDIS_ADDR", "127.0.0.1:6379"),
	}
	admin, err := pgx.Connect(ctx, e.serverURL)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL is not answering at %s (%v); `make test` starts it, or run `make services`", redact(e.serverURL), err)
	}
	defer admin.Close(ctx)
	dropStaleDatabases(ctx, admin)

	e.dbName = databaseName()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{e.dbName}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create test database: %w", err)
	}
	u, _ := url.Parse(e.serverURL)
	u.Path = "/" + e.dbName
	e.databaseURL = u.String()
	mig, err := db.NewMigrator(e.databaseURL)
	if err != nil {
		return nil, err
	}
	defer mig.Close()
	if err := mig.Up(ctx, io.Discard); err != nil {
		return nil, err
	}
	if err := ensureAppLogin(ctx, admin); err != nil {
		return nil, err
	}
	u.User = url.User(AppLogin)
	e.appURL = u.String()
	if err := e.leaseRedis(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// ensureAppLogin creates AppLogin when it is missing, and makes sure it
// can log in, inherits db.AppRole's privileges and has no others. Test
// processes run this at once, so they take turns under an advisory lock
// (the admin connection's database is the same for all of them).
func ensureAppLogin(ctx context.Context, admin *pgx.Conn) error {
	tx, err := admin.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit this is a no-op
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('errand testenv app login'))"); err != nil {
		return err
	}
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", AppLogin).Scan(&exists); err != nil {
		return err
	}
	login, app := pgx.Identifier{AppLogin}.Sanitize(), pgx.Identifier{db.AppRole}.Sanitize()
	verb := "ALTER"
	if !exists {
		verb = "CREATE"
	}
	for _, stmt := range []string{
		verb + " ROLE " + login + " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION INHERIT",
		"GRANT " + app + " TO " + login,
	} {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("application login role: %s: %w", stmt, err)
		}
	}
	return tx.Commit(ctx)
}

func tearDown(e *environment) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	close(e.stopLease)
	rdb := redis.NewClient(&redis.Options{Addr: e.redisAddr, DB: e.redisDB})
	rdb.FlushDB(ctx)
	rdb.Close()
	lease := redis.NewClient(&redis.Options{Addr: e.redisAddr})
	if v, _ := lease.Get(ctx, e.leaseKey).Result(); v == e.leaseVal {
		lease.Del(ctx, e.leaseKey)
	}
	lease.Close()
	if os.Getenv("ERRAND_TEST_KEEP_DB") != "" {
		fmt.Fprintf(os.Stderr, "testenv: kept database %s\n", e.dbName)
		return
	}
	if admin, err := pgx.Connect(ctx, e.serverURL); err == nil {
		admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{e.dbName}.Sanitize()+" WITH (FORCE)")
		admin.Close(ctx)
	}
}

// leaseRedis takes a Redis database no other test process holds. The lease
// is a key in database 0 that this process keeps alive while it runs.
func (e *environment) leaseRedis(ctx context.Context) error {
	lease := redis.NewClient(&redis.Options{Addr: e.redisAddr})
	defer lease.Close()
	if err := lease.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis is not answering at %s (%v); `make test` starts it, or run `make services`", e.redisAddr, err)
	}
	e.leaseVal = strconv.Itoa(os.Getpid()) + ":" + e.dbName
	for {
		for n := firstRedisDB; n <= lastRedisDB; n++ {
			key := "errand:test:lease:" + strconv.Itoa(n)
			ok, err := lease.SetNX(ctx, key, e.leaseVal, time.Minute).Result()
			if err != nil {
				return fmt.Errorf("lease redis db: %w", err)
			}
			if ok {
				e.redisDB, e.leaseKey = n, key
				rdb := redis.NewClient(&redis.Options{Addr: e.redisAddr, DB: n})
				defer rdb.Close()
				if err := rdb.FlushDB(ctx).Err(); err != nil {
					return fmt.Errorf("flush leased redis db: %w", err)
				}
				e.stopLease = make(chan struct{})
				go e.keepLease()
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no free redis database among %d..%d: %w", firstRedisDB, lastRedisDB, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (e *environment) keepLease() {
	lease := redis.NewClient(&redis.Options{Addr: e.redisAddr})
	defer lease.Close()
	t := time.NewTicker(15 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-e.stopLease:
			return
		case <-t.C:
			lease.Expire(context.Background(), e.leaseKey, time.Minute)
		}
	}
}

var nameRe = regexp.MustCompile(`[^a-z0-9]+`)

// databaseName is unique per test process: errand_t_<pid>_<package>_<hash of dir>.
func databaseName() string {
	wd, _ := os.Getwd()
	sum := sha256.Sum256([]byte(wd))
	base := nameRe.ReplaceAllString(strings.ToLower(filepath.Base(wd)), "")
	if len(base) > 20 {
		base = base[:20]
	}
	return fmt.Sprintf("errand_t_%d_%s_%s", os.Getpid(), base, hex.EncodeToString(sum[:3]))
}

// dropStaleDatabases removes databases left behind by test processes that
// were killed before they could clean up.
func dropStaleDatabases(ctx context.Context, admin *pgx.Conn) {
	rows, err := admin.Query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE 'errand\\_t\\_%'")
	if err != nil {
		return
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, name := range names {
		parts := strings.SplitN(name, "_", 4)
		if len(parts) < 4 {
			continue
		}
		pid, err := strconv.Atoi(parts[2])
		if err != nil || processAlive(pid) {
			continue
		}
		admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}

func current(t testing.TB) *environment {
	t.Helper()
	envMu.Lock()
	defer envMu.Unlock()
	if env == nil {
		t.Fatal("testenv: call testenv.Main(m) from this package's TestMain")
	}
	return env
}

// DatabaseURL is the package database's URL as its owner (a superuser):
// what `errand migrate` and `errand dev` connect with.
func DatabaseURL(t testing.TB) string { return current(t).databaseURL }

// AppURL is the package database's URL as AppLogin, neither superuser nor
// owner: what a production role's DATABASE_URL is.
func AppURL(t testing.TB) string { return current(t).appURL }

// RedisURL is the package's Redis database as a REDIS_URL.
func RedisURL(t testing.TB) string {
	e := current(t)
	return fmt.Sprintf("redis://%s/%d", e.redisAddr, e.redisDB)
}

// RedisOpt is the package's Redis database for asynq.
func RedisOpt(t testing.TB) asynq.RedisClientOpt {
	e := current(t)
	return asynq.RedisClientOpt{Addr: e.redisAddr, DB: e.redisDB}
}

// Redis returns a client of the package's Redis database, closed when the
// test ends.
func Redis(t testing.TB) *redis.Client {
	e := current(t)
	c := redis.NewClient(&redis.Options{Addr: e.redisAddr, DB: e.redisDB})
	t.Cleanup(func() { c.Close() })
	return c
}

// Store opens a pool on the package database that logs in as AppLogin,
// as production does; it is closed when the test ends.
func Store(t testing.TB) *db.Store {
	t.Helper()
	s, err := db.Open(context.Background(), AppURL(t), db.AppRole, 10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// resetTables are emptied by Reset: tenants (and through its foreign keys
// everything a tenant owns), the tables that belong to no tenant, and the
// opt-out records, which outlive their tenant on purpose (and include the
// shared number's, db.SharedNumberTenant).
var resetTables = []string{"tenants", "idempotency_keys", "security_events", "console_sessions", "notices", "webhook_receipts",
	"suppressions", "suppression_events"}

// Reset empties the package database's data (not its schema), so a test
// that scans across tenants sees only its own rows. Tests of a package run
// one at a time when they use it.
func Reset(t testing.TB) {
	t.Helper()
	c := Owner(t)
	if _, err := c.Exec(context.Background(), "TRUNCATE "+strings.Join(resetTables, ", ")+" CASCADE"); err != nil {
		t.Fatal(err)
	}
}

// Owner opens a plain connection as the schema owner, for assertions that
// must see past row-level security (e.g. "nothing of this person is left").
func Owner(t testing.TB) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func getenv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the configured URL"
	}
	return u.Redacted()
}
