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

-- DeletionListDue is the scan: deletions whose time has come, oldest
-- first, one page after (after_time, after_id): the scan pages past
-- deletions a legal hold keeps waiting, so they never block the others.
-- name: DeletionListDue :many
SELECT id, tenant_id, minor, purge_after FROM deletions
WHERE status IN ('scheduled', 'running') AND purge_after <= @now
  AND (purge_after, id) > (@after_time::timestamptz, @after_id::uuid)
ORDER BY purge_after, id
LIMIT @max_rows;

-- name: DeletionHeld :exec
UPDATE deletions
SET hold_id = @hold_id, hold_reason = @hold_reason,
    -- A new wait (none before, or the last one ended) starts now.
    held_since = CASE WHEN held_since IS NULL OR held_until IS NOT NULL THEN @now::timestamptz ELSE held_since END,
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
