// Package config reads Errand's settings from the environment, with the
// names API.md fixes, and validates them before anything starts. It never
// logs or prints a secret.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is every setting of every role.
type Config struct {
	DatabaseURL string // DATABASE_URL
	DBRole      string // ERRAND_DB_ROLE: role each connection switches to; "none" keeps the login role
	DBMaxConns  int32  // ERRAND_DB_MAX_CONNS
	RedisURL    string // REDIS_URL
	HTTPAddr    string // ERRAND_HTTP_ADDR
	MetricsAddr string // ERRAND_METRICS_ADDR: ops listener (/metrics, /healthz, /readyz) of every role; "" = none
	PublicURL   string // ERRAND_PUBLIC_URL
	AdminToken  string // ERRAND_ADMIN_TOKEN
	SecretKey   string // ERRAND_SECRET_KEY: signs and encrypts (download URLs, stored files, code hashes)
	DataDir     string // ERRAND_DATA_DIR: the local file store

	Twilio Twilio
	Resend Resend

	WorkerConcurrency int           // ERRAND_WORKER_CONCURRENCY
	ShutdownTimeout   time.Duration // ERRAND_SHUTDOWN_TIMEOUT
	MaxBodyBytes      int64         // ERRAND_MAX_BODY_BYTES
	RateLimit         int           // ERRAND_RATE_LIMIT: requests per second per API key
	RateBurst         int           // ERRAND_RATE_BURST
	APIKeyCacheTTL    time.Duration // ERRAND_API_KEY_CACHE_TTL: how long a live API key is trusted without asking PostgreSQL
	DispatchInterval  time.Duration // ERRAND_DISPATCH_INTERVAL: due-scan and reconciler period
	DispatchHorizon   time.Duration // ERRAND_DISPATCH_HORIZON: how far ahead tasks are put in Redis
	ExportTTL         time.Duration // ERRAND_EXPORT_TTL: how long export files are kept
	// Deletions and retention.
	DeletionGrace         time.Duration // ERRAND_DELETION_GRACE: a cancelled tenant's grace period before its purge
	DeletionScanInterval  time.Duration // ERRAND_DELETION_SCAN_INTERVAL: how often due (or interrupted) deletions are run
	PurgeBatch            int           // ERRAND_PURGE_BATCH: rows per transaction of purges, erasures and the retention sweep
	ArchivedTaskRetention time.Duration // ERRAND_ARCHIVED_TASK_RETENTION: how long asynq keeps tasks that gave up
	LogLevel              slog.Level    // ERRAND_LOG_LEVEL

	// Verification codes and credentials of professionals.
	VerifyPerAddress   int   // ERRAND_VERIFY_PER_ADDRESS: codes per hour to one address, whichever tenant asks
	VerifyPerTenant    int   // ERRAND_VERIFY_PER_TENANT: codes per hour one tenant may request
	CredentialMaxBytes int64 // ERRAND_CREDENTIAL_MAX_BYTES: largest credential document upload

	ImportMaxBytes int64 // ERRAND_IMPORT_MAX_BYTES: largest client-list (CSV) upload

	// TaskCheckInterval is how often an idle worker asks Redis for work
	// (ERRAND_TASK_CHECK_INTERVAL): the floor of enqueue→start latency.
	TaskCheckInterval time.Duration
	// Provider rate limits, per second, shared by every worker through
	// Redis; 0 = none. ERRAND_SMS_RATE is the whole Twilio account,
	// ERRAND_SMS_NUMBER_RATE each sending number, ERRAND_EMAIL_RATE Resend.
	SMSRate       int
	SMSNumberRate int
	EmailRate     int
}

// Twilio holds the SMS provider's settings. Without an account SID and a
// token, messages go to the development outbox.
type Twilio struct {
	AccountSID string // TWILIO_ACCOUNT_SID
	AuthToken  string // TWILIO_AUTH_TOKEN
	From       string // TWILIO_FROM_NUMBER
	BaseURL    string // TWILIO_API_BASE_URL
}

// Configured reports whether real SMS sending is set up.
func (t Twilio) Configured() bool { return t.AccountSID != "" && t.AuthToken != "" }

// Resend holds the email provider's settings. Without an API key, messages
// go to the development outbox.
type Resend struct {
	APIKey        string // RESEND_API_KEY
	From          string // RESEND_FROM
	BaseURL       string // RESEND_BASE_URL
	WebhookSecret string // RESEND_WEBHOOK_SECRET
}

// Configured reports whether real email sending is set up.
func (r Resend) Configured() bool { return r.APIKey != "" }

