package intake

import (
	"context"
	_ "embed"
	"net/http"
)

//go:embed openapi.yaml
var openAPI []byte

// pingPostgres and pingRedis are what /readyz asks (ops.Ready), the same
// checks worker and scheduler answer on their ops listener.
func (s *Server) pingPostgres(ctx context.Context) error { return s.Store.Pool.Ping(ctx) }
func (s *Server) pingRedis(ctx context.Context) error    { return s.Redis.Ping(ctx).Err() }

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(openAPI) //nolint:errcheck
}
