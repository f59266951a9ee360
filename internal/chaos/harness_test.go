package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/internal/notify"
)

// The errand binary under test, built once per run.
var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

func errandBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "errand-chaos-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "errand")
		out, err := exec.Command("go", "build", "-o", binary, "github.com/errandhq/errand/cmd/errand").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binary
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// logBuffer collects a process's output for the test to read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a child process that can be killed and restarted.
type proc struct {
	t    *testing.T
	name string
	args []string
	env  []string
	cmd  *exec.Cmd
	out  *logBuffer
	done chan struct{}
}

func startProc(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, args: append([]string{bin}, args...), env: env, out: &logBuffer{}}
	p.start()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.args[0], p.args[1:]...)
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	require.NoError(p.t, p.cmd.Start(), p.name)
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		cmd.Wait()
		close(done)
	}(p.cmd, p.done)
}

// kill sends SIGKILL: no shutdown, no cleanup, as a crash or an OOM kill.
func (p *proc) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(40 * time.Second):
		p.kill()
		return fmt.Errorf("%s did not stop on SIGTERM", p.name)
	}
}

// redisServer is a private Redis without persistence, so a fault injected
// into it (FLUSHALL, a restart, DEBUG SLEEP) touches nothing else.
type redisServer struct {
	port int
	proc *proc
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	return startRedisWith(t, "--enable-debug-command", "yes")
}

// startRedisWith starts a private Redis that keeps nothing on disk outside
// the test's temporary directory, with extra arguments.
func startRedisWith(t *testing.T, extra ...string) *redisServer {
	t.Helper()
	r := &redisServer{port: freePort(t)}
	args := append([]string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir()}, extra...)
	r.proc = startProc(t, "redis", nil, "redis-server", args...)
	r.wait(t)
	return r
}

func (r *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *redisServer) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port)})
}

func (r *redisServer) wait(t *testing.T) {
	c := r.client()
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c.Ping(context.Background()).Err() == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("redis on %d did not start: %s", r.port, r.proc.out.String())
}

// restart kills Redis and starts it again, empty (no persistence).
func (r *redisServer) restart(t *testing.T) {
	r.proc.kill()
	r.proc.start()
	r.wait(t)
}

// database is a fresh, migrated database for one scenario, on the shared
// PostgreSQL server or on a private one.
type database struct {
	url   string
	owner *pgx.Conn
}

func newDatabase(t *testing.T, serverURL string) *database {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("errand_chaos_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	admin, err := pgx.Connect(ctx, serverURL)
	require.NoError(t, err, "PostgreSQL must be running; make test starts it")
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, "CREATE DATABASE "+name)
	require.NoError(t, err)
	t.Cleanup(func() {
		if a, err := pgx.Connect(context.Background(), serverURL); err == nil {
			a.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			a.Close(context.Background())
		}
	})
	u, err := url.Parse(serverURL)
	require.NoError(t, err)
	u.Path = "/" + name
	d := &database{url: u.String()}
	m, err := db.NewMigrator(d.url)
	require.NoError(t, err)
	require.NoError(t, m.Up(ctx, io.Discard))
	m.Close()
	return d
}

