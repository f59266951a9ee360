// Package redisconn reads REDIS_URL into the connection options asynq,
// asynqmon and go-redis share, for one server, a Sentinel-managed master or
// a Cluster:
//
//	redis://[:password@]host:port[/db]          one server (rediss:// for TLS)
//	redis-socket://[:password@]/path[?db=N]      one server on a Unix socket
//	redis-sentinel://[:password@]h1:p1,h2:p2[/db]?master=NAME[&sentinel_password=P]
//	redis-cluster://[:password@]h1:p1,h2:p2,h3:p3
//
// In the Sentinel form the password is the data nodes'; a separate
// sentinel_password authenticates to the sentinels.
package redisconn

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Parse reads a REDIS_URL.
func Parse(raw string) (asynq.RedisConnOpt, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("REDIS_URL is not a URL")
	}
	switch u.Scheme {
	case "redis", "rediss", "redis-socket":
		opt, err := asynq.ParseRedisURI(raw)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		return opt, nil
	case "redis-sentinel":
		return sentinel(u)
	case "redis-cluster":
		return cluster(u)
	}
	return nil, fmt.Errorf("REDIS_URL: unsupported scheme %q (want redis, rediss, redis-socket, redis-sentinel or redis-cluster)", u.Scheme)
}

// Client makes a go-redis client for opt.
func Client(opt asynq.RedisConnOpt) redis.UniversalClient {
	return opt.MakeRedisClient().(redis.UniversalClient)
}

func hosts(u *url.URL) ([]string, error) {
	var out []string
	for _, h := range strings.Split(u.Host, ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, h)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("REDIS_URL: no host")
	}
	return out, nil
}

func password(u *url.URL) string {
	p, _ := u.User.Password()
	return p
}

func sentinel(u *url.URL) (asynq.RedisConnOpt, error) {
	addrs, err := hosts(u)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	master := q.Get("master")
	if master == "" {
		return nil, errors.New("REDIS_URL: a redis-sentinel URL needs ?master=<name>")
	}
	db := 0
	if p := strings.Trim(u.Path, "/"); p != "" {
		if db, err = strconv.Atoi(p); err != nil {
			return nil, errors.New("REDIS_URL: the database number must be the path, e.g. /0")
		}
	}
	return asynq.RedisFailoverClientOpt{MasterName: master, SentinelAddrs: addrs, Password: password(u),
		SentinelPassword: q.Get("sentinel_password"), DB: db}, nil
}

func cluster(u *url.URL) (asynq.RedisConnOpt, error) {
	addrs, err := hosts(u)
	if err != nil {
		return nil, err
	}
	if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
		return nil, errors.New("REDIS_URL: Redis Cluster has only database 0")
	}
	return asynq.RedisClusterClientOpt{Addrs: addrs, Password: password(u)}, nil
}
