-- RetentionPolicyEffective is what applies to a tenant: its own override
-- where it has one, the platform default elsewhere.
-- name: RetentionPolicyEffective :many
SELECT d.what, coalesce(o.keep, d.keep)::text AS keep, d.keep::text AS default_keep, d.min_keep::text AS min_keep,
       coalesce(o.action, d.action)::text AS action, (o.id IS NOT NULL)::boolean AS overridden, d.note
FROM retention_policies d
LEFT JOIN retention_policies o ON o.what = d.what AND o.tenant_id = @tenant_id
WHERE d.tenant_id IS NULL
ORDER BY d.what;

-- name: RetentionPolicyDefaults :many
SELECT * FROM retention_policies WHERE tenant_id IS NULL ORDER BY what;

-- RetentionCutoffs is, for every policy (tenant_id NULL: the default),
-- the moment before which its records go: now - keep in calendar terms
-- (UTC), never later than the floor (min_keep) allows. (Intervals are
-- compared as cutoffs, never directly: Postgres counts a year as 360 days.)
-- name: RetentionCutoffs :many
WITH n AS (SELECT (sqlc.arg(now)::timestamptz AT TIME ZONE 'UTC') AS t)
SELECT p.tenant_id, p.what, p.action,
       (least(n.t - p.keep, n.t - d.min_keep) AT TIME ZONE 'UTC')::timestamptz AS cutoff
FROM retention_policies p
JOIN retention_policies d ON d.what = p.what AND d.tenant_id IS NULL
CROSS JOIN n
ORDER BY p.what, p.tenant_id NULLS FIRST;

-- name: RetentionPolicyOverride :one
INSERT INTO retention_policies (tenant_id, what, keep, action, updated_at)
VALUES (@tenant_id, @what, make_interval(days => @days::integer), @action, @now)
ON CONFLICT (tenant_id, what) WHERE tenant_id IS NOT NULL
DO UPDATE SET keep = EXCLUDED.keep, action = EXCLUDED.action, updated_at = EXCLUDED.updated_at
RETURNING *;

-- name: RetentionPolicyDropOverride :execrows
DELETE FROM retention_policies WHERE tenant_id = @tenant_id AND what = @what;

-- name: RetentionRunRecord :exec
INSERT INTO retention_runs (ran_at, what, action, rows) VALUES (@ran_at, @what, @action, @rows);

-- name: RetentionRunsSince :many
SELECT * FROM retention_runs WHERE ran_at >= @since ORDER BY id;
