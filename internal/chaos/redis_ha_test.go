package chaos_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/internal/fakes"
	"github.com/errandhq/errand/jobs"
)

// eventually polls check until it returns "" or the deadline passes, and
// fails with the last thing check said was missing.
func eventually(t *testing.T, timeout time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		if last = check(); last == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("gave up after %s: %s", timeout, last)
}

// sentinelSet is one master, one replica and one sentinel watching them,
// all private and on loopback.
type sentinelSet struct {
	name            string
	master, replica *redisServer
	port            int
	proc            *proc
}

func startSentinelSet(t *testing.T, name string) *sentinelSet {
	t.Helper()
	set := &sentinelSet{name: name}
	set.master = startRedisWith(t)
	set.replica = startRedisWith(t, "--replicaof", "127.0.0.1", strconv.Itoa(set.master.port))
	eventually(t, time.Minute, func() string { return linkUp(set.replica) })

	// A sentinel rewrites its configuration file, so it gets a private one.
	set.port = freePort(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
sentinel monitor %s 127.0.0.1 %d 1
sentinel down-after-milliseconds %s 5000
sentinel failover-timeout %s 30000
`, set.port, dir, name, set.master.port, name, name)), 0o600))
	set.proc = startProc(t, "sentinel", nil, "redis-server", conf, "--sentinel")
	// Failover needs the sentinel to know a healthy replica.
	eventually(t, time.Minute, func() string {
		c := set.client()
		defer c.Close()
		replicas, err := c.Replicas(context.Background(), name).Result()
		if err != nil {
			return "sentinel: " + err.Error()
		}
		for _, r := range replicas {
			if r["port"] == strconv.Itoa(set.replica.port) && r["flags"] == "slave" && r["master-link-status"] == "ok" {
				return ""
			}
		}
		return fmt.Sprintf("sentinel does not know the replica yet: %v", replicas)
	})
	return set
}

func (set *sentinelSet) url() string {
	return fmt.Sprintf("redis-sentinel://127.0.0.1:%d/0?master=%s", set.port, set.name)
}

func (set *sentinelSet) client() *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", set.port)})
}

// masterPort is the port the sentinel currently names as master.
func (set *sentinelSet) masterPort() (int, error) {
	c := set.client()
	defer c.Close()
	addr, err := c.GetMasterAddrByName(context.Background(), set.name).Result()
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(addr[1])
}

// failover forces a failover and waits until the replica is the master
// and the old master follows it.
func (set *sentinelSet) failover() error {
	c := set.client()
	defer c.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := c.Failover(context.Background(), set.name).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("SENTINEL FAILOVER: %w", err)
		}
		time.Sleep(200 * time.Millisecond) // e.g. NOGOODSLAVE while the replica's state is being refreshed
	}
	for time.Now().Before(deadline) {
		port, _ := set.masterPort()
		if port == set.replica.port && role(set.replica) == "master" && linkUp(set.master) == "" {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("failover did not complete: master port %v, replica role %q, old master: %s",
		func() int { p, _ := set.masterPort(); return p }(), role(set.replica), linkUp(set.master))
}

// info reads one field of INFO from a server.
func info(r *redisServer, section, field string) string {
	c := r.client()
	defer c.Close()
	s, err := c.Info(context.Background(), section).Result()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(s, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v
		}
	}
	return ""
}

func role(r *redisServer) string { return info(r, "replication", "role") }

// linkUp says why r is not a replica in sync with its master ("" when it is).
func linkUp(r *redisServer) string {
	if role(r) != "slave" || info(r, "replication", "master_link_status") != "up" {
		return fmt.Sprintf("redis on %d is not a replica in sync (role %q, link %q)", r.port, role(r),
			info(r, "replication", "master_link_status"))
	}
	return ""
}

// redisCluster is a three-master Redis Cluster without replicas.
type redisCluster struct{ nodes []*redisServer }

func startCluster(t *testing.T) *redisCluster {
	t.Helper()
	rc := &redisCluster{}
	args := []string{"redis-cli", "--cluster", "create"}
	for range 3 {
		// The cluster bus port is given, not derived (port+10000 may be taken or out of range).
		n := startRedisWith(t, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(freePort(t)),
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "15000")
		rc.nodes = append(rc.nodes, n)
		args = append(args, fmt.Sprintf("127.0.0.1:%d", n.port))
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	eventually(t, time.Minute, rc.healthy)
	return rc
}

// owner is the node holding a queue's keys.
func (rc *redisCluster) owner(t *testing.T, queue string) *redisServer {
	t.Helper()
	c := rc.nodes[0].client()
	defer c.Close()
	ctx := context.Background()
	slot, err := c.ClusterKeySlot(ctx, "asynq:{"+queue+"}:pending").Result()
	require.NoError(t, err)
	slots, err := c.ClusterSlots(ctx).Result()
	require.NoError(t, err)
	for _, r := range slots {
		if int64(r.Start) <= slot && slot <= int64(r.End) {
			for _, n := range rc.nodes {
				if r.Nodes[0].Addr == fmt.Sprintf("127.0.0.1:%d", n.port) {
					t.Logf("queue %s: slot %d on node %d", queue, slot, n.port)
					return n
				}
			}
		}
	}
	t.Fatalf("no node holds queue %s", queue)
	return nil
}

// healthy says why the cluster is not serving every slot ("" when it is).
func (rc *redisCluster) healthy() string {
	for _, n := range rc.nodes {
		if st := info2(n, "CLUSTER", "INFO", "cluster_state"); st != "ok" {
			return fmt.Sprintf("node %d: cluster_state %q", n.port, st)
		}
	}
	return ""
}

func (rc *redisCluster) url() string {
	addrs := make([]string, len(rc.nodes))
	for i, n := range rc.nodes {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", n.port)
	}
	return "redis-cluster://" + strings.Join(addrs, ",")
}

// info2 reads one field of a command answering in INFO's format.
func info2(r *redisServer, cmd, sub, field string) string {
	c := r.client()
	defer c.Close()
	s, err := c.Do(context.Background(), cmd, sub).Text()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(s, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v
		}
	}
	return ""
}

// The stack runs on a Sentinel-managed master; SENTINEL FAILOVER promotes
// the replica while texts are being sent, and more are sent afterwards.
// Nothing is lost, nothing is sent twice.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	set := startSentinelSet(t, "errand-chaos")
	s := newStack(t, newDatabase(t, sharedPostgres), set)
	n := 20 * scale()
	var accepted atomic.Int32
	failedOver := make(chan error, 1)
	s.twilio.OnAccept(func(fakes.TwilioMessage) {
		if accepted.Add(1) == int32(n/4) {
			go func() { failedOver <- set.failover() }()
		}
	})
	started := time.Now()
	ids := s.texts(n, "sentinel")
	select {
	case err := <-failedOver:
		require.NoError(t, err)
	case <-time.After(4 * time.Minute):
		t.Fatalf("the failover never started or finished; worker:\n%s", s.worker.out.String())
	}
	s.twilio.OnAccept(nil)
	port, err := set.masterPort()
	require.NoError(t, err)
	require.Equal(t, set.replica.port, port, "the replica is the master now")
	ids = append(ids, s.texts(n/2, "sentinel-after")...)
	checkTexts(t, s, "Sentinel failover (SENTINEL FAILOVER)", ids, started, 4*time.Minute)
	require.Contains(t, s.worker.out.String(), "redis master changed", "the dispatcher noticed the new master")

	// The console (asynqmon) reads through the same Sentinel options: it
	// talks to the new master and sees the queues and the worker.
	var ri struct {
		Info map[string]string `json:"info"`
	}
	require.NoError(t, json.Unmarshal([]byte(s.console(t, "GET", "/api/redis_info", 200)), &ri))
	require.Equal(t, "master", ri.Info["role"])
	require.Equal(t, strconv.Itoa(set.replica.port), ri.Info["tcp_port"], "the console follows the failover")
	require.Contains(t, s.console(t, "GET", "/api/queues", 200), `"queue":"notifications"`)
	require.Contains(t, s.console(t, "GET", "/api/servers", 200), `"notifications"`,
		"the worker's heartbeat, written to the new master, is visible")
}

// The stack runs on a three-master Redis Cluster. asynq keeps each queue's
// keys under one hash tag ({notifications}, …), so every script touches one
// slot; Errand's own keys are one key per command. The queues sit on more
// than one node, and texts sent now, texts scheduled for later and texts
// the provider refuses once (asynq's retry set) all go out exactly once;
// the console's queue, server and cluster pages and a queue pause/resume
// answer; no process logs a cluster error (CROSSSLOT, MOVED, script errors).
func TestRedisCluster(t *testing.T) {
	t.Parallel()
	rc := startCluster(t)
	s := newStack(t, newDatabase(t, sharedPostgres), rc)

	owners := map[*redisServer]bool{}
	for _, q := range []string{jobs.QueueCritical, jobs.QueueNotifications, jobs.QueueBulk, jobs.QueueMaintenance} {
		owners[rc.owner(t, q)] = true
	}
	require.Greater(t, len(owners), 1, "the queues are spread over more than one node")

	n := 10 * scale()
	s.twilio.FailNext(2, fakes.Fault{Status: 500}) // retried through asynq's retry set
	started := time.Now()
	ids := s.texts(n, "cluster")
	later := time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339)
	for i := range n / 2 {
		ids = append(ids, s.call("POST", "/v1/messages", s.key, map[string]any{"contact_id": fmt.Sprintf("cluster-%d", i),
			"channel": "sms", "body": fmt.Sprintf("cluster later %d", i), "send_at": later}, 202)["id"].(string))
	}
	checkTexts(t, s, "Redis Cluster (3 masters)", ids, started, 3*time.Minute)

	// The console (asynqmon) reads the cluster: queues, stats, servers,
	// scheduler entries, the cluster page, a queue's tasks.
	for _, path := range []string{"/api/queues", "/api/queue_stats", "/api/servers", "/api/scheduler_entries",
		"/api/redis_info", "/api/queues/notifications/completed_tasks", "/api/queues/notifications/pending_tasks"} {
		body := s.console(t, "GET", path, 200)
		if path == "/api/redis_info" {
			require.Contains(t, body, `"cluster":true`)
		}
		if path == "/api/servers" {
			require.Contains(t, body, `"notifications"`, "the worker's heartbeat is visible")
		}
	}
	s.console(t, "POST", "/api/queues/bulk:pause", 204)
	require.Contains(t, s.console(t, "GET", "/api/queues/bulk", 200), `"paused":true`)
	s.console(t, "POST", "/api/queues/bulk:resume", 204)
	require.Contains(t, s.console(t, "GET", "/api/queues/bulk", 200), `"paused":false`)

	for _, p := range []*proc{s.api, s.worker, s.scheduler} {
		out := p.out.String()
		for _, bad := range []string{"CROSSSLOT", "MOVED", "ASK ", "CLUSTERDOWN", "TRYAGAIN", "redis eval error", "script"} {
			require.NotContains(t, out, bad, "%s logged a cluster error:\n%s", p.name, out)
		}
	}
}

// The node holding the notifications queue is killed mid-send and comes
// back empty (no persistence; it keeps its slots from nodes.conf), while
// the other two keep their data. That queue's epoch key vanished with it,
// so the next dispatch scan re-offers the live rows; nothing is lost and
// nothing is sent twice.
func TestRedisClusterNodeRestart(t *testing.T) {
	t.Parallel()
	rc := startCluster(t)
	s := newStack(t, newDatabase(t, sharedPostgres), rc)
	node := rc.owner(t, jobs.QueueNotifications)
	require.NotEqual(t, node, rc.owner(t, jobs.QueueMaintenance), "the dispatcher's own queue stays up")
	n := 20 * scale()
	var accepted atomic.Int32
	restarted := make(chan struct{})
	var logAt atomic.Int64
	s.twilio.OnAccept(func(fakes.TwilioMessage) {
		if accepted.Add(1) == int32(n/4) {
			logAt.Store(int64(len(s.worker.out.String())))
			go func() { node.proc.kill(); node.proc.start(); close(restarted) }()
		}
	})
	started := time.Now()
	ids := s.texts(n, "cluster-restart")
	select {
	case <-restarted:
	case <-time.After(4 * time.Minute):
		t.Fatalf("the node was never restarted; worker:\n%s", s.worker.out.String())
	}
	s.twilio.OnAccept(nil)
	node.wait(t)
	eventually(t, 2*time.Minute, rc.healthy)
	ids = append(ids, s.texts(n/2, "cluster-restart-after")...)
	checkTexts(t, s, "Redis Cluster node restart (empty)", ids, started, 4*time.Minute)
	require.Contains(t, s.worker.out.String()[logAt.Load():], "redis lost its tasks",
		"the dispatcher noticed the emptied node")
}

// console calls the ops console (asynqmon behind admin auth) and returns
// the body.
func (s *stack) console(t *testing.T, method, path string, want int) string {
	t.Helper()
	req, err := http.NewRequest(method, s.baseURL+"/monitoring"+path, nil)
	require.NoError(t, err)
	req.SetBasicAuth("admin", s.admin)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, want, resp.StatusCode, "%s %s: %s", method, path, b)
	return string(b)
}
