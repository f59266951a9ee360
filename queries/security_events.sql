-- name: SecurityEventRecord :exec
INSERT INTO security_events (occurred_at, tenant_id, kind, actor, remote_addr, request_id, detail)
VALUES (@occurred_at, sqlc.narg('tenant_id'), @kind, @actor, @remote_addr, @request_id, @detail);

-- name: SecurityEventList :many
SELECT * FROM security_events
WHERE (sqlc.narg('tenant_id')::uuid IS NULL OR tenant_id = sqlc.narg('tenant_id'))
  AND (sqlc.narg('kind')::text IS NULL OR kind = sqlc.narg('kind'))
  AND id < @before_id
ORDER BY id DESC
LIMIT @max_rows;
