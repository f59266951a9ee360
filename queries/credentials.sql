-- name: CredentialCreate :one
INSERT INTO credentials (id, tenant_id, pro_id, kind, number, number_norm, issuer, expires_on, file_key, file_type,
                         file_size, file_sha256, status, due_at, enqueued_at, created_at, updated_at)
VALUES (@id, @tenant_id, @pro_id, @kind, @number, @number_norm, @issuer, @expires_on, @file_key, @file_type,
        @file_size, @file_sha256, 'pending', @now, sqlc.narg('enqueued_at'), @now, @now)
RETURNING *;

-- name: CredentialGet :one
SELECT * FROM credentials WHERE tenant_id = @tenant_id AND id = @id;

-- name: CredentialLock :one
SELECT * FROM credentials WHERE tenant_id = @tenant_id AND id = @id FOR UPDATE;

-- name: CredentialListByPro :many
SELECT * FROM credentials WHERE tenant_id = @tenant_id AND pro_id = @pro_id ORDER BY created_at, id;

-- CredentialFinishChecks records the pipeline's results and its verdict.
-- name: CredentialFinishChecks :one
UPDATE credentials
SET status = @status, checks = @checks, checked_at = @now::timestamptz, error = NULL, attempts = attempts + 1,
    updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status = 'pending'
RETURNING *;

-- CredentialRetryLater records a transient failure; due_at is the retry
-- time asynq was given, so the dispatcher does not see it as stalled.
-- name: CredentialRetryLater :exec
UPDATE credentials SET due_at = @due_at, error = @error, attempts = attempts + 1, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status = 'pending';

-- CredentialNeedsReview hands a credential whose checks could not run at
-- all (retries exhausted) to a person.
-- name: CredentialNeedsReview :exec
UPDATE credentials
SET status = 'needs_review', checks = checks || jsonb_build_array(@entry::jsonb), error = @error, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status = 'pending';

-- CredentialReview is a person's decision on a credential waiting for one.
-- name: CredentialReview :one
UPDATE credentials
SET status = @to_status, checks = checks || jsonb_build_array(@entry::jsonb), reviewed_at = @now::timestamptz,
    updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status = 'needs_review'
RETURNING *;

-- CredentialFindSameNumber names the other professionals of the tenant
-- holding a credential of this kind with this number.
-- name: CredentialFindSameNumber :many
SELECT DISTINCT p.external_id FROM credentials c JOIN pros p ON p.id = c.pro_id
WHERE c.tenant_id = @tenant_id AND c.kind = @kind AND c.number_norm = @number_norm AND c.pro_id <> @pro_id
ORDER BY p.external_id
LIMIT 10;

-- CredentialFindSameDocument names the other professionals of the tenant
-- who uploaded the very same file.
-- name: CredentialFindSameDocument :many
SELECT DISTINCT p.external_id FROM credentials c JOIN pros p ON p.id = c.pro_id
WHERE c.tenant_id = @tenant_id AND c.file_sha256 = @file_sha256 AND c.pro_id <> @pro_id
ORDER BY p.external_id
LIMIT 10;

-- CredentialListUndispatched is the due-scan: pending rows with no task in
-- Redis.
-- name: CredentialListUndispatched :many
SELECT tenant_id, id, due_at FROM credentials
WHERE status = 'pending' AND enqueued_at IS NULL AND due_at <= @until
ORDER BY due_at
LIMIT @max_rows;

-- CredentialListStalled finds pending rows whose task should have run by
-- now; enqueued_at doubles as "last checked".
-- name: CredentialListStalled :many
SELECT tenant_id, id, due_at FROM credentials
WHERE status = 'pending' AND enqueued_at IS NOT NULL AND due_at <= @overdue_before
  AND enqueued_at <= @checked_before::timestamptz
ORDER BY due_at
LIMIT @max_rows;

-- name: CredentialMarkEnqueued :exec
UPDATE credentials SET enqueued_at = @now::timestamptz WHERE id = ANY(@ids::uuid[]) AND status = 'pending';

-- name: CredentialUnmarkEnqueued :exec
UPDATE credentials SET enqueued_at = NULL WHERE tenant_id = @tenant_id AND id = @id AND status = 'pending';

-- name: CredentialForgetEnqueued :execrows
UPDATE credentials SET enqueued_at = NULL WHERE status = 'pending' AND enqueued_at IS NOT NULL;

-- CredentialListForReview is the ops review queue across tenants (admin
-- only), oldest first.
-- name: CredentialListForReview :many
SELECT sqlc.embed(c), p.external_id AS pro_external_id, t.name AS tenant_name
FROM credentials c
JOIN pros p ON p.id = c.pro_id
JOIN tenants t ON t.id = c.tenant_id
WHERE c.status = @status AND (sqlc.narg('tenant_id')::uuid IS NULL OR c.tenant_id = sqlc.narg('tenant_id'))
ORDER BY c.created_at, c.id
LIMIT @max_rows;

-- CredentialGetForAdmin finds a credential by ID alone, for the admin API.
-- name: CredentialGetForAdmin :one
SELECT sqlc.embed(c), p.external_id AS pro_external_id, t.name AS tenant_name
FROM credentials c
JOIN pros p ON p.id = c.pro_id
JOIN tenants t ON t.id = c.tenant_id
WHERE c.id = @id;

-- CredentialExpireDue flips live credentials whose expiry date has passed
-- in their tenant's time zone, a bounded batch at a time.
-- name: CredentialExpireDue :execrows
UPDATE credentials c
SET status = 'expired', expired_at = @now::timestamptz, updated_at = @now,
    checks = c.checks || jsonb_build_array(jsonb_build_object(
        'check', 'expiry_watch', 'outcome', 'fail', 'reason', 'expired on ' || to_char(c.expires_on, 'YYYY-MM-DD')))
WHERE c.id IN (
    SELECT c2.id FROM credentials c2
    JOIN tenants t ON t.id = c2.tenant_id
    WHERE c2.status IN ('pending', 'verified', 'needs_review')
      AND c2.expires_on < timezone(t.timezone, @now::timestamptz)::date
    ORDER BY c2.expires_on
    LIMIT @max_rows);

-- CredentialListExpiring finds live credentials that crossed an expiry
-- threshold (within far_days, or within near_days, of their expiry date in
-- the tenant's time zone) and have not been warned about for it yet, of
-- tenants with an owner email (@with_owner) or without one: their warnings
-- wait, unclaimed, until an owner email is set.
-- name: CredentialListExpiring :many
SELECT c.id, c.tenant_id, c.kind, c.number, c.issuer, c.expires_on, p.external_id AS pro_external_id,
       d.days_left::integer AS days_left,
       (CASE WHEN d.days_left <= @near_days::integer THEN @near_days::integer ELSE @far_days::integer END)::integer AS threshold_days
FROM credentials c
JOIN tenants t ON t.id = c.tenant_id
JOIN pros p ON p.id = c.pro_id
CROSS JOIN LATERAL (SELECT c.expires_on - timezone(t.timezone, @now::timestamptz)::date AS days_left) d
WHERE c.status IN ('pending', 'verified', 'needs_review')
  AND d.days_left BETWEEN 0 AND @far_days::integer
  AND (t.owner_email IS NOT NULL) = @with_owner::boolean
  AND NOT EXISTS (SELECT 1 FROM credential_expiry_notices n
                  WHERE n.credential_id = c.id
                    AND n.threshold_days = (CASE WHEN d.days_left <= @near_days::integer
                                                 THEN @near_days::integer ELSE @far_days::integer END))
ORDER BY c.tenant_id, c.expires_on, c.id
LIMIT @max_rows;
