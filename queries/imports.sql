-- name: ImportCreate :one
INSERT INTO imports (id, tenant_id, status, dry_run, file_key, file_bytes, file_sha256, mapping, due_at, enqueued_at,
                     created_at, updated_at)
VALUES (@id, @tenant_id, 'queued', @dry_run, @file_key, @file_bytes, @file_sha256, @mapping, @now,
        sqlc.narg('enqueued_at'), @now, @now)
RETURNING *;

-- name: ImportGet :one
SELECT * FROM imports WHERE tenant_id = @tenant_id AND id = @id;

-- ImportLock holds the row until the transaction ends, so two workers
-- never claim the same import together.
-- name: ImportLock :one
SELECT * FROM imports WHERE tenant_id = @tenant_id AND id = @id FOR UPDATE;

-- ImportClaim starts an attempt. attempts is the claim token: only the
-- attempt that still holds it may commit a batch or finish the row. The
-- counts and the resume point are kept: the attempt continues from there.
-- name: ImportClaim :one
UPDATE imports
SET status = 'running', attempts = attempts + 1, claimed_at = @now::timestamptz, heartbeat_at = @now::timestamptz,
    error = NULL, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status IN ('queued', 'running')
RETURNING attempts;

-- ImportDefer hands an import that is not due yet back to the dispatcher.
-- name: ImportDefer :exec
UPDATE imports SET enqueued_at = NULL, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status = 'queued';

-- ImportSetLayout records what the job found in the file's header.
-- name: ImportSetLayout :execrows
UPDATE imports
SET header = @header, unknown_columns = @unknown_columns, encoding = @encoding, delimiter = @delimiter,
    heartbeat_at = @now::timestamptz, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status = 'running' AND attempts = @attempt;

-- ImportCommitBatch adds a batch's counts and moves the resume point, in
-- the batch's own transaction. No row means the attempt lost its claim or
-- the import was cancelled: the caller rolls the batch back.
-- name: ImportCommitBatch :execrows
UPDATE imports
SET rows_total = rows_total + @rows::bigint, rows_created = rows_created + @created::bigint,
    rows_updated = rows_updated + @updated::bigint, rows_rejected = rows_rejected + @rejected::bigint,
    rows_duplicates = rows_duplicates + @duplicates::bigint, records_done = @records_done, line_done = @line_done,
    progress = @progress, batches_done = batches_done + 1, heartbeat_at = @now::timestamptz, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status = 'running' AND attempts = @attempt;

-- name: ImportMarkSucceeded :one
UPDATE imports
SET status = 'succeeded', progress = 100, error = NULL, finished_at = @now::timestamptz,
    files_expire_at = @files_expire_at::timestamptz, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status = 'running' AND attempts = @attempt
RETURNING *;

-- ImportRetryLater puts an import back in line after a transient failure.
-- name: ImportRetryLater :exec
UPDATE imports
SET status = 'queued', due_at = @due_at, error = @error, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status = 'running' AND attempts = @attempt;

-- ImportFail ends an import that will not succeed, with a reason a person
-- can read.
-- name: ImportFail :one
UPDATE imports
SET status = 'failed', error = @error, finished_at = @now::timestamptz,
    files_expire_at = @files_expire_at::timestamptz, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status IN ('queued', 'running')
RETURNING *;

-- ImportCancel stops an import; a running attempt notices at its next
-- batch (whose progress update then matches no row).
-- name: ImportCancel :one
UPDATE imports
SET status = 'cancelled', finished_at = @now::timestamptz, files_expire_at = @files_expire_at::timestamptz,
    updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status IN ('queued', 'running')
RETURNING *;

-- name: ImportMarkEnqueued :exec
UPDATE imports SET enqueued_at = @now::timestamptz
WHERE id = ANY(@ids::uuid[]) AND status IN ('queued', 'running');

-- name: ImportUnmarkEnqueued :exec
UPDATE imports SET enqueued_at = NULL
WHERE tenant_id = @tenant_id AND id = @id AND status = 'queued';

-- name: ImportListUndispatched :many
SELECT tenant_id, id, due_at FROM imports
WHERE status = 'queued' AND enqueued_at IS NULL AND due_at <= @until
ORDER BY due_at
LIMIT @max_rows;

-- ImportListStalled: queued and overdue (the task was lost), or running
-- with a stale heartbeat (the worker died).
-- name: ImportListStalled :many
SELECT tenant_id, id, due_at FROM imports
WHERE status IN ('queued', 'running') AND enqueued_at IS NOT NULL
  AND enqueued_at <= @checked_before::timestamptz
  AND ((status = 'queued' AND due_at <= @overdue_before)
       OR (status = 'running' AND heartbeat_at <= @stale_before::timestamptz))
