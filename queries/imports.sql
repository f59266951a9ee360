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
-- statement. The rule (README, "Duplicates"): each staged row is one key
-- (the job merged the batch's rows of the same key); it is the contact
-- with its new_external_id (the row's external_id, or the ID derived from
-- the import and the key: the contact this import created for that key),
-- else, for a row without an external_id, the oldest contact with its
-- phone (or, without one, its email) that this import did not create.
-- Rows of the batch reaching the same contact are merged into it in line
-- order (later non-blank cells win); the first is an update, the others
-- duplicates, and all are duplicates when an earlier batch of this import
-- already wrote the contact. Blank cells keep what the contact has. A new
-- contact that someone else created meanwhile makes the INSERT fail
-- (unique_violation) rather than drop the row: the job merges the batch
-- again, and then the row updates it. The batch's staged rows (import and
-- batch: the rows earlier batches staged and deleted stay in the index as
-- dead entries until a vacuum, and must not be read again) are deleted.
-- name: ImportMergeBatch :one
WITH matched AS MATERIALIZED (
    SELECT s.line, s.external_id, s.new_external_id, s.name, s.phone, s.email, s.address, s.property_type,
           s.closing_date, s.notes,
           coalesce(
               (SELECT c.id FROM contacts c WHERE c.tenant_id = @tenant_id AND c.external_id = s.new_external_id),
               (SELECT c.id FROM contacts c WHERE s.external_id IS NULL AND s.phone IS NOT NULL
                                             AND c.tenant_id = @tenant_id AND c.phone = s.phone
                                             AND c.created_by_import IS DISTINCT FROM @import_id::uuid
                ORDER BY c.created_at, c.id LIMIT 1),
               (SELECT c.id FROM contacts c WHERE s.external_id IS NULL AND s.phone IS NULL
                                             AND c.tenant_id = @tenant_id AND c.email_key = s.email_key
                                             AND c.created_by_import IS DISTINCT FROM @import_id::uuid
                ORDER BY c.created_at, c.id LIMIT 1)
           ) AS contact_id
    FROM import_rows s WHERE s.tenant_id = @tenant_id AND s.import_id = @import_id AND s.batch = @batch
), merged AS MATERIALIZED (
    -- The last non-blank value of each cell, in line order.
    SELECT m.contact_id, count(*) AS n,
           (array_agg(m.name ORDER BY m.line DESC) FILTER (WHERE m.name <> ''))[1] AS name,
           (array_agg(m.phone ORDER BY m.line DESC) FILTER (WHERE m.phone IS NOT NULL))[1] AS phone,
           (array_agg(m.email ORDER BY m.line DESC) FILTER (WHERE m.email IS NOT NULL))[1] AS email,
           (array_agg(m.address ORDER BY m.line DESC) FILTER (WHERE m.address IS NOT NULL))[1] AS address,
           (array_agg(m.property_type ORDER BY m.line DESC) FILTER (WHERE m.property_type IS NOT NULL))[1]
               AS property_type,
           (array_agg(m.closing_date ORDER BY m.line DESC) FILTER (WHERE m.closing_date IS NOT NULL))[1]
               AS closing_date,
           (array_agg(m.notes ORDER BY m.line DESC) FILTER (WHERE m.notes IS NOT NULL))[1] AS notes,
           (SELECT c.last_import_id FROM contacts c WHERE c.id = m.contact_id) AS prev_import
    FROM matched m WHERE m.contact_id IS NOT NULL
    GROUP BY m.contact_id
), upd AS (
    UPDATE contacts c
    SET name = coalesce(w.name, c.name), phone = coalesce(w.phone, c.phone), email = coalesce(w.email, c.email),
        address = coalesce(w.address, c.address), property_type = coalesce(w.property_type, c.property_type),
        closing_date = coalesce(w.closing_date, c.closing_date), notes = coalesce(w.notes, c.notes),
        last_import_id = @import_id, updated_at = @now
    FROM merged w
    -- Only the primary key: a condition on contacts alone (such as its
    -- tenant, which row-level security and the matching above already
    -- ensure) lets the planner start from the tenant's whole contact list
    -- and join the batch to each of them, which it does whenever its
    -- statistics think the tenant small (a first big import, or another
    -- tenant dominating the table): contacts × rows per batch.
    WHERE w.contact_id = c.id
), ins AS (
    INSERT INTO contacts (tenant_id, external_id, name, phone, email, address, property_type, closing_date, notes,
                          last_import_id, created_by_import, created_at, updated_at)
    SELECT @tenant_id, m.new_external_id, m.name, m.phone, m.email, m.address, m.property_type, m.closing_date,
           m.notes, @import_id, @import_id, @now, @now
    FROM matched m WHERE m.contact_id IS NULL
    RETURNING contacts.id
), del AS (
    DELETE FROM import_rows r WHERE r.tenant_id = @tenant_id AND r.import_id = @import_id AND r.batch = @batch
)
SELECT (SELECT count(*) FROM ins)::bigint AS created,
       (SELECT count(*) FROM merged WHERE prev_import IS DISTINCT FROM @import_id::uuid)::bigint AS updated,
       (SELECT coalesce(sum(CASE WHEN prev_import IS DISTINCT FROM @import_id::uuid THEN n - 1 ELSE n END), 0)
        FROM merged)::bigint AS duplicates;

