-- name: APIKeyCreate :one
INSERT INTO api_keys (tenant_id, prefix, key_hash, created_at)
VALUES (@tenant_id, @prefix, @key_hash, @now)
RETURNING *;

-- APIKeyAuthenticate finds a live key by its public prefix together with
-- its tenant; the caller compares the hash in constant time.
-- name: APIKeyAuthenticate :one
SELECT k.id, k.tenant_id, k.key_hash, t.status AS tenant_status, t.timezone AS tenant_timezone,
       t.default_region AS tenant_region
FROM api_keys k
JOIN tenants t ON t.id = k.tenant_id
WHERE k.prefix = @prefix AND k.revoked_at IS NULL;

-- name: APIKeyRevoke :one
UPDATE api_keys SET revoked_at = @now::timestamptz
WHERE prefix = @prefix AND revoked_at IS NULL
RETURNING *;
