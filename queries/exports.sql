-- name: ExportCreate :one
INSERT INTO exports (tenant_id, scope, contact_id, format, status, privacy_request_id, due_at, enqueued_at,
                     created_at, updated_at)
VALUES (@tenant_id, @scope, sqlc.narg('contact_id'), @format, 'queued', sqlc.narg('privacy_request_id'), @now,
        sqlc.narg('enqueued_at'), @now, @now)
RETURNING *;

-- name: ExportGet :one
SELECT * FROM exports WHERE tenant_id = @tenant_id AND id = @id;

-- ExportLock holds the row until the transaction ends, so two workers
-- never claim the same export together.
-- name: ExportLock :one
SELECT * FROM exports WHERE tenant_id = @tenant_id AND id = @id FOR UPDATE;

-- ExportClaim starts an attempt. attempts doubles as the claim token: only
-- the attempt that still holds it may report progress or finish the row.
-- name: ExportClaim :one
UPDATE exports
SET status = 'running', attempts = attempts + 1, claimed_at = @now::timestamptz, heartbeat_at = @now::timestamptz,
    rows_done = 0, rows_total = 0, error = NULL, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status IN ('queued', 'running')
RETURNING attempts;

-- ExportDefer hands an export that is not due yet back to the dispatcher.
-- name: ExportDefer :exec
UPDATE exports SET enqueued_at = NULL, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status = 'queued';

-- ExportProgress records progress, which is also the attempt's heartbeat.
-- No row means the attempt lost its claim.
-- name: ExportProgress :execrows
UPDATE exports
SET rows_done = @rows_done, rows_total = @rows_total, heartbeat_at = @now::timestamptz, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status = 'running' AND attempts = @attempt;

-- name: ExportHeartbeat :execrows
UPDATE exports SET heartbeat_at = @now::timestamptz
WHERE tenant_id = @tenant_id AND id = @id AND status = 'running' AND attempts = @attempt;

-- name: ExportMarkSucceeded :one
UPDATE exports
SET status = 'succeeded', file_key = @file_key, bytes = @bytes, sha256 = @sha256, rows_done = @rows_done,
    rows_total = @rows_done, error = NULL, finished_at = @now::timestamptz,
    file_expires_at = @file_expires_at::timestamptz, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status = 'running' AND attempts = @attempt
RETURNING *;

-- ExportRetryLater puts an export back in line after a transient failure;
-- due_at is the retry time asynq was given.
-- name: ExportRetryLater :exec
UPDATE exports
SET status = 'queued', due_at = @due_at, error = @error, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status = 'running' AND attempts = @attempt;

-- ExportFail ends an export that will not succeed, with a reason a person
-- can read.
-- name: ExportFail :one
UPDATE exports
SET status = 'failed', error = @error, finished_at = @now::timestamptz, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status IN ('queued', 'running')
RETURNING *;

-- ExportCountActive counts a tenant's exports not yet finished.
-- name: ExportCountActive :one
SELECT count(*) FROM exports WHERE tenant_id = @tenant_id AND status IN ('queued', 'running');

-- name: ExportMarkEnqueued :exec
UPDATE exports SET enqueued_at = @now::timestamptz
WHERE id = ANY(@ids::uuid[]) AND status IN ('queued', 'running');

-- name: ExportUnmarkEnqueued :exec
UPDATE exports SET enqueued_at = NULL
WHERE tenant_id = @tenant_id AND id = @id AND status = 'queued';

-- ExportListUndispatched is the due-scan: queued exports with no task in
-- Redis.
-- name: ExportListUndispatched :many
SELECT tenant_id, id, due_at FROM exports
WHERE status = 'queued' AND enqueued_at IS NULL AND due_at <= @until
ORDER BY due_at
LIMIT @max_rows;

-- ExportListStalled finds exports whose task should be running but is
-- not: queued and overdue (the task was lost), or running with a heartbeat
-- older than any live attempt leaves (the worker died). enqueued_at
-- doubles as "last checked".
-- name: ExportListStalled :many
SELECT tenant_id, id, due_at FROM exports
WHERE status IN ('queued', 'running') AND enqueued_at IS NOT NULL
  AND enqueued_at <= @checked_before::timestamptz
  AND ((status = 'queued' AND due_at <= @overdue_before)
       OR (status = 'running' AND heartbeat_at <= @stale_before::timestamptz))
ORDER BY due_at
LIMIT @max_rows;

-- ExportForgetEnqueued is run when Redis has lost its data.
-- name: ExportForgetEnqueued :execrows
UPDATE exports SET enqueued_at = NULL
WHERE status = 'queued' AND enqueued_at IS NOT NULL;

-- ExportListExpiring finds export files past their time, across tenants
-- (the expiry sweep).
-- name: ExportListExpiring :many
SELECT tenant_id, id, attempts FROM exports
WHERE status = 'succeeded' AND file_expires_at <= @now::timestamptz
ORDER BY file_expires_at
LIMIT @max_rows;

-- name: ExportMarkExpired :execrows
UPDATE exports SET status = 'expired', file_key = NULL, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status = 'succeeded';

-- ExportList pages through a tenant's exports, newest first, with the
-- external ID of a contact export's person.
-- name: ExportList :many
SELECT sqlc.embed(e), c.external_id AS contact_external_id
FROM exports e
LEFT JOIN contacts c ON c.tenant_id = e.tenant_id AND c.id = e.contact_id
WHERE e.tenant_id = @tenant_id AND (e.created_at, e.id) < (@before_at::timestamptz, @before_id::uuid)
ORDER BY e.created_at DESC, e.id DESC
LIMIT @max_rows;
