-- ProUpsert finds or creates a professional by the tenant's ID for them.
-- name: ProUpsert :one
INSERT INTO pros (tenant_id, external_id, created_at)
VALUES (@tenant_id, @external_id, @now)
ON CONFLICT (tenant_id, external_id) DO UPDATE SET external_id = excluded.external_id
RETURNING *;

-- name: ProGetByExternalID :one
SELECT * FROM pros WHERE tenant_id = @tenant_id AND external_id = @external_id;