// count runs a count query as the schema owner (past row-level security).
func (d *database) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	var err error
	for i := 0; i < 50; i++ { // the server may be restarting
		var c *pgx.Conn
		c, err = pgx.Connect(context.Background(), d.url)
		if err == nil {
			err = c.QueryRow(context.Background(), query, args...).Scan(&n)
			c.Close(context.Background())
			if err == nil {
				return n
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.NoError(t, err)
	return n
}

// exec runs a statement as the schema owner (past row-level security).
func (d *database) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	c, err := pgx.Connect(context.Background(), d.url)
	require.NoError(t, err)
	defer c.Close(context.Background())
	_, err = c.Exec(context.Background(), query, args...)
	require.NoError(t, err)
}

// stack is one scenario's Errand: its processes, Redis, database and fake
// providers, reached through the real HTTP API.
type stack struct {
	t         *testing.T
	db        *database
	redis     redisTarget
	twilio    *fakes.Twilio
	env       []string
	api       *proc
	worker    *proc
	scheduler *proc
	baseURL   string
	admin     string
	key       string
}

// redisTarget is what a stack's REDIS_URL points at: one server, a
// Sentinel-managed master or a Cluster.
type redisTarget interface{ url() string }

func newStack(t *testing.T, d *database, r redisTarget, extraEnv ...string) *stack {
	t.Helper()
	bin := errandBinary(t)
	s := &stack{t: t, db: d, redis: r, twilio: fakes.NewTwilio(), admin: "chaos-admin-" + strconv.Itoa(freePort(t)) + "-0123456789"}
	t.Cleanup(s.twilio.Close)
	port := freePort(t)
	s.baseURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	s.env = append([]string{
		"DATABASE_URL=" + d.url, "REDIS_URL=" + r.url(), "ERRAND_HTTP_ADDR=127.0.0.1:" + strconv.Itoa(port),
		"ERRAND_ADMIN_TOKEN=" + s.admin, "ERRAND_SECRET_KEY=chaos-secret-key-0123456789abcdef0123456789",
		"ERRAND_DATA_DIR=" + t.TempDir(), "ERRAND_DISPATCH_INTERVAL=1s", "ERRAND_WORKER_CONCURRENCY=8",
		"ERRAND_SHUTDOWN_TIMEOUT=5s", "ERRAND_LOG_LEVEL=info",
		"TWILIO_ACCOUNT_SID=" + s.twilio.AccountSID, "TWILIO_AUTH_TOKEN=" + s.twilio.AuthToken,
		"TWILIO_FROM_NUMBER=+15005550006", "TWILIO_API_BASE_URL=" + s.twilio.URL,
	}, extraEnv...)
	s.api = startProc(t, "api", s.env, bin, "api")
	s.worker = startProc(t, "worker", s.env, bin, "worker")
	s.scheduler = startProc(t, "scheduler", s.env, bin, "scheduler")
	s.waitReady()
	// The tenant lives where it is midday now: quiet hours never hold the
	// texts, whenever the suite runs.
	zone := notify.ZoneWhereItIs(time.Now(), 12)
	tenant := s.call("POST", "/admin/v1/tenants", s.admin, map[string]any{"name": "Chaos Repair", "timezone": zone}, 201)
	s.key = tenant["api_key"].(string)
	return s
}

func (s *stack) waitReady() {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.baseURL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("api never became ready:\n%s", s.api.out.String())
}

// call makes an API request, retrying while a fault makes the API
// unavailable, until it gets the status wanted (0: any 2xx).
func (s *stack) call(method, path, key string, body any, want int) map[string]any {
	s.t.Helper()
	var last string
	for i := 0; i < 100; i++ {
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, s.baseURL+path, rd)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want || (want == 0 && resp.StatusCode/100 == 2) {
				var out map[string]any
				json.Unmarshal(b, &out)
				return out
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
			if resp.StatusCode < 500 {
				break
			}
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.t.Fatalf("%s %s: want %d, got %s", method, path, want, last)
	return nil
}

// texts creates n contacts with one text each, returning the message IDs.
func (s *stack) texts(n int, prefix string) []string {
	ids := make([]string, n)
	for i := range n {
		c := fmt.Sprintf("%s-%d", prefix, i)
		s.call("PUT", "/v1/contacts/"+c, s.key, map[string]any{"name": "Client", "phone": fmt.Sprintf("+1312555%04d", i%10000)}, 0)
		ids[i] = s.call("POST", "/v1/messages", s.key, map[string]any{"contact_id": c, "channel": "sms",
			"body": fmt.Sprintf("%s message %d", prefix, i)}, 202)["id"].(string)
	}
	return ids
}

// outcome is a scenario's result row.
type outcome struct {
	fault, job  string
	items       int
	done, final int
	dupes       int
	elapsed     time.Duration
	pass        bool
}

var (
	resultsMu sync.Mutex
	results   []outcome
)

func record(o outcome) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	results = append(results, o)
}

// pgServer is a private PostgreSQL, so it can be restarted without touching
// the machine's server (other test packages use it at the same time).
type pgServer struct {
	dir, bin string
	port     int
}

func startPostgres(t *testing.T) *pgServer {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	require.NotEmpty(t, bins, "PostgreSQL server binaries not found (make test installs postgresql)")
	sort.Strings(bins)
	p := &pgServer{bin: filepath.Dir(bins[len(bins)-1]), port: freePort(t)}
	var err error
	p.dir, err = os.MkdirTemp("", "errand-chaos-pg-")
	require.NoError(t, err)
	t.Cleanup(func() {
		p.ctl("stop", "-m", "immediate")
		os.RemoveAll(p.dir)
	})
	if os.Getuid() == 0 {
		// initdb refuses to run as root: the cluster belongs to postgres.
		require.NoError(t, exec.Command("chown", "postgres", p.dir).Run())
	}
	out, err := p.as(filepath.Join(p.bin, "initdb"), "-D", filepath.Join(p.dir, "data"), "-A", "trust", "-U", "postgres").CombinedOutput()
	require.NoError(t, err, "%s", out)
	out, err = p.ctl("start")
	require.NoError(t, err, "%s", out)
	return p
}

func (p *pgServer) as(name string, args ...string) *exec.Cmd {
	if os.Getuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	return exec.Command(name, args...)
}

func (p *pgServer) ctl(action string, extra ...string) ([]byte, error) {
	args := append([]string{action, "-D", filepath.Join(p.dir, "data"), "-w", "-l", filepath.Join(p.dir, "log"),
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", p.port, p.dir)}, extra...)
	return p.as(filepath.Join(p.bin, "pg_ctl"), args...).CombinedOutput()
}

func (p *pgServer) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// crash stops PostgreSQL the hard way (immediate: no checkpoint, every
// connection cut) and starts it again.
func (p *pgServer) crash(t *testing.T) {
	out, err := p.ctl("restart", "-m", "immediate")
	require.NoError(t, err, "%s", out)
}
