-- name: NoticeCreate :one
INSERT INTO notices (subject, body, effective_at, created_at)
VALUES (@subject, @body, @effective_at, @now)
RETURNING *;

-- NoticeAddressTenants writes one email to the owner of every active
-- tenant (contact_id NULL: the owner), giving the date the change takes
-- effect in the tenant's own zone. It is the platform writing to each of
-- its accounts, so it runs in system scope. The rows are left to the
-- due-scan (a notice is weeks ahead of its change; it need not race).
-- name: NoticeAddressTenants :execrows
INSERT INTO messages (tenant_id, kind, channel, subject, body, status, send_at, due_at, notice_id, created_at, updated_at)
SELECT t.id, 'notice', 'email', @subject,
       @body::text || chr(10) || chr(10) || 'This change takes effect on '
           || to_char(timezone(t.timezone, sqlc.arg(effective_at)::timestamptz), 'FMMonth FMDD, YYYY') || '.',
       'queued', @now, @now, @notice_id, @now, @now
FROM tenants t WHERE t.status = 'active'
ON CONFLICT DO NOTHING;

-- name: NoticeSetRecipients :exec
UPDATE notices SET recipients = @recipients WHERE id = @id;

-- name: NoticeGet :one
SELECT * FROM notices WHERE id = @id;

-- name: NoticeDeliveries :many
SELECT tenant_id, id, status, error, sent_at, delivered_at FROM messages
WHERE notice_id = @notice_id ORDER BY tenant_id;

