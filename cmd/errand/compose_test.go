package main

import (
	"bufio"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/errandhq/errand/internal/config"
)

// Docker is not needed to check the deployment files: they are read as
// data and held against the code that consumes their settings.

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Expose      []string          `yaml:"expose"`
	Volumes     []string          `yaml:"volumes"`
	Restart     string            `yaml:"restart"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	StopGracePeriod string `yaml:"stop_grace_period"`
}

var quotedEnvNameRe = regexp.MustCompile(`"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"`)

// configEnvNames are the environment variables internal/config reads: the
// quoted UPPER_CASE names in its source.
func configEnvNames(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile("../../internal/config/config.go")
	require.NoError(t, err)
	var names []string
	for _, m := range quotedEnvNameRe.FindAllStringSubmatch(string(src), -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	slices.Sort(names)
	// Guard the extraction itself: an empty list would pass everything.
	require.GreaterOrEqual(t, len(names), 20, "found only %v in config.go", names)
	for _, must := range []string{"DATABASE_URL", "REDIS_URL", "ERRAND_ADMIN_TOKEN", "ERRAND_SECRET_KEY", "TWILIO_ACCOUNT_SID", "RESEND_API_KEY"} {
		require.Contains(t, names, must)
	}
	return names
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile("../../docker-compose.yml")
	require.NoError(t, err)
	var c composeFile
	require.NoError(t, yaml.Unmarshal(raw, &c))
	return c
}

func TestDockerCompose(t *testing.T) {
	t.Parallel()
	c := readCompose(t)
	names := configEnvNames(t)

	for _, svc := range []string{"postgres", "redis", "migrate", "api", "worker", "scheduler"} {
		require.Contains(t, c.Services, svc)
	}
	require.Contains(t, c.Services["postgres"].Image, "postgres:16")
	require.Contains(t, c.Services["postgres"].Healthcheck.Test, "pg_isready -U errand -d errand")
	require.Contains(t, c.Services["redis"].Image, "redis:7")
	require.Contains(t, c.Services["redis"].Healthcheck.Test, "ping")
	require.Contains(t, c.Services["postgres"].Volumes, "postgres-data:/var/lib/postgresql/data")
	require.Contains(t, c.Volumes, "postgres-data")
	require.Contains(t, c.Volumes, "errand-data")

	migrate := c.Services["migrate"]
	require.True(t, strings.HasPrefix(migrate.Environment["DATABASE_URL"], "postgres://errand:"), "migrations run as the owner")
	require.Contains(t, c.Services["postgres"].Volumes, "./scripts/compose-db-init.sh:/docker-entrypoint-initdb.d/errand-login.sh:ro",
		"a fresh volume gets the roles' login")
	require.Equal(t, []string{"migrate", "up"}, migrate.Command)
	require.Equal(t, "service_healthy", migrate.DependsOn["postgres"].Condition)
	require.Equal(t, "no", migrate.Restart, "a finished migration must not be restarted")

	roles := []string{"api", "worker", "scheduler"}
	for _, role := range roles {
		s := c.Services[role]
		t.Run(role, func(t *testing.T) {
			require.Equal(t, []string{role}, s.Command)
			require.NotEmpty(t, s.Image)
			require.NotNil(t, s.Build)
			require.Equal(t, migrate.Image, s.Image, "one image for every role")
			require.Equal(t, migrate.Build, s.Build, "one build for every role")
			require.Equal(t, "service_completed_successfully", s.DependsOn["migrate"].Condition)
			require.Equal(t, "service_healthy", s.DependsOn["redis"].Condition)

			shared := maps.Clone(migrate.Environment)
			shared["DATABASE_URL"] = s.Environment["DATABASE_URL"]
			require.Equal(t, shared, s.Environment, "the roles share one environment")
			require.Contains(t, s.Environment["DATABASE_URL"], "@postgres:5432/")
			require.True(t, strings.HasPrefix(s.Environment["DATABASE_URL"], "postgres://errand_login:"),
				"the roles log in as the unprivileged member of errand_app")
			require.Equal(t, "redis://redis:6379/0", s.Environment["REDIS_URL"])
			for name := range s.Environment {
				require.Contains(t, names, name, "%s is not a setting internal/config reads", name)
			}
			for _, name := range names {
				require.Contains(t, s.Environment, name, "%s cannot be set through compose", name)
			}
			// The secrets come from outside the file, never written in it.
			require.True(t, strings.HasPrefix(s.Environment["ERRAND_ADMIN_TOKEN"], "${ERRAND_ADMIN_TOKEN"))
			require.True(t, strings.HasPrefix(s.Environment["ERRAND_SECRET_KEY"], "${ERRAND_SECRET_KEY"))
			require.NotEmpty(t, s.StopGracePeriod, "Docker's default 10s would SIGKILL running jobs")
		})
	}

	api := c.Services["api"]
	require.Equal(t, "0.0.0.0:8080", api.Environment["ERRAND_HTTP_ADDR"])
	require.True(t, slices.ContainsFunc(api.Ports, func(p string) bool { return strings.HasSuffix(p, ":8080") }),
		"api publishes 8080: %v", api.Ports)
	for _, role := range []string{"worker", "scheduler"} {
		require.Equal(t, "${ERRAND_METRICS_ADDR:-0.0.0.0:9090}", c.Services[role].Environment["ERRAND_METRICS_ADDR"])
		require.Contains(t, c.Services[role].Expose, "9090", "%s's metrics can be scraped", role)
	}
	for _, role := range []string{"api", "worker"} {
		require.Equal(t, "/var/lib/errand", c.Services[role].Environment["ERRAND_DATA_DIR"])
		require.Contains(t, c.Services[role].Volumes, "errand-data:/var/lib/errand",
			"%s shares the file store", role)
	}
}

// TestEnvExample checks .env.example lists every setting with a comment
// and, as its value, the built-in default.
func TestEnvExample(t *testing.T) {
	t.Parallel()
	names := configEnvNames(t)
	f, err := os.Open("../../.env.example")
	require.NoError(t, err)
	defer f.Close()

	assignRe := regexp.MustCompile(`^([A-Z][A-Z0-9_]*)=(.*)$`)
	values := map[string]string{}
	prev := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := assignRe.FindStringSubmatch(line); m != nil {
			require.NotContains(t, values, m[1], "%s is listed twice", m[1])
			require.True(t, strings.HasPrefix(prev, "# "), "%s has no comment line above it", m[1])
			values[m[1]] = m[2]
		}
		prev = line
	}
	require.NoError(t, sc.Err())

	for _, name := range names {
		require.Contains(t, values, name, ".env.example does not list %s", name)
	}
	for name := range values {
		if name == "POSTGRES_PASSWORD" || name == "ERRAND_APP_DB_PASSWORD" { // compose's database logins, not errand's
			continue
		}
		require.Contains(t, names, name, ".env.example lists %s, which errand does not read", name)
	}
	require.Empty(t, values["ERRAND_ADMIN_TOKEN"], "no secret in the example")
	require.Empty(t, values["ERRAND_SECRET_KEY"], "no secret in the example")

	defaults, err := config.Load(func(string) string { return "" })
	require.NoError(t, err)
	example, err := config.Load(func(name string) string { return values[name] })
	require.NoError(t, err)
	require.Equal(t, defaults, example, "the values in .env.example must be the defaults")
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../Dockerfile")
	require.NoError(t, err)
	df := string(raw)
	require.Regexp(t, `(?m)^FROM golang:\$\{GO_VERSION\} AS build$`, df)
	require.Regexp(t, `(?m)^ARG GO_VERSION=1\.26`, df)
	require.Contains(t, df, "CGO_ENABLED=0 go build")
	require.Contains(t, df, "-o /errand ./cmd/errand")
	require.Regexp(t, `(?m)^USER nonroot`, df)
	require.Regexp(t, `(?m)^ENTRYPOINT \["/errand"\]$`, df)
	require.Equal(t, 2, strings.Count(df, "\nFROM "), "multi-stage: a builder and a runtime")

	ignore, err := os.ReadFile("../../.dockerignore")
	require.NoError(t, err)
	lines := strings.Split(string(ignore), "\n")
	for _, must := range []string{".env", ".git/", ".errand/"} {
		require.Contains(t, lines, must, ".dockerignore must keep %s out of the build context", must)
	}
}
