package chaos_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/jobs"
)

// scale multiplies the work of each scenario (ERRAND_CHAOS_SCALE, default 1).
func scale() int {
	if n, err := strconv.Atoi(os.Getenv("ERRAND_CHAOS_SCALE")); err == nil && n > 0 {
		return n
	}
	return 1
}

// sharedPostgres is the machine's PostgreSQL server, where scenarios that
// do not restart PostgreSQL make their databases: ERRAND_TEST_DATABASE_URL,
// as for every other test package (internal/testenv), or the default.
var sharedPostgres = func() string {
	if u := os.Getenv("ERRAND_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}()

func TestMain(m *testing.M) {
	code := m.Run()
	printResults()
	if binary != "" {
		os.RemoveAll(filepath.Dir(binary)) // the errand built for the scenarios
	}
	os.Exit(code)
}

func printResults() {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if len(results) == 0 {
		return
	}
	sort.Slice(results, func(i, j int) bool { return results[i].fault < results[j].fault })
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "fault injected\tjob\titems\tdone once\tfinal w/ reason\tduplicates\ttime\toutcome")
	for _, r := range results {
		verdict := "PASS"
		if !r.pass {
			verdict = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", r.fault, r.job, r.items, r.done, r.final, r.dupes,
			r.elapsed.Round(time.Second), verdict)
	}
	tw.Flush()
	fmt.Print("\nchaos suite\n" + b.String())
	if dir := artifacts(); dir != "" {
		os.WriteFile(filepath.Join(dir, "chaos.txt"), []byte(b.String()), 0o644)
	}
}

func artifacts() string {
	dir := os.Getenv("ERRAND_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "artifacts")
	}
	if os.MkdirAll(dir, 0o755) != nil {
		return ""
	}
	return dir
}

// checkTexts waits until every message is final and the provider holds
// each text exactly once, and records the outcome.
func checkTexts(t *testing.T, s *stack, fault string, ids []string, started time.Time, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	final := 0
	for time.Now().Before(deadline) {
		final = s.db.count(t, `SELECT count(*) FROM messages WHERE status IN ('sent','delivered','failed','suppressed','cancelled')`)
		if final == len(ids) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a late duplicate would land now
	sent := s.db.count(t, `SELECT count(*) FROM messages WHERE status = 'sent' AND provider_message_id IS NOT NULL`)
	noReason := s.db.count(t, `SELECT count(*) FROM messages WHERE status IN ('failed','suppressed') AND coalesce(error,'') = ''`)
	bodies := map[string]int{}
	dupes := 0
	for _, m := range s.twilio.Messages() {
		bodies[m.Body]++
		if bodies[m.Body] == 2 {
			dupes++
		}
	}
	o := outcome{fault: fault, job: "message send", items: len(ids), done: len(bodies), final: final - noReason,
		dupes: dupes, elapsed: time.Since(started)}
	o.pass = final == len(ids) && sent == len(ids) && dupes == 0 && len(bodies) == len(ids) && noReason == 0
	record(o)
	require.Equal(t, len(ids), final, "every message reached a final state")
	require.Zero(t, noReason, "every failed or suppressed message says why")
	require.Zero(t, dupes, "no text sent twice")
	require.Equal(t, len(ids), sent, "every message sent")
	require.Len(t, bodies, len(ids), "every text reached the provider")
}

// SIGKILL the worker while a send is in flight: the provider has accepted
// the text, the row says 'sending'. The next worker (after asynq's lease
// expires) finds the text at Twilio and records it; nothing is sent twice.
func TestKillWorkerMidSend(t *testing.T) {
	t.Parallel()
	s := newStack(t, newDatabase(t, sharedPostgres), startRedis(t))
	n := 10 * scale()
	var accepted atomic.Int32
	killed := make(chan struct{})
	s.twilio.OnAccept(func(fakes.TwilioMessage) {
		if accepted.Add(1) == int32(n/2) {
			close(killed)
			s.worker.kill() // between Twilio's acceptance and our status update
		}
	})
	started := time.Now()
	ids := s.texts(n, "kill")
	<-killed
	s.twilio.OnAccept(nil)
	require.NotZero(t, s.db.count(t, `SELECT count(*) FROM messages WHERE status IN ('sending','queued')`),
		"the kill left work in flight")
	s.worker.start()
	checkTexts(t, s, "SIGKILL worker mid-send", ids, started, 4*time.Minute)
}

// Redis loses everything (FLUSHALL) with texts queued and scheduled: the
// dispatcher notices and re-enqueues them from PostgreSQL.
func TestRedisFlushAll(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	s := newStack(t, newDatabase(t, sharedPostgres), r)
	s.worker.stop() // let work pile up in Redis
	started := time.Now()
	n := 10 * scale()
	ids := s.texts(n, "flush")
	later := time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339)
	for i := 0; i < n; i++ {
		c := fmt.Sprintf("flush-%d", i)
		ids = append(ids, s.call("POST", "/v1/messages", s.key, map[string]any{"contact_id": c, "channel": "sms",
			"body": fmt.Sprintf("flush later %d", i), "send_at": later}, 202)["id"].(string))
	}
	c := r.client()
	require.NoError(t, c.FlushAll(context.Background()).Err())
	c.Close()
	s.worker.start()
	checkTexts(t, s, "Redis FLUSHALL", ids, started, 2*time.Minute)
}

// Redis restarts without persistence while texts are in flight: the
// tasks it held are gone, the dispatcher notices the empty Redis and
// re-enqueues the live rows from PostgreSQL.
func TestRedisRestart(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	s := newStack(t, newDatabase(t, sharedPostgres), r)
	n := 20 * scale()
	var accepted atomic.Int32
	var inRedis int64
	logAt := 0 // the worker's log up to the restart
	restarted := make(chan struct{})
	s.twilio.OnAccept(func(fakes.TwilioMessage) {
		if accepted.Add(1) == int32(n/4) {
			// Counted and killed before Twilio answers: this text's own
			// task is still active in Redis when Redis goes.
			c := r.client()
			ctx := context.Background()
			for _, state := range []string{"pending", "active"} {
				inRedis += c.LLen(ctx, "asynq:{"+jobs.QueueNotifications+"}:"+state).Val()
			}
			c.Close()
			logAt = len(s.worker.out.String())
			r.proc.kill()
			go func() { r.proc.start(); r.wait(t); close(restarted) }()
		}
	})
	started := time.Now()
	ids := s.texts(n, "restart")
	<-restarted
	s.twilio.OnAccept(nil)
	require.NotZero(t, inRedis, "texts were in Redis when it restarted")
	checkTexts(t, s, "Redis restart (no persistence)", ids, started, 4*time.Minute)
	// The dispatcher noticed the empty Redis after the restart: a warning
	// when it re-enqueued rows, a note when the worker had already taken
	// every task before Redis went (they finish from memory).
	after := s.worker.out.String()[logAt:]
	require.True(t, strings.Contains(after, "redis lost its tasks") || strings.Contains(after, "redis holds no epoch yet"),
		"the dispatcher noticed the empty Redis after the restart")
}

// Redis stalls longer than asynq's 30 s lease while texts are in flight:
// the worker cannot extend its leases (it logs so) and every lease held
// when Redis stalled ends before Redis answers again, so asynq may hand a
// task to a second worker, or the worker's late "done" may win; either
// way the send ledger sends each text once.
func TestRedisSlowerThanLease(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	s := newStack(t, newDatabase(t, sharedPostgres), r)
	n := 10 * scale()
	const stall = 35 * time.Second
	// Each text waits at Twilio long enough to be in flight through a
	// heartbeat (every 5 s) of the stalled Redis, and short of the SDK's
	// 10 s timeout.
	s.twilio.FailNext(n, fakes.Fault{Delay: 6 * time.Second})
	started := time.Now()
	ids := s.texts(n, "slow")
	eventually(t, time.Minute, func() string {
		if s.twilio.Requests() == 0 {
			return "no text has reached Twilio"
		}
		return ""
	})
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port), ReadTimeout: 2 * stall})
	defer c.Close()
	ctx := context.Background()
	// The fault bites: tasks are active, and every lease they hold ends
	// before Redis wakes up.
	now, err := c.Time(ctx).Result()
	require.NoError(t, err)
	leases, err := c.ZRangeWithScores(ctx, "asynq:{"+jobs.QueueNotifications+"}:lease", 0, -1).Result()
	require.NoError(t, err)
	require.NotEmpty(t, leases, "texts are in flight when Redis stalls")
	for _, l := range leases {
		require.Less(t, l.Score, float64(now.Add(stall).Unix()), "lease of %v outlives the stall", l.Member)
	}
	require.NoError(t, c.Do(ctx, "DEBUG", "SLEEP", strconv.Itoa(int(stall/time.Second))).Err())
	checkTexts(t, s, "Redis DEBUG SLEEP 35s (> lease)", ids, started, 5*time.Minute)
	require.Contains(t, s.worker.out.String(), "Failed to extend lease for tasks [message:",
		"the worker could not extend the leases of the texts it was sending")
}

