package chaos_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// SIGKILL the worker while it imports a client list. The next attempt
// (after asynq's lease and the import's heartbeat run out) resumes after
// the last committed batch: every row is imported exactly once, none is
// merged twice (no "updated" rows), and the import ends succeeded.
func TestKillWorkerMidImport(t *testing.T) {
	t.Parallel()
	s := newStack(t, newDatabase(t, sharedPostgres), startRedis(t))
	n := 60_000 * scale()
	var csv bytes.Buffer
	csv.WriteString("Client ID,First Name,Last Name,Mobile,E-mail Address,Notes\r\n")
	for i := range n {
		// Every phone distinct: rows sharing a number would be one person.
		fmt.Fprintf(&csv, "c-%d,Client,Number %d,(312) %03d-%04d,client%d@example.com,\"note %d, with a comma\"\r\n",
			i, i, 200+i/10000, i%10000, i, i)
	}
	req, err := http.NewRequest("POST", s.baseURL+"/v1/imports", &csv)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, 202, resp.StatusCode, string(body))
	started := time.Now()
	var accepted struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(body, &accepted))
	importID := accepted.ID

	deadline := time.Now().Add(2 * time.Minute)
	for s.db.count(t, `SELECT count(*) FROM imports WHERE id = $1 AND status = 'running' AND batches_done > 0`, importID) == 0 {
		require.True(t, time.Now().Before(deadline), "the import never got going")
		time.Sleep(5 * time.Millisecond)
	}
	s.worker.kill()
	done := s.db.count(t, `SELECT records_done FROM imports WHERE id = $1`, importID)
	require.Less(t, done, n, "the kill left the import part done")
	s.worker.start()

	deadline = time.Now().Add(6 * time.Minute)
	var got map[string]any
	for {
		got = s.call("GET", "/v1/imports/"+importID, s.key, nil, 200)
		if got["status"] != "running" && got["status"] != "queued" {
			break
		}
		require.True(t, time.Now().Before(deadline), "import still %v", got["status"])
		time.Sleep(250 * time.Millisecond)
	}
	contacts := s.db.count(t, `SELECT count(*) FROM contacts`)
	distinct := s.db.count(t, `SELECT count(DISTINCT external_id) FROM contacts`)
	attempts := s.db.count(t, `SELECT attempts FROM imports WHERE id = $1`, importID)
	created, _ := got["rows_created"].(float64)
	updated, _ := got["rows_updated"].(float64)
	o := outcome{fault: "SIGKILL worker mid-import", job: "CSV import", items: n, elapsed: time.Since(started),
		done: distinct, dupes: contacts - distinct + int(updated)}
	if got["status"] == "succeeded" {
		o.final = contacts
	}
	o.pass = got["status"] == "succeeded" && contacts == n && distinct == n && int(created) == n && updated == 0 && attempts >= 2
	record(o)
	require.Equal(t, "succeeded", got["status"], "%v", got)
	require.GreaterOrEqual(t, attempts, 2, "the killed attempt and the one that resumed")
	require.Equal(t, n, contacts, "every row imported once")
	require.Equal(t, n, distinct)
	require.EqualValues(t, n, created, "every row counted once as created")
	require.Zero(t, updated, "no batch was merged twice")
}
