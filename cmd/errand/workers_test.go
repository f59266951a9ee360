package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/internal/testapp"
	"github.com/errandhq/errand/internal/testenv"
)

// osProcess is the errand program running as a separate OS osProcess.
type osProcess struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
}

// startOSProcess re-executes the test binary as `errand <args>`.
func startOSProcess(t *testing.T, env map[string]string, args ...string) *osProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "ERRAND_TEST_AS_ERRAND=1")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &osProcess{cmd: cmd, stderr: &syncBuffer{}}
	cmd.Stdout = &syncBuffer{}
	cmd.Stderr = p.stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return p
}

// Several `errand worker` processes on one database and one Redis share
// the work, and no message is sent twice.
func TestWorkerProcessesShareTheLoadWithoutDuplicates(t *testing.T) {
	app := testapp.New(t)
	tenant := app.NewTenant("Many Workers")
	twilio := fakes.NewTwilio()
	t.Cleanup(twilio.Close)

	env := prodEnv(t)
	env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"] = twilio.AccountSID, twilio.AuthToken
	env["TWILIO_FROM_NUMBER"], env["TWILIO_API_BASE_URL"] = "+15005550006", twilio.URL
	env["ERRAND_WORKER_CONCURRENCY"] = "4"
	var workers []*osProcess
	for i := 0; i < 3; i++ {
		workers = append(workers, startOSProcess(t, env, "worker"))
	}

	const contacts, perContact = 20, 15
	for c := 0; c < contacts; c++ {
		id := fmt.Sprintf("c%d", c)
		resp := app.Do("PUT", "/v1/contacts/"+id, tenant.Key, map[string]any{"name": "Client", "phone": fmt.Sprintf("+1312555%04d", 100+c)})
		require.Equal(t, 201, resp.Status, string(resp.Body))
		for m := 0; m < perContact; m++ {
			resp := app.Do("POST", "/v1/messages", tenant.Key, map[string]any{"contact_id": id, "channel": "sms",
				"body": fmt.Sprintf("message %d to %s", m, id)})
			require.Equal(t, 202, resp.Status, string(resp.Body))
		}
	}
	const total = contacts * perContact
	app.Eventually(60*time.Second, "every message at the provider", func() bool { return twilio.Count() >= total })
	time.Sleep(500 * time.Millisecond) // a duplicate would arrive now, if there were one
	require.Equal(t, total, twilio.Count(), "each message exactly once")
	seen := map[string]bool{}
	for _, m := range twilio.Messages() {
		key := m.To + "|" + m.Body
		require.False(t, seen[key], "sent twice: %s", m.Body)
		seen[key] = true
	}
	var sent int
	require.NoError(t, testenv.Owner(t).QueryRow(context.Background(),
		"SELECT count(*) FROM messages WHERE status = 'sent' AND tenant_id = $1", tenant.ID).Scan(&sent))
	require.Equal(t, total, sent, "every row says sent")

	for i, w := range workers {
		n := strings.Count(w.stderr.String(), `"msg":"message sent"`)
		require.Greater(t, n, 0, "worker %d did part of the work", i)
		t.Logf("worker %d sent %d", i, n)
		require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	}
	for i, w := range workers {
		done := make(chan error, 1)
		go func() { done <- w.cmd.Wait() }()
		select {
		case err := <-done:
			require.NoError(t, err, "worker %d exits cleanly on SIGTERM", i)
		case <-time.After(30 * time.Second):
			t.Fatalf("worker %d did not stop on SIGTERM", i)
		}
	}
}
