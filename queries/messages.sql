-- name: MessageCreate :one
INSERT INTO messages (tenant_id, contact_id, kind, channel, subject, body, status, send_at, due_at,
                      enqueued_at, appointment_id, location_id, slot, error, created_at, updated_at)
VALUES (@tenant_id, @contact_id, @kind, @channel, sqlc.narg('subject'), @body, @status, @send_at, @due_at,
        sqlc.narg('enqueued_at'), sqlc.narg('appointment_id'), sqlc.narg('location_id'), sqlc.narg('slot'),
        sqlc.narg('error'), @now, @now)
RETURNING *;

-- MessageCreateForContact is MessageCreate for a message to a contact named
-- by its external ID, looked up in the same statement (one round trip, not
-- two): no row when the tenant has no such contact.
-- name: MessageCreateForContact :one
INSERT INTO messages (tenant_id, contact_id, kind, channel, subject, body, status, send_at, due_at,
                      enqueued_at, created_at, updated_at)
SELECT c.tenant_id, c.id, @kind::text, @channel::text, sqlc.narg('subject')::text, @body::text, @status::text,
       @send_at::timestamptz, @due_at::timestamptz, sqlc.narg('enqueued_at')::timestamptz, @now::timestamptz,
       @now::timestamptz
FROM contacts c
WHERE c.tenant_id = @tenant_id AND c.external_id = @external_id
RETURNING *;

-- name: MessageGet :one
SELECT * FROM messages WHERE tenant_id = @tenant_id AND id = @id;

