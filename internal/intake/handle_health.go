package intake

import (
	"context"
	_ "embed"
	"net/http"
	"time"
)

//go:embed openapi.yaml
var openAPI []byte

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	encode(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReadyz answers 200 only when PostgreSQL and Redis both answer, and
// says which one did not.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{"postgres": "ok", "redis": "ok"}
	ok := true
	if err := s.Store.Pool.Ping(ctx); err != nil {
		checks["postgres"], ok = "unreachable", false
	}
	if err := s.Redis.Ping(ctx).Err(); err != nil {
		checks["redis"], ok = "unreachable", false
	}
	if !ok {
		encode(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "checks": checks})
		return
	}
	encode(w, http.StatusOK, map[string]any{"status": "ok", "checks": checks})
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(openAPI) //nolint:errcheck
}
