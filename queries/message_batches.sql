-- name: MessageBatchCreate :one
INSERT INTO message_batches (tenant_id, channel, send_at, total, created_at)
VALUES (@tenant_id, @channel, @send_at, @total, @now)
RETURNING *;

-- name: MessageBatchGet :one
SELECT * FROM message_batches WHERE tenant_id = @tenant_id AND id = @id;

-- MessageBatchInsertMessages writes one message per contact in a single
-- statement. None is marked enqueued: bulk messages reach Redis through
-- the per-tenant admission window (MessageBulkAdmit, MessageBulkNext).
-- name: MessageBatchInsertMessages :execrows
INSERT INTO messages (tenant_id, contact_id, kind, channel, subject, body, status, send_at, due_at, batch_id,
                      created_at, updated_at)
SELECT @tenant_id, c.id, 'bulk', @channel, sqlc.narg('subject'), @body, @status, @send_at, @send_at, @batch_id, @now, @now
FROM unnest(@contact_ids::uuid[]) AS c(id);

-- MessageBatchMessages is a page of a batch's messages in ID order after
-- @after (uuid.Nil for the first page), with each contact's external ID
-- (NULL once the contact is erased).
-- name: MessageBatchMessages :many
SELECT m.id, c.external_id AS contact_external_id, m.status, m.send_at, m.error
FROM messages m
LEFT JOIN contacts c ON c.id = m.contact_id
WHERE m.tenant_id = @tenant_id AND m.batch_id = @batch_id AND m.id > @after
ORDER BY m.id
LIMIT @max_rows;

-- name: MessageBatchCounts :many
SELECT status, count(*)::int AS n FROM messages
WHERE tenant_id = @tenant_id AND batch_id = @batch_id
GROUP BY status ORDER BY status;

-- MessageBatchCancel cancels a batch's messages no attempt has claimed;
-- a claimed one may be at the provider already and finishes as it says
-- (see MessageCancel).
-- name: MessageBatchCancel :many
UPDATE messages SET status = 'cancelled', error = 'the batch was cancelled', updated_at = @now
WHERE tenant_id = @tenant_id AND batch_id = @batch_id AND status IN ('scheduled', 'queued') AND claimed_at IS NULL
RETURNING tenant_id, id, kind, enqueued_at;

-- MessageBatchCancelRequest records a cancellation on the batch's
-- messages an earlier attempt claimed (outcome unknown): their next run
-- asks the provider and never sends them.
-- name: MessageBatchCancelRequest :execrows
UPDATE messages SET cancel_requested_at = coalesce(cancel_requested_at, @now), updated_at = @now
WHERE tenant_id = @tenant_id AND batch_id = @batch_id AND status IN ('scheduled', 'queued') AND claimed_at IS NOT NULL;

-- MessageBulkAdmittedCount is how many of a tenant's bulk messages are in
-- Redis (admitted, not finished).
-- name: MessageBulkAdmittedCount :one
SELECT count(*)::int FROM messages
WHERE tenant_id = @tenant_id AND kind = 'bulk' AND status IN ('scheduled', 'queued', 'sending')
  AND enqueued_at IS NOT NULL;

-- MessageBulkAdmit marks as enqueued a tenant's oldest due bulk messages,
-- at most @max_rows, and returns them for the caller to enqueue after
-- commit.
-- name: MessageBulkAdmit :many
UPDATE messages m SET enqueued_at = @now::timestamptz
FROM (
    SELECT w.id FROM messages w
    WHERE w.tenant_id = @tenant_id AND w.kind = 'bulk' AND w.status IN ('scheduled', 'queued')
      AND w.enqueued_at IS NULL AND w.due_at <= @until
    ORDER BY w.due_at
    LIMIT @max_rows
    FOR UPDATE SKIP LOCKED
) next
WHERE m.id = next.id
RETURNING m.tenant_id, m.id, m.due_at, m.kind;

-- MessageBulkWaitingTenants lists the tenants with bulk messages waiting
-- in PostgreSQL, skipping through the index one probe per tenant (not one
-- per message). System scope: the due-scan.
-- name: MessageBulkWaitingTenants :many
WITH RECURSIVE waiting AS (
    (SELECT m.tenant_id FROM messages m
     WHERE m.kind = 'bulk' AND m.status IN ('scheduled', 'queued') AND m.enqueued_at IS NULL
     ORDER BY m.tenant_id LIMIT 1)
    UNION ALL
    SELECT (SELECT m.tenant_id FROM messages m
            WHERE m.kind = 'bulk' AND m.status IN ('scheduled', 'queued') AND m.enqueued_at IS NULL
              AND m.tenant_id > w.tenant_id
            ORDER BY m.tenant_id LIMIT 1)
    FROM waiting w WHERE w.tenant_id IS NOT NULL
)
SELECT w.tenant_id::uuid FROM waiting w WHERE w.tenant_id IS NOT NULL LIMIT @max_tenants;

-- MessageBulkNext lists a tenant's oldest due bulk messages waiting in
-- PostgreSQL, at most @max_rows (the room in its window).
-- name: MessageBulkNext :many
SELECT tenant_id, id, due_at, kind FROM messages
WHERE tenant_id = @tenant_id AND kind = 'bulk' AND status IN ('scheduled', 'queued') AND enqueued_at IS NULL
  AND due_at <= @until
ORDER BY due_at
LIMIT @max_rows;

-- MessageBulkAdmitLock lets one admitter at a time fill a tenant's window
-- (until the transaction ends); the others skip, since it fills it for them.
-- name: MessageBulkAdmitLock :one
SELECT pg_try_advisory_xact_lock(hashtextextended(@lock_key::text, 0))::boolean;