ORDER BY due_at
LIMIT @max_rows;

-- name: ImportForgetEnqueued :execrows
UPDATE imports SET enqueued_at = NULL
WHERE status = 'queued' AND enqueued_at IS NOT NULL;

-- ImportListFilesExpiring finds finished imports whose upload and error
-- rows are past their time, across tenants (the retention sweep).
-- name: ImportListFilesExpiring :many
SELECT tenant_id, id, file_key FROM imports
WHERE files_expire_at <= @now::timestamptz
ORDER BY files_expire_at
LIMIT @max_rows;

-- name: ImportForgetFiles :execrows
UPDATE imports SET file_key = NULL, files_expire_at = NULL, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id;

-- name: ImportErrorsDelete :execrows
DELETE FROM import_errors WHERE tenant_id = @tenant_id AND import_id = @import_id;

-- ImportStagingClear removes what an import left in its working tables
-- (a dry run's seen keys; staged rows of an attempt that died are never
-- committed, but clearing is cheap).
-- name: ImportStagingClear :exec
WITH r AS (DELETE FROM import_rows WHERE import_rows.tenant_id = @tenant_id AND import_rows.import_id = @import_id)
DELETE FROM import_seen WHERE import_seen.tenant_id = @tenant_id AND import_seen.import_id = @import_id;

-- ImportErrorsAdd records a batch's rejected rows in one statement.
-- name: ImportErrorsAdd :exec
INSERT INTO import_errors (import_id, tenant_id, line, reason, raw)
SELECT @import_id, @tenant_id, unnest(@lines::bigint[]), unnest(@reasons::text[]), unnest(@raws::jsonb[]);

-- name: ImportErrorsPage :many
SELECT line, reason, raw FROM import_errors
WHERE tenant_id = @tenant_id AND import_id = @import_id AND line > @after_line
ORDER BY line
LIMIT @max_rows;

-- ImportMergeBatch merges one staged batch into contacts with one
-- statement. Each staged row is matched to an existing contact by
-- external_id, else phone, else email; when several rows of the batch
-- reach the same contact the last (highest line) wins and the others are
-- duplicates; a matched contact this import already wrote (an earlier
-- batch) makes the row a duplicate too, merged into it. Blank cells keep
-- what the contact has. New contacts without an external_id get one
-- ("import-" and a random UUID). The batch's staged rows are deleted.
-- name: ImportMergeBatch :one
WITH matched AS MATERIALIZED (
    SELECT s.line, s.external_id, s.name, s.phone, s.email, s.address, s.property_type, s.closing_date, s.notes,
           coalesce(
               (SELECT c.id FROM contacts c WHERE s.external_id IS NOT NULL AND c.tenant_id = @tenant_id
                                             AND c.external_id = s.external_id LIMIT 1),
               (SELECT c.id FROM contacts c WHERE s.phone IS NOT NULL AND c.tenant_id = @tenant_id
                                             AND c.phone = s.phone ORDER BY c.created_at LIMIT 1),
               (SELECT c.id FROM contacts c WHERE s.email_key IS NOT NULL AND c.tenant_id = @tenant_id
                                             AND c.email_key = s.email_key ORDER BY c.created_at LIMIT 1)
           ) AS contact_id
    FROM import_rows s WHERE s.tenant_id = @tenant_id AND s.import_id = @import_id
), ranked AS (
    SELECT m.line, m.external_id, m.name, m.phone, m.email, m.address, m.property_type, m.closing_date, m.notes,
           m.contact_id, (SELECT c.last_import_id FROM contacts c WHERE c.id = m.contact_id) AS prev_import,
           row_number() OVER (PARTITION BY coalesce(m.contact_id::text, 'new:' || m.line::text)
                              ORDER BY m.line DESC) AS rn
    FROM matched m
), upd AS (
    UPDATE contacts c
    SET name = CASE WHEN w.name <> '' THEN w.name ELSE c.name END,
        phone = coalesce(w.phone, c.phone), email = coalesce(w.email, c.email),
        address = coalesce(w.address, c.address), property_type = coalesce(w.property_type, c.property_type),
        closing_date = coalesce(w.closing_date, c.closing_date), notes = coalesce(w.notes, c.notes),
        last_import_id = @import_id, updated_at = @now
    FROM ranked w
    -- Only the primary key: a condition on contacts alone (such as its
    -- tenant, which row-level security and the matching above already
    -- ensure) lets the planner start from the tenant's whole contact list
    -- and join the batch to each of them, which it does whenever its
    -- statistics think the tenant small (a first big import, or another
    -- tenant dominating the table): contacts × rows per batch.
    WHERE w.rn = 1 AND w.contact_id = c.id
), ins AS (
    INSERT INTO contacts (tenant_id, external_id, name, phone, email, address, property_type, closing_date, notes,
                          last_import_id, created_at, updated_at)
    SELECT @tenant_id, coalesce(w.external_id, 'import-' || gen_random_uuid()::text), w.name, w.phone, w.email,
           w.address, w.property_type, w.closing_date, w.notes, @import_id, @now, @now
    FROM ranked w WHERE w.rn = 1 AND w.contact_id IS NULL
    ON CONFLICT (tenant_id, external_id) DO NOTHING
    RETURNING contacts.id
), del AS (
    DELETE FROM import_rows r WHERE r.tenant_id = @tenant_id AND r.import_id = @import_id
)
SELECT (SELECT count(*) FROM ins)::bigint AS created,
       (SELECT count(*) FROM ranked
        WHERE rn = 1 AND contact_id IS NOT NULL AND prev_import IS DISTINCT FROM @import_id::uuid)::bigint AS updated,
       (SELECT count(*) FROM ranked
        WHERE rn > 1 OR (contact_id IS NOT NULL AND prev_import = @import_id::uuid))::bigint AS duplicates;

