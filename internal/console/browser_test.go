package console_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/testapp"
	"github.com/errandhq/errand/jobs"
)

// chromium finds Debian's Chromium; `make test` installs it when missing.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("ERRAND_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	t.Fatal("Chromium is not installed: `make test` installs it (apt-get install chromium), or set ERRAND_CHROMIUM")
	return ""
}

// artifactDir is where screenshots go: $ERRAND_ARTIFACTS, else artifacts/
// at the repository root.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("ERRAND_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "artifacts")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// A person opens the console in a real browser: without a session they get
// the login page; with the admin token they see asynqmon's queue table,
// whose notifications row counts the texts waiting in Redis, and a
// screenshot is kept as a test artifact.
func TestBrowserLogsInAndSeesTheQueues(t *testing.T) {
	app := testapp.New(t)
	tenant := app.NewTenant("Browser Repair")
	require.Equal(t, 201, app.Do("PUT", "/v1/contacts/c1", tenant.Key, map[string]any{"name": "Pat", "phone": "+13125550142"}).Status)
	for i := 0; i < 3; i++ {
		resp := app.Do("POST", "/v1/messages", tenant.Key, map[string]any{"contact_id": "c1", "channel": "sms",
			"body": "Reminder", "send_at": app.Clock.Now().Add(10 * time.Minute).Format(time.RFC3339)})
		require.Equal(t, 202, resp.Status)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	defer cancelTimeout()

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(app.URL+"/monitoring/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
	))
	loginURL, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	loginText, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("form")))
	require.NoError(t, err)
	require.Contains(t, loginURL, "/monitoring/login", "an unauthenticated visit lands on the login page")
	require.Contains(t, loginText, "Admin token")

	// The texts wait in Redis as real asynq tasks: the table must show
	// their count, as asynq itself reports it.
	queue, err := app.Inspector.GetQueueInfo(jobs.QueueNotifications)
	require.NoError(t, err)
	require.GreaterOrEqual(t, queue.Size, 3, "the scheduled texts are tasks in Redis")

	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#token"), app.AdminToken),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.Search(`//*[contains(text(), "notifications")]`)),
	))
	location, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(strings.TrimRight(location, "/"), "/monitoring"), location)
	// Read the queue table as rendered: the Size cell of the
	// notifications row, once asynqmon has filled it in.
	var row queueRow
	for {
		row, err = chromedp.Run(ctx, chromedp.Evaluate[queueRow](queueRowJS))
		require.NoError(t, err, "the queue table never showed the notifications queue's tasks")
		if row.Size != "" && row.Size != "0" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.Equal(t, "notifications", row.Queue)
	require.Equal(t, strconv.Itoa(queue.Size), row.Size, "the table shows the tasks asynq holds (%+v)", row)
	bodyText, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	require.NoError(t, err)
	require.NotContains(t, bodyText, "+13125550142", "no personal data on the dashboard")

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	path := filepath.Join(artifactDir(t), "console-queues.png")
	require.NoError(t, os.WriteFile(path, shot, 0o644))
	written, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(written, []byte("\x89PNG\r\n\x1a\n")), "the artifact is a PNG")
	t.Logf("screenshot: %s", path)
}

// queueRow is the notifications row of asynqmon's queue table.
type queueRow struct {
	Queue string `json:"queue"`
	Size  string `json:"size"`
}

// queueRowJS finds the table headed Queue … Size and returns the
// notifications row's name and Size cell (empty until it is rendered).
const queueRowJS = `(() => {
	for (const table of document.querySelectorAll("table")) {
		const head = [...table.querySelectorAll("thead th")].map(c => c.textContent.trim());
		const q = head.indexOf("Queue"), size = head.indexOf("Size");
		if (q < 0 || size < 0) continue;
		for (const tr of table.querySelectorAll("tbody tr")) {
			const cells = [...tr.querySelectorAll("td, th")].map(c => c.textContent.trim());
			if (cells[q] === "notifications") return {queue: cells[q], size: cells[size] || ""};
		}
	}
	return {queue: "", size: ""};
})()`
