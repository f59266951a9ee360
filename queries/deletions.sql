-- name: DeletionCreate :one
INSERT INTO deletions (tenant_id, scope, contact_id, reason, minor, status, purge_after, privacy_request_id,
                       created_at, updated_at)
VALUES (@tenant_id, @scope, sqlc.narg('contact_id'), @reason, @minor, 'scheduled', @purge_after,
        sqlc.narg('privacy_request_id'), @now, @now)
RETURNING *;

-- name: DeletionGet :one
SELECT * FROM deletions WHERE tenant_id = @tenant_id AND id = @id;

-- DeletionLock holds the row until the transaction ends: a purge batch, a
-- restore and a hold check never interleave on one deletion.
-- name: DeletionLock :one
SELECT * FROM deletions WHERE tenant_id = @tenant_id AND id = @id FOR UPDATE;

-- DeletionLiveForTenant finds a tenant's scheduled or running tenant deletion.
-- name: DeletionLiveForTenant :one
SELECT * FROM deletions WHERE tenant_id = @tenant_id AND scope = 'tenant' AND status IN ('scheduled', 'running');

-- DeletionListDue is the scan: deletions whose time has come, oldest first.
-- name: DeletionListDue :many
SELECT id, tenant_id, minor FROM deletions
WHERE status IN ('scheduled', 'running') AND purge_after <= @now
ORDER BY purge_after
LIMIT @max_rows;

-- name: DeletionHeld :exec
UPDATE deletions
SET hold_id = @hold_id, hold_reason = @hold_reason, held_since = coalesce(held_since, @now::timestamptz),
    held_until = NULL, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id;

-- DeletionStart moves a deletion to running; a hold it waited for is
-- closed (held_until) so the record says how long it waited.
-- name: DeletionStart :exec
UPDATE deletions
SET status = 'running', started_at = coalesce(started_at, @now::timestamptz),
    held_until = CASE WHEN held_since IS NOT NULL AND held_until IS NULL THEN @now::timestamptz ELSE held_until END,
    updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status IN ('scheduled', 'running');

-- name: DeletionComplete :exec
UPDATE deletions
SET status = 'completed', completed_at = @now::timestamptz, cursor = NULL, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status = 'running';

-- name: DeletionCancel :one
UPDATE deletions
SET status = 'cancelled', cancelled_at = @now::timestamptz, restored_messages = @restored_messages,
    expired_messages = @expired_messages, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status = 'scheduled'
RETURNING *;

-- name: DeletionMarkEnqueued :exec
UPDATE deletions SET enqueued_at = @now, updated_at = @now WHERE tenant_id = @tenant_id AND id = @id;

-- DeletionList pages through a tenant's deletions, newest first.
-- name: DeletionList :many
SELECT * FROM deletions
WHERE tenant_id = @tenant_id AND (created_at, id) < (@before_at::timestamptz, @before_id::uuid)
ORDER BY created_at DESC, id DESC
LIMIT @max_rows;
