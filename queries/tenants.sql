-- name: TenantCreate :one
INSERT INTO tenants (name, timezone, default_region, created_at, updated_at)
VALUES (@name, @timezone, @default_region, @now, @now)
RETURNING *;

-- name: TenantGet :one
SELECT * FROM tenants WHERE id = @id;

-- name: TenantFindByName :one
SELECT * FROM tenants WHERE name = @name ORDER BY created_at LIMIT 1;

-- name: TenantSetOwnerEmail :one
UPDATE tenants SET owner_email = sqlc.narg('owner_email'), updated_at = @now WHERE id = @id
RETURNING *;

-- TenantCancel marks a tenant cancelled at once: its keys stop working
-- (except for its deletion and exports) in the same transaction.
-- name: TenantCancel :one
UPDATE tenants SET status = 'cancelled', cancelled_at = @now, updated_at = @now
WHERE id = @id AND status = 'active'
RETURNING *;

-- name: TenantRestore :one
UPDATE tenants SET status = 'active', cancelled_at = NULL, updated_at = @now
WHERE id = @id AND status = 'cancelled' AND purged_at IS NULL
RETURNING *;

-- TenantMarkPurged keeps the row (the certificate, the retained logs and
-- billing records hang on it) without anything personal.
-- name: TenantMarkPurged :exec
UPDATE tenants SET name = 'purged tenant', owner_email = NULL, purged_at = @now, updated_at = @now
WHERE id = @id;
