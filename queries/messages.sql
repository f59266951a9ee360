-- name: MessageCreate :one
INSERT INTO messages (tenant_id, contact_id, kind, channel, subject, body, status, send_at, due_at,
                      enqueued_at, created_at, updated_at)
VALUES (@tenant_id, @contact_id, @kind, @channel, sqlc.narg('subject'), @body, @status, @send_at, @due_at,
        sqlc.narg('enqueued_at'), @now, @now)
RETURNING *;

-- name: MessageGet :one
SELECT * FROM messages WHERE tenant_id = @tenant_id AND id = @id;

-- MessageLock loads a message and where it goes (its contact, or for a
-- message without one, the tenant's owner), holding the row until the
-- transaction ends so two workers never claim it together.
-- name: MessageLock :one
SELECT sqlc.embed(m), c.phone AS contact_phone, c.email AS contact_email, t.name AS tenant_name,
       t.owner_email AS tenant_owner_email
FROM messages m
JOIN tenants t ON t.id = m.tenant_id
LEFT JOIN contacts c ON c.id = m.contact_id
WHERE m.tenant_id = @tenant_id AND m.id = @id
FOR UPDATE OF m;

-- name: MessageCancel :one
UPDATE messages SET status = 'cancelled', error = NULL, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status IN ('scheduled', 'queued')
RETURNING *;

-- MessageClaim records an attempt before the provider is called: a worker
-- that dies after this leaves a 'sending' row the next attempt reconciles.
-- name: MessageClaim :exec
UPDATE messages
SET status = 'sending', claimed_at = @now::timestamptz, attempts = attempts + 1, destination = @destination,
    error = NULL, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id;

-- name: MessageMarkSent :exec
UPDATE messages
SET status = 'sent', sent_at = @now::timestamptz, provider_message_id = @provider_message_id, error = NULL, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status = 'sending';

-- MessageRetryLater puts a message back in line after a transient failure;
-- due_at is the retry time asynq was given, so the dispatcher does not see
-- it as stalled before then.
-- name: MessageRetryLater :exec
UPDATE messages
SET status = 'queued', due_at = @due_at, error = @error, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status IN ('queued', 'sending');

-- MessageFinish ends a message that will not be sent: failed or suppressed,
-- with the reason a person can read.
-- name: MessageFinish :exec
UPDATE messages
SET status = @status, error = @error, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status IN ('scheduled', 'queued', 'sending');

-- MessageDefer hands a message that is not due yet back to the dispatcher.
-- name: MessageDefer :exec
UPDATE messages SET enqueued_at = NULL, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status IN ('scheduled', 'queued');

-- name: MessageMarkEnqueued :exec
UPDATE messages SET enqueued_at = @now::timestamptz
WHERE id = ANY(@ids::uuid[]) AND status IN ('scheduled', 'queued', 'sending');

-- name: MessageUnmarkEnqueued :exec
UPDATE messages SET enqueued_at = NULL
WHERE tenant_id = @tenant_id AND id = @id AND status IN ('scheduled', 'queued');

-- MessageListUndispatched is the due-scan: rows due before @until with no
-- task in Redis, oldest first.
-- name: MessageListUndispatched :many
SELECT tenant_id, id, due_at, kind FROM messages
WHERE status IN ('scheduled', 'queued') AND enqueued_at IS NULL AND due_at <= @until
ORDER BY due_at
LIMIT @max_rows;

-- MessageListStalled finds rows whose task should have run by now but the
-- row never moved on: their task was lost, or a worker died mid-send.
-- enqueued_at doubles as "last checked", so a long legitimate backlog is
-- examined once per period, not on every scan.
-- name: MessageListStalled :many
SELECT tenant_id, id, due_at, kind FROM messages
WHERE status IN ('scheduled', 'queued', 'sending') AND enqueued_at IS NOT NULL
  AND due_at <= @overdue_before AND enqueued_at <= @checked_before::timestamptz
  AND (status <> 'sending' OR claimed_at <= @claimed_before::timestamptz)
ORDER BY due_at
LIMIT @max_rows;

-- MessageForgetEnqueued is run when Redis has lost its data: every live
-- row goes back to the due-scan.
-- name: MessageForgetEnqueued :execrows
UPDATE messages SET enqueued_at = NULL
WHERE status IN ('scheduled', 'queued') AND enqueued_at IS NOT NULL;

-- name: MessageProviderIDTaken :one
SELECT EXISTS (SELECT 1 FROM messages WHERE provider_message_id = @provider_message_id AND id <> @id);
