// Package ops serves what operators and orchestrators poll on every role:
// /healthz (the process answers), /readyz (PostgreSQL and Redis answer)
// and /metrics (the process's Prometheus registry). The intake mounts the
// same handlers on its own listener; worker and scheduler serve them on
// ERRAND_METRICS_ADDR, since their job metrics live in their own process.
package ops

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Pinger is a dependency readiness asks (a pgx pool, a Redis client's
// Ping wrapped).
type Pinger func(ctx context.Context) error

// Healthz answers 200 while the process can answer at all.
func Healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Ready answers 200 only when PostgreSQL and Redis both answer, and says
// which one did not.
func Ready(postgres, redis Pinger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		checks := map[string]string{"postgres": "ok", "redis": "ok"}
		ok := true
		if err := postgres(ctx); err != nil {
			checks["postgres"], ok = "unreachable", false
		}
		if err := redis(ctx); err != nil {
			checks["redis"], ok = "unreachable", false
		}
		if !ok {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "checks": checks})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "checks": checks})
	}
}

// Metrics serves the registry in Prometheus's text format.
func Metrics(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// Handler is the ops listener of a role without an intake: the three
// endpoints and nothing else.
func Handler(reg *prometheus.Registry, postgres, redis Pinger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", Healthz)
	mux.Handle("GET /readyz", Ready(postgres, redis))
	mux.Handle("GET /metrics", Metrics(reg))
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) //nolint:errcheck // the client went away; nothing to do
}