-- ImportDryRunBatch counts what ImportMergeBatch would do, writing no
-- contact: rows are matched the same way, and import_seen remembers the
-- identities (keyed hashes of external_id, phone and email) and the
-- contacts earlier batches already counted, so a later row that shares
-- any of them is a duplicate, as it would be when merging.
-- name: ImportDryRunBatch :one
WITH matched AS MATERIALIZED (
    SELECT s.line, s.key_hash, s.id_hashes,
           coalesce(
               (SELECT c.id FROM contacts c WHERE s.external_id IS NOT NULL AND c.tenant_id = @tenant_id
                                             AND c.external_id = s.external_id LIMIT 1),
               (SELECT c.id FROM contacts c WHERE s.phone IS NOT NULL AND c.tenant_id = @tenant_id
                                             AND c.phone = s.phone ORDER BY c.created_at LIMIT 1),
               (SELECT c.id FROM contacts c WHERE s.email_key IS NOT NULL AND c.tenant_id = @tenant_id
                                             AND c.email_key = s.email_key ORDER BY c.created_at LIMIT 1)
           ) AS contact_id
    FROM import_rows s WHERE s.tenant_id = @tenant_id AND s.import_id = @import_id
), keyed AS MATERIALIZED (
    -- hashes: every hash the row is known by. Computed here, so that the
    -- lookup below compares with a plain column: under row-level security
    -- a non-leakproof function (array_append) in the condition would keep
    -- it out of the index and scan the import's every hash per row.
    SELECT y.line, y.contact_id, y.k, array_append(y.id_hashes, y.k) AS hashes
    FROM (SELECT m.line, m.contact_id, m.id_hashes,
                 CASE WHEN m.contact_id IS NULL THEN m.key_hash
                      ELSE decode(replace(m.contact_id::text, '-', ''), 'hex') END AS k
          FROM matched m) y
), ranked AS (
    SELECT y.line, y.contact_id, y.k, y.hashes,
           row_number() OVER (PARTITION BY y.k ORDER BY y.line DESC) AS rn,
           EXISTS (SELECT 1 FROM import_seen z WHERE z.tenant_id = @tenant_id AND z.import_id = @import_id
                                                   AND z.key_hash = ANY (y.hashes)) AS seen
    FROM keyed y
), ins AS (
    INSERT INTO import_seen (import_id, tenant_id, key_hash)
    SELECT DISTINCT @import_id::uuid, @tenant_id::uuid, unnest(r.hashes) FROM ranked r
    ON CONFLICT DO NOTHING
), del AS (
    DELETE FROM import_rows r WHERE r.tenant_id = @tenant_id AND r.import_id = @import_id
)
SELECT (SELECT count(*) FROM ranked WHERE rn = 1 AND NOT seen AND contact_id IS NULL)::bigint AS created,
       (SELECT count(*) FROM ranked WHERE rn = 1 AND NOT seen AND contact_id IS NOT NULL)::bigint AS updated,
       (SELECT count(*) FROM ranked WHERE rn > 1 OR seen)::bigint AS duplicates;

-- name: ImportTenantRegion :one
SELECT default_region FROM tenants WHERE id = @id;
