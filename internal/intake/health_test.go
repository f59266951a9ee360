package intake_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/intake"
	"github.com/errandhq/errand/internal/metrics"
	"github.com/errandhq/errand/internal/ratelimit"
	"github.com/errandhq/errand/internal/testapp"
)

func TestHealthz(t *testing.T) {
	app := testapp.New(t)

	resp := app.Do("GET", "/healthz", "", nil)
	require.Equal(t, 200, resp.Status)
	require.Equal(t, "ok", resp.JSON()["status"])
	require.NotEmpty(t, resp.Header.Get("X-Request-Id"))
}

func TestReadyzWhenEverythingAnswers(t *testing.T) {
	app := testapp.New(t)

	resp := app.Do("GET", "/readyz", "", nil)
	require.Equalf(t, 200, resp.Status, "body: %s", resp.Body)
	require.JSONEq(t, `{"status":"ok","checks":{"postgres":"ok","redis":"ok"}}`, string(resp.Body))
}

// closedAddr is a local address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	a := l.Addr().String()
	require.NoError(t, l.Close())
	return a
}

// deadRedis is a Redis client for a port nothing listens on, failing fast.
func deadRedis(t *testing.T) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: closedAddr(t), MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

// serverDeps are the app's intake collaborators with some replaced.
func serverDeps(app *testapp.App, edit func(*intake.Deps)) intake.Deps {
	d := intake.Deps{
		Store: app.Store, Redis: app.Redis, Inspector: app.Inspector, Dispatcher: app.Dispatcher, Clock: app.Clock,
		Logger: app.Logger, Metrics: metrics.New(), Limiter: ratelimit.New(app.Redis), SecLog: app.SecLog,
		Files: app.Files, AdminToken: app.AdminToken, MaxBodyBytes: 1 << 20, RateLimit: ratelimit.PerSecond(100, 100),
	}
	edit(&d)
	return d
}

// serverWith builds a second intake on the app's collaborators, with some
// of them replaced, and serves one request on it.
func serverWith(t *testing.T, app *testapp.App, edit func(*intake.Deps), method, path, key string) *httptest.ResponseRecorder {
	t.Helper()
	srv := intake.NewServer(serverDeps(app, edit))
	req := httptest.NewRequest(method, path, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	return rec
}

func TestReadyzNamesTheDependencyThatIsDown(t *testing.T) {
	app := testapp.New(t)

	deadPostgres, err := db.Open(context.Background(), "postgres://postgres@"+closedAddr(t)+"/errand?sslmode=disable&connect_timeout=1", "", 1)
	require.NoError(t, err)
	t.Cleanup(deadPostgres.Close)

	cases := []struct {
		name   string
		edit   func(*intake.Deps)
		checks map[string]string
	}{
		{"redis down", func(d *intake.Deps) { d.Redis = deadRedis(t) },
			map[string]string{"postgres": "ok", "redis": "unreachable"}},
		{"postgres down", func(d *intake.Deps) { d.Store = deadPostgres },
			map[string]string{"postgres": "unreachable", "redis": "ok"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := serverWith(t, app, c.edit, "GET", "/readyz", "")
			require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
			var body struct {
				Status string            `json:"status"`
				Checks map[string]string `json:"checks"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			require.Equal(t, "unavailable", body.Status)
			require.Equal(t, c.checks, body.Checks)
		})
	}
}

// A tenant request while the rate limiter's Redis is down is refused as a
// dependency failure (503 in the error format), not let through and not a
// bare 500.
func TestTenantRequestWhenRedisIsDownIs503(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("redis-down")

	rec := serverWith(t, app, func(d *intake.Deps) {
		d.Redis = deadRedis(t)
		d.Limiter = ratelimit.New(d.Redis)
	}, "GET", "/v1/contacts/anyone", a.Key)
	resp := testapp.Response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
	requireError(t, resp, http.StatusServiceUnavailable, "unavailable")
}

// PostgreSQL not answering is a dependency failure too: 503 in the error
// format with Retry-After (API.md), for a tenant call whose key must be
// looked up and for an admin call, never a bare 500.
func TestRequestsWhenPostgresIsDownAre503(t *testing.T) {
	app := testapp.New(t)
	a := app.NewTenant("postgres-down")
	deadPostgres, err := db.Open(context.Background(), "postgres://postgres@"+closedAddr(t)+"/errand?sslmode=disable&connect_timeout=1", "", 1)
	require.NoError(t, err)
	t.Cleanup(deadPostgres.Close)
	down := func(d *intake.Deps) { d.Store = deadPostgres }

	for _, c := range []struct{ path, key string }{
		{"/v1/contacts/anyone", a.Key},
		{"/admin/v1/tenants/" + a.ID.String(), app.AdminToken},
	} {
		rec := serverWith(t, app, down, "GET", c.path, c.key)
		resp := testapp.Response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
		requireError(t, resp, http.StatusServiceUnavailable, "unavailable")
		require.Equal(t, "5", rec.Header().Get("Retry-After"), c.path)
	}
	// The same server with PostgreSQL up answers as usual: the 503 is the
	// dependency, not the route.
	require.Equal(t, http.StatusNotFound, serverWith(t, app, func(*intake.Deps) {}, "GET", "/v1/contacts/anyone", a.Key).Code)
}

func TestMetricsCountRequestsByRoute(t *testing.T) {
	app := testapp.New(t)

	require.Equal(t, 200, app.Do("GET", "/healthz", "", nil).Status)
	require.Equal(t, 404, app.Do("GET", "/no/such/route", "", nil).Status)

	resp := app.Do("GET", "/metrics", "", nil)
	require.Equal(t, 200, resp.Status)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	body := string(resp.Body)
	require.Contains(t, body, `errand_http_requests_total{code="200",method="GET",route="GET /healthz"} 1`)
	require.Contains(t, body, `errand_http_requests_total{code="404",method="GET",route="unrouted"} 1`)
	require.Contains(t, body, `errand_http_request_duration_seconds_count{route="GET /healthz"} 1`)
	require.NotContains(t, body, "/no/such/route", "labels are route patterns, never raw paths")
}

func TestOpenAPIIsServed(t *testing.T) {
	app := testapp.New(t)

	resp := app.Do("GET", "/openapi.yaml", "", nil)
	require.Equal(t, 200, resp.Status)
	require.Equal(t, "application/yaml", resp.Header.Get("Content-Type"))
}