// Twilio accepts texts and then never answers (the client times out): the
// retry finds each text at Twilio instead of sending it again.
func TestProviderTimeoutAfterAcceptance(t *testing.T) {
	t.Parallel()
	s := newStack(t, newDatabase(t, sharedPostgres), startRedis(t))
	n := 5 * scale()
	s.twilio.FailNext(n, fakes.Fault{Hang: true})
	started := time.Now()
	ids := s.texts(n, "timeout")
	checkTexts(t, s, "provider timeout after acceptance", ids, started, 3*time.Minute)
}

// PostgreSQL crashes and restarts while texts are being sent: requests and
// jobs fail for a moment and retry; every text goes out once.
func TestPostgresRestart(t *testing.T) {
	t.Parallel()
	pg := startPostgres(t)
	s := newStack(t, newDatabase(t, pg.url()), startRedis(t))
	n := 20 * scale()
	var accepted atomic.Int32
	crashed := make(chan struct{})
	s.twilio.OnAccept(func(fakes.TwilioMessage) {
		if accepted.Add(1) == int32(n/4) {
			go func() { pg.crash(t); close(crashed) }()
		}
	})
	started := time.Now()
	ids := s.texts(n, "pg")
	<-crashed
	s.twilio.OnAccept(nil)
	// A task that failed several times while PostgreSQL was down backs off
	// (up to 5 minutes between tries, DefaultRetry), so on a loaded machine
	// the last text may take that long; the deadline leaves room for it.
	checkTexts(t, s, "PostgreSQL crash + restart", ids, started, 8*time.Minute)
}
