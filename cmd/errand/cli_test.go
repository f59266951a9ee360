package main

import (
	"context"
	"io/fs"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/bench"
	"github.com/errandhq/errand/internal/testenv"
)

func TestUsage(t *testing.T) {
	t.Parallel()

	t.Run("no arguments print the usage on stderr", func(t *testing.T) {
		t.Parallel()
		stdout, stderr, err := runCmd(t, nil)
		require.Error(t, err)
		require.Contains(t, stderr, "usage: errand <command>")
		for _, cmd := range []string{"dev", "api", "worker", "scheduler", "migrate up|down|status", "tenant create"} {
			require.Contains(t, stderr, cmd)
		}
		require.Empty(t, stdout)
	})

	t.Run("an unknown command is an error", func(t *testing.T) {
		t.Parallel()
		_, stderr, err := runCmd(t, nil, "frobnicate")
		require.ErrorContains(t, err, `unknown command "frobnicate"`)
		require.Contains(t, stderr, "usage: errand <command>")
	})

	t.Run("help prints the usage on stdout", func(t *testing.T) {
		t.Parallel()
		stdout, _, err := runCmd(t, nil, "help")
		require.NoError(t, err)
		require.Contains(t, stdout, "usage: errand <command>")
	})
}

// migrations are the embedded migration files, oldest first.
func migrations(t *testing.T) []string {
	t.Helper()
	files, err := fs.Glob(db.Migrations(), "*.sql")
	require.NoError(t, err)
	require.Contains(t, files, "0001_foundation.sql")
	slices.Sort(files)
	return files
}

