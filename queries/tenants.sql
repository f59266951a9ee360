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
