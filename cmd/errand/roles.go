package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/errandhq/errand/db"
	"github.com/errandhq/errand/internal/account"
	"github.com/errandhq/errand/internal/config"
	"github.com/errandhq/errand/internal/seclog"
	"github.com/errandhq/errand/jobs"
)

type role int

const (
	roleDev role = iota
	roleAPI
	roleWorker
	roleScheduler
)

func (r role) String() string {
	return [...]string{"dev", "api", "worker", "scheduler"}[r]
}

// runRoles starts the role (dev: all of them) and runs until ctx ends, then
// shuts down in order: stop scheduling, stop intake (finishing in-flight
// requests), let running jobs finish within the shutdown timeout, and hand
// whatever is still running back to asynq.
func runRoles(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer, r role) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	if r == roleDev {
		if err := prepareDev(ctx, &cfg, stdout); err != nil {
			return err
		}
	} else if err := cfg.Production(); err != nil {
		return fmt.Errorf("%s: %w", r, err)
	}
	if err := requireMigrated(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	a, err := newApp(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	if r == roleDev || r == roleWorker {
		a.warnOutbox(stdout)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	var srv *http.Server
	if r == roleDev || r == roleAPI {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
		}
		srv = &http.Server{Handler: a.intake(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		fmt.Fprintf(stdout, "errand %s: listening on http://%s\n", r, ln.Addr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("http: %w", err)
			}
		}()
		if r == roleDev {
			if err := printDevWelcome(ctx, a, ln.Addr().String(), stdout); err != nil {
				srv.Close()
				return err
			}
		}
	}
	// The ops listener: a worker's job metrics exist only in its own
	// process, so every role can serve /metrics, /healthz and /readyz.
	var opsSrv *http.Server
	if cfg.MetricsAddr != "" {
		ln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			if srv != nil {
				srv.Close()
			}
			return fmt.Errorf("listen on %s (ERRAND_METRICS_ADDR): %w", cfg.MetricsAddr, err)
		}
		opsSrv = &http.Server{Handler: a.ops(), ReadHeaderTimeout: 10 * time.Second}
		fmt.Fprintf(stdout, "errand %s: ops listening on http://%s (/metrics, /healthz, /readyz)\n", r, ln.Addr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := opsSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("ops http: %w", err)
			}
		}()
	}
	closeListeners := func() {
		if srv != nil {
			srv.Close()
		}
		if opsSrv != nil {
			opsSrv.Close()
		}
	}
	var w *jobs.Worker
	if r == roleDev || r == roleWorker {
		w = a.worker()
		if err := w.Start(); err != nil {
			closeListeners() // else they keep serving on a closed store
			return err
		}
		fmt.Fprintf(stdout, "errand %s: worker running (%d concurrent jobs)\n", r, cfg.WorkerConcurrency)
	}
	if r == roleDev || r == roleScheduler {
		s := a.scheduler()
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Run(runCtx) //nolint:errcheck // returns only when runCtx ends
		}()
		fmt.Fprintf(stdout, "errand %s: scheduler running\n", r)
	}

	var runErr error
	select {
	case <-ctx.Done():
		a.logger.Info("shutting down", "role", r.String())
	case runErr = <-errs:
		a.logger.Error("role failed; shutting down", "role", r.String(), "err", runErr)
	}
	cancel() // stops the scheduler
	if w != nil {
		w.Stop() // no new jobs from here on; running ones continue
	}
	// The intake drains and the worker finishes its jobs at the same time,
	// both within the shutdown timeout.
	var stopping sync.WaitGroup
	if srv != nil {
		stopping.Add(1)
		go func() {
			defer stopping.Done()
			sctx, scancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer scancel()
			if err := srv.Shutdown(sctx); err != nil {
				a.logger.Warn("http shutdown timed out", "err", err)
			}
		}()
	}
	if w != nil {
		stopping.Add(1)
		go func() {
			defer stopping.Done()
			w.Shutdown() // waits up to the timeout, then hands jobs back to asynq
			a.logger.Info("worker stopped")
		}()
	}
	stopping.Wait()
	if opsSrv != nil {
		// Up until the jobs are done, so the last outcomes can be scraped
		// and an orchestrator sees the process alive while it drains.
		opsSrv.Close()
	}
	wg.Wait()
	return runErr // deferred: connections closed
}

