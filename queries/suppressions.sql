-- name: SuppressionGet :one
SELECT * FROM suppressions
WHERE tenant_id = @tenant_id AND channel = @channel AND address_hash = @address_hash;

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
