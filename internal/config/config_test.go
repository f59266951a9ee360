package config

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaultsAreAPIMDs(t *testing.T) {
	t.Parallel()
	c, err := Load(env(nil))
	require.NoError(t, err)
	require.Equal(t, "postgres://postgres@127.0.0.1:5432/errand?sslmode=disable", c.DatabaseURL)
	require.Equal(t, "redis://127.0.0.1:6379/0", c.RedisURL)
	require.Equal(t, "127.0.0.1:8080", c.HTTPAddr)
	require.Equal(t, "http://127.0.0.1:8080", c.PublicURL)
	require.Equal(t, "errand_app", c.DBRole)
	require.Equal(t, slog.LevelInfo, c.LogLevel)
	require.False(t, c.Twilio.Configured())
	require.False(t, c.Resend.Configured())
	require.Error(t, c.Production(), "production needs secrets")
}

func TestValuesAreParsedAndChecked(t *testing.T) {
	t.Parallel()
	c, err := Load(env(map[string]string{
		"ERRAND_PUBLIC_URL": "https://errand.example.com/", "ERRAND_SHUTDOWN_TIMEOUT": "40s",
		"ERRAND_WORKER_CONCURRENCY": "8", "ERRAND_DB_ROLE": "none", "ERRAND_LOG_LEVEL": "debug",
		"ERRAND_ADMIN_TOKEN": "a-long-random-admin-token-0123456789", "ERRAND_SECRET_KEY": "a-long-random-secret-key-0123456789abcdef",
		"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM_NUMBER": "+15005550006",
	}))
	require.NoError(t, err)
	require.Equal(t, "https://errand.example.com", c.PublicURL)
	require.Equal(t, 40*time.Second, c.ShutdownTimeout)
	require.Equal(t, 8, c.WorkerConcurrency)
	require.Empty(t, c.DBRole)
	require.Equal(t, slog.LevelDebug, c.LogLevel)
	require.True(t, c.Twilio.Configured())
	require.NoError(t, c.Production())

	_, err = Load(env(map[string]string{"ERRAND_SHUTDOWN_TIMEOUT": "soon", "ERRAND_WORKER_CONCURRENCY": "-1",
		"ERRAND_PUBLIC_URL": "not a url", "ERRAND_LOG_LEVEL": "loud", "RESEND_API_KEY": "re_x"}))
	require.Error(t, err)
	for _, name := range []string{"ERRAND_SHUTDOWN_TIMEOUT", "ERRAND_WORKER_CONCURRENCY", "ERRAND_PUBLIC_URL", "ERRAND_LOG_LEVEL", "RESEND_FROM"} {
		require.ErrorContains(t, err, name)
	}
}
