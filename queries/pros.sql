-- ProUpsert finds or creates a professional by the tenant's ID for them.
-- name: ProUpsert :one
INSERT INTO pros (tenant_id, external_id, created_at)
VALUES (@tenant_id, @external_id, @now)
ON CONFLICT (tenant_id, external_id) DO UPDATE SET external_id = excluded.external_id
RETURNING *;

-- name: ProGetByExternalID :one
SELECT * FROM pros WHERE tenant_id = @tenant_id AND external_id = @external_id;

-- ProLockDocuments holds a professional against new uploads while their
-- erasure runs (an upload's ProUpsert waits for the lock) and lists their
-- documents: a row per credential, or one row with no key for a
-- professional without any; no row, no such professional.
-- name: ProLockDocuments :many
SELECT p.id AS pro_id, c.file_key
FROM pros p LEFT JOIN credentials c ON c.tenant_id = p.tenant_id AND c.pro_id = p.id
WHERE p.tenant_id = @tenant_id AND p.external_id = @external_id
ORDER BY c.id
FOR UPDATE OF p;

-- ProDelete erases a professional: their credentials, expiry notices and
-- review trail go with them (ON DELETE CASCADE).
-- name: ProDelete :execrows
DELETE FROM pros WHERE tenant_id = @tenant_id AND id = @id;
