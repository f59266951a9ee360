package chaos_test

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// SIGKILL the worker while it writes a tenant export. The dead attempt
// publishes nothing; once its heartbeat goes stale (a minute) asynq's retry
// or the dispatcher's stalled scan starts again, and one complete archive,
// matching its recorded checksum, is what the tenant downloads.
func TestKillWorkerMidExport(t *testing.T) {
	t.Parallel()
	s := newStack(t, newDatabase(t, sharedPostgres), startRedis(t))
	n := 200_000 * scale()
	s.db.exec(t, `INSERT INTO contacts (tenant_id, external_id, name, phone, email, notes, created_at, updated_at)
		SELECT t.id, 'c-' || i, 'Client ' || i, '+1312555' || lpad((i % 10000)::text, 4, '0'),
		       'client' || i || '@example.com', 'a note long enough to make the archive take a moment ' || i, now(), now()
		FROM tenants t, generate_series(1, $1) AS i`, n)

	started := time.Now()
	id := s.call("POST", "/v1/exports", s.key, map[string]any{"scope": "tenant", "format": "csv"}, 202)["id"].(string)
	deadline := time.Now().Add(2 * time.Minute)
	for s.db.count(t, `SELECT count(*) FROM exports WHERE id = $1 AND status = 'running' AND rows_done > 0`, id) == 0 {
		require.True(t, time.Now().Before(deadline), "the export never got going")
		time.Sleep(5 * time.Millisecond)
	}
	s.worker.kill()
	require.Equal(t, 1, s.db.count(t, `SELECT count(*) FROM exports WHERE id = $1 AND status = 'running' AND file_key IS NULL`, id),
		"the kill left the export half written")
	s.worker.start()

	deadline = time.Now().Add(4 * time.Minute)
	var got map[string]any
	for {
		got = s.call("GET", "/v1/exports/"+id, s.key, nil, 200)
		if got["status"] != "running" && got["status"] != "queued" {
			break
		}
		require.True(t, time.Now().Before(deadline), "export still %v", got["status"])
		time.Sleep(250 * time.Millisecond)
	}
	attempts := s.db.count(t, `SELECT attempts FROM exports WHERE id = $1`, id)
	archives := s.exportArchives(t, id)
	o := outcome{fault: "SIGKILL worker mid-export", job: "tenant export", items: n, elapsed: time.Since(started),
		done: len(archives), dupes: max(len(archives)-1, 0)}
	var rows int
	if got["status"] == "succeeded" {
		o.final = 1
		rows = s.downloadedContacts(t, got)
	}
	o.pass = got["status"] == "succeeded" && len(archives) == 1 && rows == n && attempts >= 2
	record(o)
	require.Equal(t, "succeeded", got["status"], "%v", got)
	require.GreaterOrEqual(t, attempts, 2, "the killed attempt and the one that finished")
	require.Len(t, archives, 1, "exactly one archive is kept")
	require.Equal(t, n, rows, "the archive holds every contact once")
}

// exportArchives lists the published archives of an export in the file
// store (hidden partial files of dead attempts excluded).
func (s *stack) exportArchives(t *testing.T, id string) []string {
	t.Helper()
	var dir string
	for _, kv := range s.env {
		if v, ok := strings.CutPrefix(kv, "ERRAND_DATA_DIR="); ok {
			dir = v
		}
	}
	require.NotEmpty(t, dir)
	var m []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), id+"-") && strings.HasSuffix(d.Name(), ".zip") {
			m = append(m, path)
		}
		return err
	})
	require.NoError(t, err)
	return m
}

// downloadedContacts downloads the archive through its signed link,
// checks it against the recorded checksum, and counts contacts.csv's rows.
func (s *stack) downloadedContacts(t *testing.T, export map[string]any) int {
	t.Helper()
	link, err := url.Parse(export["download_url"].(string))
	require.NoError(t, err)
	resp, err := http.Get(s.baseURL + link.RequestURI())
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	sum := sha256.Sum256(body)
	require.Equal(t, export["sha256"], hex.EncodeToString(sum[:]), "the download is the file recorded")
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	require.NoError(t, err)
	for _, f := range zr.File {
		if f.Name != "contacts.csv" {
			continue
		}
		rc, err := f.Open()
		require.NoError(t, err)
		records, err := csv.NewReader(rc).ReadAll()
		rc.Close()
		require.NoError(t, err)
		return len(records) - 1 // the header
	}
	t.Fatalf("no contacts.csv in the archive")
	return 0
}
