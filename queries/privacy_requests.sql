-- name: PrivacyRequestCreate :one
INSERT INTO privacy_requests (tenant_id, type, subject, contact_id, status, received_at, due_at, created_at, updated_at)
VALUES (@tenant_id, @type, @subject, sqlc.narg('contact_id'), 'received', @received_at, @due_at, @now, @now)
RETURNING *;

-- PrivacyRequestGet loads a request with its contact's external ID (NULL
-- once the contact is gone).
-- name: PrivacyRequestGet :one
SELECT sqlc.embed(r), c.external_id AS contact_external_id
FROM privacy_requests r
LEFT JOIN contacts c ON c.id = r.contact_id
WHERE r.tenant_id = @tenant_id AND r.id = @id;

-- name: PrivacyRequestLock :one
SELECT * FROM privacy_requests WHERE tenant_id = @tenant_id AND id = @id FOR UPDATE;

-- PrivacyRequestSetStatus moves a request; the caller has checked the
-- transition and records it in the trail in the same transaction.
-- name: PrivacyRequestSetStatus :one
UPDATE privacy_requests
SET status = @status,
    closed_at = CASE WHEN @status IN ('completed', 'rejected') THEN @now::timestamptz END,
    updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;

-- name: PrivacyRequestLinkExport :exec
UPDATE privacy_requests SET export_id = @export_id, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id;

-- name: PrivacyRequestLinkDeletion :exec
UPDATE privacy_requests SET deletion_id = @deletion_id, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id;

-- PrivacyRequestList lists a tenant's requests, newest first, a page at a
-- time (created before @before).
-- name: PrivacyRequestList :many
SELECT sqlc.embed(r), c.external_id AS contact_external_id
FROM privacy_requests r
LEFT JOIN contacts c ON c.id = r.contact_id
WHERE r.tenant_id = @tenant_id
  AND (sqlc.narg('status')::text IS NULL OR r.status = sqlc.narg('status'))
  AND (NOT @overdue_only::boolean
       OR (r.status IN ('received', 'approved', 'in_progress') AND r.due_at <= @now))
  AND r.created_at < @before
ORDER BY r.created_at DESC, r.id DESC
LIMIT @max_rows;

-- PrivacyRequestListOverdue lists open requests past their due time across
-- tenants, most overdue first (admin API).
-- name: PrivacyRequestListOverdue :many
SELECT * FROM privacy_requests
WHERE status IN ('received', 'approved', 'in_progress') AND due_at <= @now
  AND (sqlc.narg('tenant_id')::uuid IS NULL OR tenant_id = sqlc.narg('tenant_id'))
ORDER BY due_at, id
LIMIT @max_rows;

-- PrivacyRequestCountOverdue counts open requests past their due time by
-- type, across tenants (the Prometheus gauge).
-- name: PrivacyRequestCountOverdue :many
SELECT type, count(*) AS overdue FROM privacy_requests
WHERE status IN ('received', 'approved', 'in_progress') AND due_at <= @now
GROUP BY type;

-- PrivacyRequestListWatch finds open requests the deadline watcher has
-- something to do for: a reminder 7 days or 1 day before due_at, or the
-- overdue mark, not yet done.
-- name: PrivacyRequestListWatch :many
SELECT tenant_id, id FROM privacy_requests
WHERE status IN ('received', 'approved', 'in_progress')
  AND due_at <= @week_ahead
  AND ((notified_7d_at IS NULL AND due_at <= @week_ahead)
       OR (notified_1d_at IS NULL AND due_at <= @day_ahead)
       OR (overdue_at IS NULL AND due_at <= @now))
ORDER BY due_at, id
LIMIT @max_rows;

-- PrivacyRequestMarkWatched records what the watcher did; a mark once set
-- is never moved.
-- name: PrivacyRequestMarkWatched :exec
UPDATE privacy_requests
SET notified_7d_at = coalesce(notified_7d_at, sqlc.narg('notified_7d_at')),
    notified_1d_at = coalesce(notified_1d_at, sqlc.narg('notified_1d_at')),
    overdue_at = coalesce(overdue_at, sqlc.narg('overdue_at')),
    updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id;

-- name: PrivacyRequestEventRecord :exec
INSERT INTO privacy_request_events (tenant_id, request_id, action, actor, from_status, to_status, note, occurred_at)
VALUES (@tenant_id, @request_id, @action, @actor, sqlc.narg('from_status'), @to_status, @note, @occurred_at);

-- name: PrivacyRequestEventList :many
SELECT * FROM privacy_request_events
WHERE tenant_id = @tenant_id AND request_id = @request_id
ORDER BY id;

-- name: PrivacySettingsGet :one
SELECT * FROM privacy_settings WHERE tenant_id = @tenant_id;

-- PrivacySettingsSet changes the settings given (NULL: left as they are;
-- a new row starts from the defaults, 30 days to answer and the platform's
-- deletion grace).
-- name: PrivacySettingsSet :one
INSERT INTO privacy_settings (tenant_id, response_days, deletion_grace_days, updated_at)
VALUES (@tenant_id, coalesce(sqlc.narg('response_days')::integer, @default_response_days::integer),
        sqlc.narg('deletion_grace_days')::integer, @now)
ON CONFLICT (tenant_id) DO UPDATE SET
    response_days = coalesce(sqlc.narg('response_days')::integer, privacy_settings.response_days),
    deletion_grace_days = coalesce(sqlc.narg('deletion_grace_days')::integer, privacy_settings.deletion_grace_days),
    updated_at = excluded.updated_at
RETURNING *;
