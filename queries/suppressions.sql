-- SuppressionGet says why an address gets nothing from a tenant: the
-- tenant's own suppression, else an opt-out texted to the shared number
-- (db.SharedNumberTenant, the all-zero ID), which blocks every tenant.
-- name: SuppressionGet :one
SELECT * FROM suppressions
WHERE tenant_id IN (@tenant_id, '00000000-0000-0000-0000-000000000000'::uuid) AND channel = @channel
  AND address_hash = @address_hash
ORDER BY tenant_id = @tenant_id DESC
LIMIT 1;

-- SuppressionAdd suppresses an address; an existing suppression keeps its
-- first reason and time.
-- name: SuppressionAdd :exec
INSERT INTO suppressions (tenant_id, channel, address_hash, reason, source, created_at)
VALUES (@tenant_id, @channel, @address_hash, @reason, @source, @now)
ON CONFLICT (tenant_id, channel, address_hash) DO NOTHING;

-- name: SuppressionRemove :execrows
DELETE FROM suppressions WHERE tenant_id = @tenant_id AND channel = @channel AND address_hash = @address_hash;

-- name: SuppressionEventRecord :exec
INSERT INTO suppression_events (tenant_id, channel, address_hash, action, keyword, source, reference, occurred_at)
VALUES (@tenant_id, @channel, @address_hash, @action, @keyword, @source, @reference, @occurred_at);

-- name: SuppressionEventList :many
SELECT * FROM suppression_events
WHERE tenant_id = @tenant_id AND channel = @channel AND address_hash = @address_hash
ORDER BY occurred_at, id;
