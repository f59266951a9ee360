package redisconn

import (
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		url  string
		want asynq.RedisConnOpt
	}{
		{"redis://127.0.0.1:6379/3", asynq.RedisClientOpt{Addr: "127.0.0.1:6379", DB: 3}},
		{"redis://:pw@10.0.0.1:6380", asynq.RedisClientOpt{Addr: "10.0.0.1:6380", Password: "pw"}},
		{"redis-socket:///run/redis.sock?db=2", asynq.RedisClientOpt{Network: "unix", Addr: "/run/redis.sock", DB: 2}},
		{"redis-sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/1?master=errand&sentinel_password=sp",
			asynq.RedisFailoverClientOpt{MasterName: "errand", SentinelAddrs: []string{"10.0.0.1:26379", "10.0.0.2:26379"},
				Password: "pw", SentinelPassword: "sp", DB: 1}},
		{"redis-cluster://:pw@10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000",
			asynq.RedisClusterClientOpt{Addrs: []string{"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:7000"}, Password: "pw"}},
	}
	for _, c := range cases {
		got, err := Parse(c.url)
		require.NoError(t, err, c.url)
		require.Equal(t, c.want, got, c.url)
	}
	for _, bad := range []string{"http://x", "redis-sentinel://a:1,b:2", "redis-cluster://a:1/2", "redis-sentinel://a:1/x?master=m", "::"} {
		_, err := Parse(bad)
		require.Error(t, err, bad)
	}
}