// requireMigrated refuses to start a role on a schema that is behind the
// binary.
func requireMigrated(ctx context.Context, databaseURL string) error {
	m, err := db.NewMigrator(databaseURL)
	if err != nil {
		return err
	}
	defer m.Close()
	pending, err := m.Pending(ctx)
	if err != nil {
		return fmt.Errorf("check migrations (is PostgreSQL up and DATABASE_URL right?): %w", err)
	}
	if pending {
		return errors.New("the database schema is behind this binary: run `errand migrate up` first")
	}
	return nil
}

// prepareDev creates and migrates the database and fills in the secrets a
// laptop does not have: a fresh admin token each start, and a secret key
// kept under the data directory so signed links survive restarts.
func prepareDev(ctx context.Context, cfg *config.Config, stdout io.Writer) error {
	if err := db.EnsureDatabase(ctx, cfg.DatabaseURL); err != nil {
		return fmt.Errorf("%w (is PostgreSQL running? `make dev` starts it)", err)
	}
	if err := migrateUp(ctx, cfg.DatabaseURL, io.Discard); err != nil {
		return err
	}
	if cfg.AdminToken == "" {
		cfg.AdminToken = randomSecret()
	}
	if cfg.SecretKey == "" {
		key, err := devSecret(cfg.DataDir)
		if err != nil {
			return err
		}
		cfg.SecretKey = key
	}
	return nil
}

func devSecret(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "dev-secret-key")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("create data dir: %w", err)
	}
	key := randomSecret()
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write dev secret key: %w", err)
	}
	return key, nil
}

func randomSecret() string {
	b := make([]byte, 32)
	rand.Read(b) //nolint:errcheck
	return base64.RawURLEncoding.EncodeToString(b)
}

const demoTenantName = "Demo Repair Co"

// printDevWelcome makes sure a demo tenant exists, gives it a fresh key and
// tells the newcomer how to use it.
func printDevWelcome(ctx context.Context, a *app, addr string, stdout io.Writer) error {
	svc := &account.Service{Store: a.store, Clock: a.clock, SecLog: a.seclog}
	actor := seclog.Event{Actor: "dev"}
	tenant, err := a.store.Q().TenantFindByName(ctx, demoTenantName)
	var key string
	switch {
	case db.IsNotFound(err):
		t, k, err := svc.CreateTenant(ctx, account.NewTenant{Name: demoTenantName, Timezone: "America/Chicago"}, actor)
		if err != nil {
			return err
		}
		tenant, key = t, k
	case err != nil:
		return err
	default:
		k, err := svc.IssueKey(ctx, tenant.ID, actor)
		if err != nil {
			return err
		}
		key = k.Plain
	}
	base := "http://" + addr
	fmt.Fprintf(stdout, `
Errand is running in development mode: api, worker and scheduler in one process.

  API          %[1]s
  Console      %[1]s/monitoring/   (sign in with the admin token)
  Metrics      %[1]s/metrics
  Admin token  %[2]s
  Demo tenant  %[3]s (%[4]s)
  API key      %[5]s

Try it:
  export ERRAND_KEY=%[5]s
  curl -s -X PUT %[1]s/v1/contacts/cust-1 -H "Authorization: Bearer $ERRAND_KEY" \
       -H 'Content-Type: application/json' -d '{"name":"Pat Doe","phone":"(312) 555-0142"}'
  curl -s -X POST %[1]s/v1/messages -H "Authorization: Bearer $ERRAND_KEY" \
       -H 'Content-Type: application/json' -d '{"contact_id":"cust-1","channel":"sms","body":"Your tech is on the way"}'
  curl -s %[1]s/v1/messages/<id> -H "Authorization: Bearer $ERRAND_KEY"

  The message is "sent" to the development outbox within a second, except in
  quiet hours: from 21:00 to 08:00 in the demo tenant's zone (America/Chicago)
  it stays "scheduled" until 08:00 there, and its due_at says so.

`, base, a.cfg.AdminToken, tenant.Name, tenant.ID, key)
	return nil
}
