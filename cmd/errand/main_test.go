package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/testenv"
)

// TestMain runs the tests, or — when a test re-executes this binary as a
// separate process (ERRAND_TEST_AS_ERRAND=1) — the errand program itself.
func TestMain(m *testing.M) {
	if os.Getenv("ERRAND_TEST_AS_ERRAND") == "1" {
		main()
		return
	}
	testenv.Main(m)
}

// syncBuffer is an io.Writer the program writes to while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// devEnv is the environment of `errand dev` in a test: this package's
// PostgreSQL and Redis databases, a free port, a private data directory.
func devEnv(t *testing.T) map[string]string {
	t.Helper()
	return map[string]string{
		"DATABASE_URL":             testenv.DatabaseURL(t),
		"REDIS_URL":                testenv.RedisURL(t),
		"ERRAND_HTTP_ADDR":         "127.0.0.1:0",
		"ERRAND_DATA_DIR":          t.TempDir(),
		"ERRAND_DISPATCH_INTERVAL": "1s",
	}
}

// prodEnv is devEnv plus the secrets production roles demand, connecting
// as production does: as a login role that is neither superuser nor owner.
func prodEnv(t *testing.T) map[string]string {
	t.Helper()
	env := devEnv(t)
	env["DATABASE_URL"] = testenv.AppURL(t)
	env["ERRAND_ADMIN_TOKEN"] = "admin-" + randomHex(16)
	env["ERRAND_SECRET_KEY"] = randomHex(32)
	return env
}

func getenvFrom(env map[string]string) func(string) string {
	return func(name string) string { return env[name] }
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck
	return hex.EncodeToString(b)
}

// runCmd runs a command that ends by itself.
func runCmd(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut syncBuffer
	err = run(ctx, args, getenvFrom(env), &out, &errOut)
	return out.String(), errOut.String(), err
}

// process is `errand <role>` running in a goroutine.
type process struct {
	t      *testing.T
	URL    string
	stdout *syncBuffer
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan struct{}
	err    error // valid once done is closed
}

var listeningRe = regexp.MustCompile(`listening on (http://\S+)`)

// start runs a role and waits until it listens. The role is stopped when
// the test ends if the test did not stop it.
func start(t *testing.T, env map[string]string, args ...string) *process {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &process{t: t, stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.err = run(ctx, args, getenvFrom(env), p.stdout, p.stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-p.done:
		case <-time.After(time.Minute):
			t.Errorf("errand %s did not stop within a minute of its context ending", args[0])
		}
		if t.Failed() {
			t.Logf("stdout of errand %s:\n%s\nstderr:\n%s", args[0], p.stdout, p.stderr)
		}
	})
	p.URL = p.waitFor(listeningRe, 30*time.Second)[1]
	return p
}

// waitFor polls stdout until re matches and returns the submatches. It
// fails at once when the program returns.
func (p *process) waitFor(re *regexp.Regexp, timeout time.Duration) []string {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m := re.FindStringSubmatch(p.stdout.String()); m != nil {
			return m
		}
		select {
		case <-p.done:
			p.t.Fatalf("errand returned (%v) before printing %s\nstdout:\n%s\nstderr:\n%s", p.err, re, p.stdout, p.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("errand printed no %s within %s\nstdout:\n%s", re, timeout, p.stdout)
		}
	}
}

// stop ends the context as SIGTERM would and returns run's result.
func (p *process) stop(timeout time.Duration) error {
	p.t.Helper()
	p.cancel()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.t.Fatalf("errand did not return within %s of being told to stop", timeout)
		return nil
	}
}

// call sends a request and returns the status and body.
func call(t *testing.T, method, rawURL, bearer string, body any, mod ...func(*http.Request)) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		js, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, rawURL, rd)
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for _, m := range mod {
		m(req)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, out
}

func decodeJSON(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m), "%s", body)
	return m
}

// freshDatabase creates an empty database on the test server and returns
// its URL; it is dropped when the test ends.
func freshDatabase(t *testing.T) string {
	t.Helper()
	u, server, name := unusedDatabase(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, server)
	require.NoError(t, err)
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	require.NoError(t, err)
	return u
}

// unusedDatabase names a database that does not exist yet on the test
// server and returns its URL, the server's maintenance URL and the name.
// Whatever creates it, it is dropped when the test ends; its name follows
// testenv's pattern so a killed run's leftovers are swept up too.
func unusedDatabase(t *testing.T) (dbURL, serverURL, name string) {
	t.Helper()
	u, err := url.Parse(testenv.DatabaseURL(t))
	require.NoError(t, err)
	name = fmt.Sprintf("errand_t_%d_fresh_%s", os.Getpid(), randomHex(4))
	server := *u
	server.Path = "/postgres"
	t.Cleanup(func() {
		ctx := context.Background()
		c, err := pgx.Connect(ctx, server.String())
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	fresh := *u
	fresh.Path = "/" + name
	return fresh.String(), server.String(), name
}

// tamper changes a key's last character.
func tamper(key string) string {
	last := byte('A')
	if key[len(key)-1] == last {
		last = 'B'
	}
	return key[:len(key)-1] + string(last)
}

func requireNoneOf(t *testing.T, haystack, what string, needles ...string) {
	t.Helper()
	for _, n := range needles {
		require.False(t, strings.Contains(haystack, n), "%s contains %q", what, n)
	}
}