-- MessageLock loads a message and where it goes (its contact, or for a
-- message without one, the tenant's owner) and the zones and settings its
-- quiet hours are computed from, holding the row until the transaction
-- ends so two workers never claim it together.
-- name: MessageLock :one
SELECT sqlc.embed(m), c.phone AS contact_phone, c.email AS contact_email, t.name AS tenant_name,
       t.owner_email AS tenant_owner_email, c.timezone AS contact_timezone, t.timezone AS tenant_timezone,
       l.timezone AS location_timezone, l.settings AS location_settings
FROM messages m
JOIN tenants t ON t.id = m.tenant_id
LEFT JOIN contacts c ON c.id = m.contact_id
LEFT JOIN locations l ON l.id = m.location_id
WHERE m.tenant_id = @tenant_id AND m.id = @id
FOR UPDATE OF m;

-- MessageCancel cancels a message no attempt has claimed. A claimed one
-- (claimed_at set, even back in line after a failure) may already be at
-- the provider, and perhaps on the customer's phone: it is left to finish
-- as the provider says, never labelled cancelled blindly.
-- name: MessageCancel :one
UPDATE messages SET status = 'cancelled', error = NULL, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status IN ('scheduled', 'queued') AND claimed_at IS NULL
RETURNING *;

-- MessageCancelRequest records a cancellation of a message an earlier
-- attempt claimed (its outcome unknown): its next run settles it with the
-- provider and never sends it.
-- name: MessageCancelRequest :one
UPDATE messages SET cancel_requested_at = coalesce(cancel_requested_at, @now), updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status IN ('scheduled', 'queued') AND claimed_at IS NOT NULL
RETURNING *;

-- MessageClaim records an attempt before the provider is called: a worker
-- that dies after this leaves a 'sending' row the next attempt reconciles.
-- The first claim is kept (first_claimed_at) as where that search starts;
-- a row claimed before the column existed keeps NULL (its search starts
-- at its creation). A renderer's text, when it asks for it to be kept
-- (Rendered.Record), is recorded with the claim, for the message log.
-- name: MessageClaim :exec
UPDATE messages
SET status = 'sending', claimed_at = @now::timestamptz, attempts = attempts + 1, destination = @destination,
    first_claimed_at = CASE WHEN claimed_at IS NULL THEN @now::timestamptz ELSE first_claimed_at END,
    subject = CASE WHEN @record_text::boolean THEN sqlc.narg('subject') ELSE subject END,
    body = CASE WHEN @record_text::boolean THEN @body::text ELSE body END,
    error = NULL, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id;

-- MessageClaimCheck claims a message that will not be sent (its
-- appointment was cancelled, its recipient opted out, …) but that an
-- earlier attempt may have handed to the provider: the attempt that holds
-- it asks the provider first, and only then records sent or the decision.
-- Nothing is sent, so attempts does not count it.
-- name: MessageClaimCheck :exec
UPDATE messages SET status = 'sending', claimed_at = @now::timestamptz, updated_at = @now
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
-- task in Redis, oldest first. Bulk messages are admitted by
-- the per-tenant windows instead (jobs/bulk_admit.go).
-- name: MessageListUndispatched :many
SELECT tenant_id, id, due_at, kind FROM messages
WHERE status IN ('scheduled', 'queued') AND enqueued_at IS NULL AND due_at <= @until AND kind <> 'bulk'
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

-- MessageProviderIDsTaken says which of these provider IDs another
-- message already recorded, of any tenant (the sending number is shared):
-- run in system scope, by the unique index.
-- name: MessageProviderIDsTaken :many
SELECT provider_message_id::text FROM messages
WHERE provider_message_id = ANY(@provider_message_ids::text[]) AND id <> @id;

-- MessageHold hands a message back to the dispatcher until @due_at: it
-- fell in its recipient's quiet hours, or a provider rate limit asked for
-- a long wait. A message whose claim went stale keeps its claimed_at, so
-- the next attempt still checks the provider before sending.
-- name: MessageHold :exec
UPDATE messages SET status = 'scheduled', due_at = @due_at, enqueued_at = NULL, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status IN ('scheduled', 'queued', 'sending');

-- MessageApplyDeliveryStatus applies a provider's delivery report. Reports
-- arrive late, twice and out of order: a message only moves forward
-- (queued/sending → sent → delivered | undelivered | failed, or suppressed
-- when the carrier refused it because the recipient opted out), so a late
-- 'sent' never overwrites 'delivered'. A report may also arrive before the
-- worker recorded the provider's ID (the report names the message), and
-- then records it. A message a worker ended without the provider's word
-- (cancelled, failed or suppressed after an attempt that may have reached
-- the provider: claimed, no provider ID) gives way to the report, which is
-- the provider's own account of it.
-- name: MessageApplyDeliveryStatus :one
UPDATE messages
SET status = @status,
    provider_message_id = @provider_message_id,
    sent_at = coalesce(sent_at, @now::timestamptz),
    delivered_at = CASE WHEN @status = 'delivered' THEN coalesce(delivered_at, @now::timestamptz) ELSE delivered_at END,
    error = sqlc.narg('error'),
    updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id
  AND (provider_message_id IS NULL OR provider_message_id = @provider_message_id)
  AND (status IN ('queued', 'sending') OR (status = 'sent' AND @status <> 'sent')
       OR (status IN ('cancelled', 'failed', 'suppressed') AND claimed_at IS NOT NULL AND provider_message_id IS NULL))
RETURNING *;

-- MessageFindByProvider finds the message a provider's webhook is about.
-- The webhook names no tenant, so this runs in system scope; it is a
-- lookup by the provider's unique ID, never a scan.
-- name: MessageFindByProvider :one
SELECT tenant_id, id, channel, destination, status FROM messages WHERE provider_message_id = @provider_message_id;

-- MessageCancelForDeletion cancels a batch of a cancelled tenant's pending
-- messages, marking them with the deletion so a restore can bring back
-- those whose time has not passed.
-- A message an earlier attempt claimed gets a cancellation request
-- instead (its next run asks the provider), and keeps its status.
-- name: MessageCancelForDeletion :many
UPDATE messages
SET status = CASE WHEN claimed_at IS NULL THEN 'cancelled' ELSE status END,
    cancel_requested_at = CASE WHEN claimed_at IS NULL THEN cancel_requested_at ELSE @now END,
    deletion_id = @deletion_id, updated_at = @now
WHERE id IN (SELECT m.id FROM messages m
             WHERE m.tenant_id = @tenant_id AND m.status IN ('scheduled', 'queued') AND m.deletion_id IS NULL
             LIMIT @max_rows)
RETURNING id, tenant_id, kind, status;

-- MessageRestoreForDeletion brings back a restored tenant's messages whose
-- time has not passed; the dispatcher enqueues them again.
-- name: MessageRestoreForDeletion :execrows
UPDATE messages SET status = 'scheduled', deletion_id = NULL, enqueued_at = NULL, error = NULL, updated_at = @now
WHERE tenant_id = @tenant_id AND deletion_id = @deletion_id AND status = 'cancelled' AND due_at > @now;

-- MessageResumeForDeletion withdraws the cancellation requests a tenant
-- deletion made on claimed messages still waiting for their next run.
-- name: MessageResumeForDeletion :exec
UPDATE messages SET cancel_requested_at = NULL, deletion_id = NULL, updated_at = @now
WHERE tenant_id = @tenant_id AND deletion_id = @deletion_id AND status IN ('scheduled', 'queued', 'sending');

-- name: MessageCountForDeletion :one
SELECT count(*) FROM messages WHERE tenant_id = @tenant_id AND deletion_id = @deletion_id AND status = 'cancelled';

-- MessageListForContact pages through one contact's messages (the message
-- log with delivery status), newest first.
-- name: MessageListForContact :many
SELECT * FROM messages
WHERE tenant_id = @tenant_id AND contact_id = @contact_id
  AND (created_at, id) < (@before_at::timestamptz, @before_id::uuid)
ORDER BY created_at DESC, id DESC
LIMIT @max_rows;
