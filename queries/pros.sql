-- ProUpsert finds or creates a professional by the tenant's ID for them.
-- name: ProUpsert :one
INSERT INTO pros (tenant_id, external_id, created_at)
VALUES (@tenant_id, @external_id, @now)
ON CONFLICT (tenant_id, external_id) DO UPDATE SET external_id = excluded.external_id
RETURNING *;

-- name: ProGetByExternalID :one
SELECT * FROM pros WHERE tenant_id = @tenant_id AND external_id = @external_id;

-- ProLockByExternalID holds a professional against new uploads while
-- their erasure runs (an upload's ProUpsert waits for it).
-- name: ProLockByExternalID :one
SELECT * FROM pros WHERE tenant_id = @tenant_id AND external_id = @external_id FOR UPDATE;

-- name: ProDocumentKeys :many
SELECT file_key FROM credentials WHERE tenant_id = @tenant_id AND pro_id = @pro_id ORDER BY id;

-- ProDelete erases a professional: their credentials, expiry notices and
-- review trail go with them (ON DELETE CASCADE).
-- name: ProDelete :execrows
DELETE FROM pros WHERE tenant_id = @tenant_id AND id = @id;