func requireStatus(t *testing.T, out, file, state string) {
	t.Helper()
	require.Regexp(t, `(?m)^`+regexp.QuoteMeta(file)+`\s+`+state, out)
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	files := migrations(t)
	last := files[len(files)-1]

	t.Run("status lists the applied migrations", func(t *testing.T) {
		t.Parallel()
		stdout, _, err := runCmd(t, devEnv(t), "migrate", "status")
		require.NoError(t, err)
		for _, f := range files {
			requireStatus(t, stdout, f, `applied \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
		}
		require.NotContains(t, stdout, "pending")
	})

	t.Run("unknown or missing subcommands are errors", func(t *testing.T) {
		t.Parallel()
		_, _, err := runCmd(t, devEnv(t), "migrate", "bogus")
		require.ErrorContains(t, err, `unknown migrate command "bogus"`)
		_, _, err = runCmd(t, devEnv(t), "migrate")
		require.ErrorContains(t, err, "usage: errand migrate up|down|status")
		_, _, err = runCmd(t, devEnv(t), "migrate", "up", "extra")
		require.Error(t, err)
	})

	t.Run("up, status and down on a new database", func(t *testing.T) {
		t.Parallel()
		env := devEnv(t)
		env["DATABASE_URL"] = freshDatabase(t)

		stdout, _, err := runCmd(t, env, "migrate", "status")
		require.NoError(t, err)
		for _, f := range files {
			requireStatus(t, stdout, f, `pending$`)
		}

		stdout, _, err = runCmd(t, env, "migrate", "up")
		require.NoError(t, err)
		for _, f := range files {
			require.Contains(t, stdout, "migrated up "+f)
		}
		stdout, _, err = runCmd(t, env, "migrate", "up")
		require.NoError(t, err, "a second up is a no-op")
		require.NotContains(t, stdout, "migrated up")

		stdout, _, err = runCmd(t, env, "migrate", "status")
		require.NoError(t, err)
		for _, f := range files {
			requireStatus(t, stdout, f, `applied `)
		}

		stdout, _, err = runCmd(t, env, "migrate", "down")
		require.NoError(t, err)
		require.Equal(t, "migrated down "+last+"\n", stdout, "down rolls back the newest migration only")
		stdout, _, err = runCmd(t, env, "migrate", "status")
		require.NoError(t, err)
		requireStatus(t, stdout, last, `pending$`)
		requireStatus(t, stdout, files[0], `applied `)
	})

	t.Run("up creates a missing database", func(t *testing.T) {
		t.Parallel()
		env := devEnv(t)
		env["DATABASE_URL"], _, _ = unusedDatabase(t)
		stdout, _, err := runCmd(t, env, "migrate", "up")
		require.NoError(t, err)
		require.Contains(t, stdout, "migrated up 0001_foundation.sql")
		stdout, _, err = runCmd(t, env, "migrate", "status")
		require.NoError(t, err)
		requireStatus(t, stdout, last, `applied `)
	})
}

var apiKeyLineRe = regexp.MustCompile(`(?m)^api_key (ek_[0-9a-f]{12}_[A-Za-z0-9_-]{43})$`)

func TestTenantCreate(t *testing.T) {
	env := prodEnv(t)
	stdout, stderr, err := runCmd(t, env, "tenant", "create", "--name", "Acme", "--timezone", "America/Chicago")
	require.NoError(t, err, "%s", stderr)
	m := apiKeyLineRe.FindStringSubmatch(stdout)
	require.NotNil(t, m, "no api_key line in:\n%s", stdout)
	key := m[1]
	tenantLine := regexp.MustCompile(`(?m)^tenant\s+(\S+)$`).FindStringSubmatch(stdout)
	require.NotNil(t, tenantLine, stdout)
	tenantID, err := uuid.Parse(tenantLine[1])
	require.NoError(t, err)
	require.NotContains(t, stderr, key, "the key is printed once, on stdout")

	var name, tz, region string
	err = testenv.Owner(t).QueryRow(context.Background(),
		"SELECT name, timezone, default_region FROM tenants WHERE id = $1", tenantID).Scan(&name, &tz, &region)
	require.NoError(t, err)
	require.Equal(t, []string{"Acme", "America/Chicago", "US"}, []string{name, tz, region})
	var stored int
	err = testenv.Owner(t).QueryRow(context.Background(),
		"SELECT count(*) FROM api_keys WHERE tenant_id = $1 AND prefix = $2", tenantID, key[3:15]).Scan(&stored)
	require.NoError(t, err)
	require.Equal(t, 1, stored)

	// The key works against a running api (which starts because the
	// secrets are set).
	api := start(t, env, "api")
	status, body := call(t, http.MethodGet, api.URL+"/v1/contacts/nobody", key, nil)
	require.Equal(t, http.StatusNotFound, status, "an authenticated lookup of a missing contact: %s", body)
	status, body = call(t, http.MethodGet, api.URL+"/v1/contacts/nobody", tamper(key), nil)
	require.Equal(t, http.StatusUnauthorized, status, "%s", body)
	status, body = call(t, http.MethodGet, api.URL+"/monitoring/api/queues", "", nil,
		func(r *http.Request) { r.SetBasicAuth("", env["ERRAND_ADMIN_TOKEN"]) })
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.NotContains(t, api.stdout.String(), "DEVELOPMENT OUTBOX", "the api role sends nothing, so it does not warn")
	require.NoError(t, api.stop(30*time.Second))
	requireNoneOf(t, api.stderr.String(), "the api's logs", key, env["ERRAND_ADMIN_TOKEN"], env["ERRAND_SECRET_KEY"])
}

func TestTenantCreateRefusesBadInput(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		want string // in the error
	}{
		{"unknown time zone", []string{"--name", "Acme", "--timezone", "America/Chicagoo"}, "timezone"},
		{"missing time zone", []string{"--name", "Acme"}, "timezone"},
		{"missing name", []string{"--timezone", "America/Chicago"}, "name"},
		{"unknown region", []string{"--name", "Acme", "--timezone", "America/Chicago", "--region", "ZZ"}, "region"},
		{"unknown flag", []string{"--name", "Acme", "--tz", "America/Chicago"}, "flag provided but not defined"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stdout, _, err := runCmd(t, devEnv(t), append([]string{"tenant", "create"}, tc.args...)...)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, stdout, "api_key")
		})
	}

	t.Run("not create", func(t *testing.T) {
		t.Parallel()
		_, _, err := runCmd(t, devEnv(t), "tenant", "delete")
		require.ErrorContains(t, err, "usage: errand tenant create")
	})
}

func TestProductionRolesNeedSecrets(t *testing.T) {
	t.Parallel()
	for _, role := range []string{"api", "worker", "scheduler"} {
		t.Run(role, func(t *testing.T) {
			t.Parallel()
			env := devEnv(t)
			_, _, err := runCmd(t, env, role)
			require.Error(t, err)
			require.Contains(t, err.Error(), "ERRAND_ADMIN_TOKEN")
			require.Contains(t, err.Error(), "ERRAND_SECRET_KEY")

			env["ERRAND_ADMIN_TOKEN"] = "too-short"
			env["ERRAND_SECRET_KEY"] = randomHex(32)
			_, _, err = runCmd(t, env, role)
			require.ErrorContains(t, err, "ERRAND_ADMIN_TOKEN")
			require.NotContains(t, err.Error(), "ERRAND_SECRET_KEY")
			require.NotContains(t, err.Error(), "too-short", "an error never repeats a secret")
		})
	}
}

func TestProductionRolesNeedMigratedSchema(t *testing.T) {
	t.Parallel()
	env := prodEnv(t)
	env["DATABASE_URL"] = freshDatabase(t)
	for _, role := range []string{"api", "worker", "scheduler"} {
		stdout, _, err := runCmd(t, env, role)
		require.Error(t, err, role)
		require.Contains(t, err.Error(), "errand migrate up", role)
		require.NotContains(t, stdout, "listening on", role)
	}
}

func TestConfigErrorsStopEveryCommand(t *testing.T) {
	t.Parallel()
	env := devEnv(t)
	env["ERRAND_SHUTDOWN_TIMEOUT"] = "soon"
	for _, args := range [][]string{{"dev"}, {"api"}, {"migrate", "status"}, {"tenant", "create", "--name", "A", "--timezone", "UTC"}} {
		_, _, err := runCmd(t, env, args...)
		require.ErrorContains(t, err, "ERRAND_SHUTDOWN_TIMEOUT", "%v", args)
	}
}

// errand bench all runs every benchmark end to end, at a size that takes
// seconds, and prints one table: its header has a ratio column, every
// benchmark has a row, and each row that has a baseline shows its ratio to
// it (load, a load generator, has none and shows "-"). Not parallel: the
// bench flushes the Redis database it is given, this package's.
func TestBenchAllPrintsARatioForEveryBenchmark(t *testing.T) {
	env := devEnv(t)
	var out, errOut syncBuffer
	err := run(context.Background(), []string{"bench", "-scale", "0.001", "-rounds", "3",
		"-redis-db", strconv.Itoa(testenv.RedisOpt(t).DB), "all"}, getenvFrom(env), &out, &errOut)
	require.NoError(t, err, "stderr:\n%s", errOut.String())

	cells := regexp.MustCompile(`\s{2,}`)
	var header []string
	rows := map[string][]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		c := cells.Split(strings.TrimSpace(line), -1)
		if len(c) > 0 && c[0] == "benchmark" {
			header = c
			continue
		}
		if header != nil && len(c) >= len(header)-1 { // the notes may be empty
			rows[c[0]] = c
		}
	}
	require.NotNil(t, header, "no report table:\n%s", out.String())
	ratio := slices.Index(header, "ratio")
	require.Positive(t, ratio, "the table has a ratio column: %q", header)
	for _, b := range bench.Benchmarks() {
		var mine []string
		for name := range rows {
			if name == b.Name || strings.HasPrefix(name, b.Name+" ") {
				mine = append(mine, name)
			}
		}
		require.NotEmpty(t, mine, "no row for benchmark %s:\n%s", b.Name, out.String())
		for _, name := range mine {
			if b.Name == "load" {
				require.Equal(t, "-", rows[name][ratio], "load has no baseline")
				continue
			}
			require.Regexp(t, `^\d+\.\d\d×$`, rows[name][ratio], "%s's ratio to its baseline:\n%s", name, out.String())
		}
	}
}

// errand bench measures against one Redis server; a Sentinel or Cluster
// REDIS_URL is understood and refused by name, not as a bad URL.
func TestBenchNeedsOneRedisServer(t *testing.T) {
	t.Parallel()
	env := devEnv(t)
	for _, u := range []string{"redis-sentinel://127.0.0.1:1/0?master=m", "redis-cluster://127.0.0.1:1,127.0.0.1:2"} {
		env["REDIS_URL"] = u
		_, _, err := runCmd(t, env, "bench", "all")
		require.ErrorContains(t, err, "bench needs a single Redis server", u)
	}
}
