-- name: LegalHoldPlace :one
INSERT INTO legal_holds (tenant_id, contact_id, reason, placed_by, placed_at)
VALUES (@tenant_id, sqlc.narg('contact_id'), @reason, @placed_by, @now)
RETURNING *;

-- name: LegalHoldGet :one
SELECT * FROM legal_holds WHERE id = @id;

-- name: LegalHoldRelease :one
UPDATE legal_holds SET released_by = @released_by, released_at = @now
WHERE id = @id AND released_at IS NULL
RETURNING *;

-- LegalHoldBlocking is the live hold that stops work on a tenant (contact
-- NULL: any hold of the tenant) or on one person (the tenant's holds and
-- that person's), oldest first.
-- name: LegalHoldBlocking :one
SELECT * FROM legal_holds
WHERE tenant_id = @tenant_id AND released_at IS NULL
  AND (sqlc.narg('contact_id')::uuid IS NULL OR contact_id IS NULL OR contact_id = sqlc.narg('contact_id')::uuid)
ORDER BY placed_at
LIMIT 1;

-- name: LegalHoldListForTenant :many
SELECT * FROM legal_holds WHERE tenant_id = @tenant_id ORDER BY placed_at;
