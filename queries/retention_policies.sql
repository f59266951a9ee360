-- RetentionPolicyEffective is what applies to a tenant: its own override
-- where it has one, the platform default elsewhere.
-- name: RetentionPolicyEffective :many
SELECT d.what, coalesce(o.days, d.days)::integer AS days, d.days AS default_days, d.min_days,
       coalesce(o.action, d.action)::text AS action, (o.id IS NOT NULL)::boolean AS overridden, d.note
FROM retention_policies d
LEFT JOIN retention_policies o ON o.what = d.what AND o.tenant_id = @tenant_id
WHERE d.tenant_id IS NULL
ORDER BY d.what;

-- name: RetentionPolicyDefaults :many
SELECT * FROM retention_policies WHERE tenant_id IS NULL ORDER BY what;

-- name: RetentionPolicyOverride :one
INSERT INTO retention_policies (tenant_id, what, days, action, updated_at)
VALUES (@tenant_id, @what, @days, @action, @now)
ON CONFLICT (tenant_id, what) WHERE tenant_id IS NOT NULL
DO UPDATE SET days = EXCLUDED.days, action = EXCLUDED.action, updated_at = EXCLUDED.updated_at
RETURNING *;

-- name: RetentionPolicyDropOverride :execrows
DELETE FROM retention_policies WHERE tenant_id = @tenant_id AND what = @what;

-- name: RetentionRunRecord :exec
INSERT INTO retention_runs (ran_at, what, action, rows) VALUES (@ran_at, @what, @action, @rows);

-- name: RetentionRunsSince :many
SELECT * FROM retention_runs WHERE ran_at >= @since ORDER BY id;
