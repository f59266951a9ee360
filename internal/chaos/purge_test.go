package chaos_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// SIGKILL the worker while it purges a cancelled tenant. The purge works
// in short transactions, each adding its count to the certificate with its
// work; the next deletion scan after the restart resumes at the step and
// position recorded. One completed purge, every contact, message and file
// counted exactly once, nothing of the tenant's operational data left.
func TestKillWorkerMidPurge(t *testing.T) {
	t.Parallel()
	s := newStack(t, newDatabase(t, sharedPostgres), startRedis(t),
		"ERRAND_DELETION_GRACE=2s", "ERRAND_DELETION_SCAN_INTERVAL=2s", "ERRAND_PURGE_BATCH=200")
	n := 20_000 * scale()
	files := 300
	s.db.exec(t, `INSERT INTO contacts (tenant_id, external_id, name, phone, email, created_at, updated_at)
		SELECT t.id, 'c-' || i, 'Client ' || i, '+1312555' || lpad((i % 10000)::text, 4, '0'),
		       'client' || i || '@example.com', now(), now()
		FROM tenants t, generate_series(1, $1) AS i`, n)
	s.db.exec(t, `INSERT INTO messages (tenant_id, contact_id, channel, body, destination, status, send_at, due_at, created_at, updated_at)
		SELECT c.tenant_id, c.id, 'sms', 'Hello ' || c.name, c.phone, 'delivered', now(), now(), now(), now()
		FROM contacts c, generate_series(1, 2)`)
	tenant := s.tenantID(t)
	folder := filepath.Join(s.dataDir(t), "files", "tenants", tenant) // the file store is ERRAND_DATA_DIR/files
	for i := range files {
		dir := filepath.Join(folder, "exports", fmt.Sprintf("batch-%02d", i%7))
		require.NoError(t, os.MkdirAll(dir, 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("f-%04d.zip", i)), []byte("sealed bytes"), 0o600))
	}

	started := time.Now()
	id := s.call("POST", "/v1/deletions", s.key, map[string]any{"scope": "tenant"}, 202)["id"].(string)
	deadline := time.Now().Add(2 * time.Minute)
	for s.db.count(t, `SELECT count(*) FROM deletions WHERE id = $1 AND status = 'running'
			AND coalesce((counts->>'messages')::int, 0) > 0`, id) == 0 {
		require.True(t, time.Now().Before(deadline), "the purge never got going")
		time.Sleep(5 * time.Millisecond)
	}
	s.worker.kill()
	require.Equal(t, 1, s.db.count(t, `SELECT count(*) FROM deletions WHERE id = $1 AND status = 'running'`, id),
		"the kill left the purge part done")
	s.worker.start()

	deadline = time.Now().Add(4 * time.Minute)
	for s.db.count(t, `SELECT count(*) FROM deletions WHERE id = $1 AND status = 'completed'`, id) == 0 {
		require.True(t, time.Now().Before(deadline), "purge still not completed")
		time.Sleep(250 * time.Millisecond)
	}
	counted := func(table string) int {
		return s.db.count(t, `SELECT coalesce((counts->>$2)::int, 0) FROM deletions WHERE id = $1`, id, table)
	}
	contacts, messages, filesCounted := counted("contacts"), counted("messages"), counted("files")
	leftContacts := s.db.count(t, `SELECT count(*) FROM contacts WHERE tenant_id = $1`, tenant)
	leftBodies := s.db.count(t, `SELECT count(*) FROM messages WHERE tenant_id = $1 AND (body <> '' OR destination IS NOT NULL)`, tenant)
	logRows := s.db.count(t, `SELECT count(*) FROM messages WHERE tenant_id = $1`, tenant)
	_, statErr := os.Stat(folder)
	completed := s.db.count(t, `SELECT count(*) FROM deletions WHERE tenant_id = $1 AND status = 'completed'`, tenant)
	purged := s.db.count(t, `SELECT count(*) FROM tenants WHERE id = $1 AND purged_at IS NOT NULL`, tenant)

	o := outcome{fault: "SIGKILL worker mid-purge", job: "tenant purge", items: n, elapsed: time.Since(started),
		done: min(contacts, n), final: completed,
		dupes: max(contacts-n, 0) + max(messages-2*n, 0) + max(filesCounted-files, 0)}
	o.pass = completed == 1 && purged == 1 && contacts == n && messages == 2*n && filesCounted == files &&
		leftContacts == 0 && leftBodies == 0 && logRows == 2*n && os.IsNotExist(statErr)
	record(o)
	require.Equal(t, 1, completed, "one completed purge")
	require.Equal(t, 1, purged)
	require.Equal(t, n, contacts, "every contact counted once")
	require.Equal(t, 2*n, messages, "every message counted once")
	require.Equal(t, files, filesCounted, "every file counted once")
	require.Zero(t, leftContacts, "no contact left")
	require.Zero(t, leftBodies, "no message body or address left")
	require.Equal(t, 2*n, logRows, "the message log's metadata is kept")
	require.True(t, os.IsNotExist(statErr), "the tenant's folder is gone: %v", statErr)
}

// tenantID is the stack's one tenant.
func (s *stack) tenantID(t *testing.T) string {
	t.Helper()
	c, err := pgx.Connect(context.Background(), s.db.url)
	require.NoError(t, err)
	defer c.Close(context.Background())
	var id string
	require.NoError(t, c.QueryRow(context.Background(), `SELECT id::text FROM tenants`).Scan(&id))
	return id
}

// dataDir is the stack's file store.
func (s *stack) dataDir(t *testing.T) string {
	t.Helper()
	for _, kv := range s.env {
		if v, ok := strings.CutPrefix(kv, "ERRAND_DATA_DIR="); ok {
			return v
		}
	}
	t.Fatal("no ERRAND_DATA_DIR")
	return ""
}