// Load reads the environment through getenv and applies the defaults of
// API.md. It fails on values that cannot be parsed; Validate checks what a
// particular role needs.
func Load(getenv func(string) string) (Config, error) {
	var errs []error
	str := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	num := func(name string, def int) int {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("%s: want a non-negative integer, got %q", name, v))
			return def
		}
		return n
	}
	dur := func(name string, def time.Duration) time.Duration {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s: want a positive duration like 30s, got %q", name, v))
			return def
		}
		return d
	}

	c := Config{
		DatabaseURL: str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/errand?sslmode=disable"),
		DBRole:      str("ERRAND_DB_ROLE", "errand_app"),
		DBMaxConns:  int32(num("ERRAND_DB_MAX_CONNS", 20)),
		RedisURL:    str("REDIS_URL", "redis://127.0.0.1:6379/0"),
		HTTPAddr:    str("ERRAND_HTTP_ADDR", "127.0.0.1:8080"),
		MetricsAddr: str("ERRAND_METRICS_ADDR", ""),
		PublicURL:   str("ERRAND_PUBLIC_URL", ""),
		AdminToken:  str("ERRAND_ADMIN_TOKEN", ""),
		SecretKey:   str("ERRAND_SECRET_KEY", ""),
		DataDir:     str("ERRAND_DATA_DIR", ".errand/data"),
		Twilio: Twilio{
			AccountSID: str("TWILIO_ACCOUNT_SID", ""),
			AuthToken:  str("TWILIO_AUTH_TOKEN", ""),
			From:       str("TWILIO_FROM_NUMBER", ""),
			BaseURL:    str("TWILIO_API_BASE_URL", ""),
		},
		Resend: Resend{
			APIKey:        str("RESEND_API_KEY", ""),
			From:          str("RESEND_FROM", ""),
			BaseURL:       str("RESEND_BASE_URL", ""),
			WebhookSecret: str("RESEND_WEBHOOK_SECRET", ""),
		},
		WorkerConcurrency: num("ERRAND_WORKER_CONCURRENCY", 20),
		ShutdownTimeout:   dur("ERRAND_SHUTDOWN_TIMEOUT", 25*time.Second),
		MaxBodyBytes:      int64(num("ERRAND_MAX_BODY_BYTES", 1<<20)),
		RateLimit:         num("ERRAND_RATE_LIMIT", 100),
		RateBurst:         num("ERRAND_RATE_BURST", 200),
		APIKeyCacheTTL:    dur("ERRAND_API_KEY_CACHE_TTL", time.Second),
		DispatchInterval:  dur("ERRAND_DISPATCH_INTERVAL", 15*time.Second),
		DispatchHorizon:   dur("ERRAND_DISPATCH_HORIZON", 15*time.Minute),

		VerifyPerAddress:   num("ERRAND_VERIFY_PER_ADDRESS", 5),
		VerifyPerTenant:    num("ERRAND_VERIFY_PER_TENANT", 1000),
		CredentialMaxBytes: int64(num("ERRAND_CREDENTIAL_MAX_BYTES", 10<<20)),
		ImportMaxBytes:     int64(num("ERRAND_IMPORT_MAX_BYTES", 100<<20)),

		ExportTTL: dur("ERRAND_EXPORT_TTL", 7*24*time.Hour),

		DeletionGrace:         dur("ERRAND_DELETION_GRACE", 90*24*time.Hour),
		DeletionScanInterval:  dur("ERRAND_DELETION_SCAN_INTERVAL", 15*time.Minute),
		PurgeBatch:            num("ERRAND_PURGE_BATCH", 2000),
		ArchivedTaskRetention: dur("ERRAND_ARCHIVED_TASK_RETENTION", 30*24*time.Hour),

		TaskCheckInterval: dur("ERRAND_TASK_CHECK_INTERVAL", 20*time.Millisecond),
		SMSRate:           num("ERRAND_SMS_RATE", 100),
		SMSNumberRate:     num("ERRAND_SMS_NUMBER_RATE", 0),
		EmailRate:         num("ERRAND_EMAIL_RATE", 2),
	}
	if strings.EqualFold(c.DBRole, "none") {
		c.DBRole = ""
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.HTTPAddr
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if u, err := url.Parse(c.PublicURL); err != nil || u.Scheme == "" || u.Host == "" {
		errs = append(errs, fmt.Errorf("ERRAND_PUBLIC_URL: want an absolute URL, got %q", c.PublicURL))
	}
	if err := c.LogLevel.UnmarshalText([]byte(str("ERRAND_LOG_LEVEL", "info"))); err != nil {
		errs = append(errs, fmt.Errorf("ERRAND_LOG_LEVEL: %w", err))
	}
	if c.WorkerConcurrency == 0 {
		c.WorkerConcurrency = 1
	}
	if c.Twilio.Configured() && c.Twilio.From == "" {
		errs = append(errs, errors.New("TWILIO_FROM_NUMBER is required when Twilio credentials are set"))
	}
	if c.Resend.Configured() && c.Resend.From == "" {
		errs = append(errs, errors.New("RESEND_FROM is required when RESEND_API_KEY is set"))
	}
	return c, errors.Join(errs...)
}

// Production checks the settings a production role cannot run without.
// Development (`errand dev`) generates what is missing instead.
func (c Config) Production() error {
	var errs []error
	if len(c.AdminToken) < 24 {
		errs = append(errs, errors.New("ERRAND_ADMIN_TOKEN must be set to a random secret of at least 24 characters"))
	}
	if len(c.SecretKey) < 32 {
		errs = append(errs, errors.New("ERRAND_SECRET_KEY must be set to a random secret of at least 32 characters"))
	}
	return errors.Join(errs...)
}