-- ImportDryRunBatch counts what ImportMergeBatch would do, writing no
-- contact: rows are matched the same way (the contacts this import would
-- have created do not exist, so a key seen before is found in import_seen
-- instead), and import_seen remembers, as keyed hashes, the keys of rows
-- that would have created a contact and the IDs of contacts that would
-- have been updated, so that a later row reaching either is a duplicate,
-- as it would be when merging.
-- name: ImportDryRunBatch :one
WITH matched AS MATERIALIZED (
    SELECT s.line, s.key_hash,
           coalesce(
               (SELECT c.id FROM contacts c WHERE c.tenant_id = @tenant_id AND c.external_id = s.new_external_id),
               (SELECT c.id FROM contacts c WHERE s.external_id IS NULL AND s.phone IS NOT NULL
                                             AND c.tenant_id = @tenant_id AND c.phone = s.phone
                                             AND c.created_by_import IS DISTINCT FROM @import_id::uuid
                ORDER BY c.created_at, c.id LIMIT 1),
               (SELECT c.id FROM contacts c WHERE s.external_id IS NULL AND s.phone IS NULL
                                             AND c.tenant_id = @tenant_id AND c.email_key = s.email_key
                                             AND c.created_by_import IS DISTINCT FROM @import_id::uuid
                ORDER BY c.created_at, c.id LIMIT 1)
           ) AS contact_id
    FROM import_rows s WHERE s.tenant_id = @tenant_id AND s.import_id = @import_id AND s.batch = @batch
), keyed AS MATERIALIZED (
    -- k: what the row reaches (a contact, or its own key), computed here
    -- so that the lookup below compares with a plain column: under
    -- row-level security a non-leakproof function (decode) in the
    -- condition would keep it out of the index and read the import's every
    -- hash per row.
    SELECT m.line, m.contact_id,
           CASE WHEN m.contact_id IS NULL THEN m.key_hash
                ELSE decode(replace(m.contact_id::text, '-', ''), 'hex') END AS k
    FROM matched m
), grouped AS (
    SELECT y.k, bool_or(y.contact_id IS NOT NULL) AS matched, count(*) AS n,
           EXISTS (SELECT 1 FROM import_seen z WHERE z.tenant_id = @tenant_id AND z.import_id = @import_id
                                                   AND z.key_hash = y.k) AS seen
    FROM keyed y
    GROUP BY y.k
), ins AS (
    INSERT INTO import_seen (import_id, tenant_id, key_hash)
    SELECT @import_id::uuid, @tenant_id::uuid, g.k FROM grouped g WHERE NOT g.seen
), del AS (
    DELETE FROM import_rows r WHERE r.tenant_id = @tenant_id AND r.import_id = @import_id AND r.batch = @batch
)
SELECT (SELECT count(*) FROM grouped WHERE NOT seen AND NOT matched)::bigint AS created,
       (SELECT count(*) FROM grouped WHERE NOT seen AND matched)::bigint AS updated,
       (SELECT coalesce(sum(CASE WHEN seen THEN n ELSE n - 1 END), 0) FROM grouped)::bigint AS duplicates;

-- name: ImportTenantRegion :one
SELECT default_region FROM tenants WHERE id = @id;

-- ImportList pages through a tenant's imports, newest first: the page
-- after the (created_at, id) cursor.
-- name: ImportList :many
SELECT * FROM imports
WHERE tenant_id = @tenant_id AND (created_at, id) < (@before_at::timestamptz, @before_id::uuid)
ORDER BY created_at DESC, id DESC
LIMIT @max_rows;
