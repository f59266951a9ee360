-- Imports: a tenant's past clients uploaded as a CSV file (issue 5).
--
-- The upload is streamed into the file store (key in file_key); the
-- import:contacts job streams it back, parses and validates it, and merges
-- it into contacts in batches. Each batch is COPYed into import_rows,
-- merged with one set-based statement, and committed together with the
-- import's counts and the number of records it has consumed
-- (records_done): a worker killed mid-import resumes after the last
-- committed batch, and DELETE (status = 'cancelled') stops it between
-- batches because the batch's own progress update no longer matches.
--
--   queued ──claim──> running ──end of file──> succeeded
--     │                 │  └──no identity column / gave up──> failed
--     └────DELETE───────┴──> cancelled
--
-- Personal data: import_rows (transient, one batch inside one transaction;
-- dry runs keep only keyed hashes in import_seen), import_errors.raw (the
-- rejected rows as uploaded) and the stored upload. Both files and the
-- error rows are removed files_expire_at after the import ends.

-- +goose Up
ALTER TABLE contacts
    ADD COLUMN property_type text,
    ADD COLUMN closing_date date,
    -- The import that last wrote this contact: a later row of the same
    -- file that matches it is a duplicate, not an update.
    ADD COLUMN last_import_id uuid,
    -- The email as imports match it. A column of its own because
    -- row-level security keeps a non-leakproof function such as lower()
    -- out of index conditions: matching on lower(email) under RLS scans
    -- every contact per row; equality on this column uses the index.
    ADD COLUMN email_key text GENERATED ALWAYS AS (lower(email)) STORED;
CREATE INDEX contacts_email_key_idx ON contacts (tenant_id, email_key) WHERE email_key IS NOT NULL;

CREATE TABLE imports (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    status           text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    dry_run          boolean NOT NULL DEFAULT false,
    file_key         text,
    file_bytes       bigint NOT NULL DEFAULT 0,
    file_sha256      text NOT NULL DEFAULT '',
    -- The caller's explicit mapping (field → header), and what the job
    -- found: the header as uploaded, the columns it ignored.
    mapping          jsonb NOT NULL DEFAULT '{}',
    header           text[] NOT NULL DEFAULT '{}',
    unknown_columns  text[] NOT NULL DEFAULT '{}',
    encoding         text NOT NULL DEFAULT '',
    delimiter        text NOT NULL DEFAULT '',
    rows_total       bigint NOT NULL DEFAULT 0,
    rows_created     bigint NOT NULL DEFAULT 0,
    rows_updated     bigint NOT NULL DEFAULT 0,
    rows_rejected    bigint NOT NULL DEFAULT 0,
    rows_duplicates  bigint NOT NULL DEFAULT 0,
    progress         integer NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    -- The resume point: CSV records consumed (header included) and the
    -- physical line reached by the last committed batch.
    records_done     bigint NOT NULL DEFAULT 0,
    line_done        bigint NOT NULL DEFAULT 0,
    batches_done     integer NOT NULL DEFAULT 0,
    error            text,
    attempts         integer NOT NULL DEFAULT 0,
    due_at           timestamptz NOT NULL,
    enqueued_at      timestamptz,
    claimed_at       timestamptz,
    heartbeat_at     timestamptz,
    finished_at      timestamptz,
    files_expire_at  timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX imports_tenant_created_idx ON imports (tenant_id, created_at);
CREATE INDEX imports_undispatched_idx ON imports (due_at) WHERE status = 'queued' AND enqueued_at IS NULL;
CREATE INDEX imports_inflight_idx ON imports (due_at) WHERE status IN ('queued', 'running') AND enqueued_at IS NOT NULL;
CREATE INDEX imports_files_expiry_idx ON imports (files_expire_at) WHERE files_expire_at IS NOT NULL;

-- The staging table of the fast path: a batch is COPYed here, merged into
-- contacts and deleted again in one transaction, so no other transaction
-- ever sees its rows. Unlogged: nothing in it outlives its transaction.
-- It is the one tenant table without row-level security, because
-- PostgreSQL refuses COPY FROM into a table that has it; every statement
-- on it names the tenant and the import, and no committed row is left.
CREATE UNLOGGED TABLE import_rows (
    tenant_id     uuid NOT NULL,
    import_id     uuid NOT NULL,
    line          bigint NOT NULL,
    -- Dry runs only: keyed hashes of the row's identity (external_id, else
    -- phone, else email) and of each of them (import_seen).
    key_hash      bytea NOT NULL,
    id_hashes     bytea[] NOT NULL DEFAULT '{}',
    external_id   text,
    name          text NOT NULL DEFAULT '',
    phone         text,
    email         text,
    email_key     text, -- lower-cased email (by the job: equality on it keeps the index usable under RLS)
    address       text,
    property_type text,
    closing_date  date,
    notes         text
);
CREATE INDEX import_rows_import_idx ON import_rows (import_id);

-- What a dry run has already counted (it writes no contacts, so a later
-- duplicate cannot be recognised from them): keyed hashes of the rows'
-- identities and the IDs of matched contacts, never the values.
CREATE UNLOGGED TABLE import_seen (
    import_id uuid NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    tenant_id uuid NOT NULL,
    key_hash  bytea NOT NULL,
    PRIMARY KEY (import_id, key_hash)
);

-- The rejected rows as uploaded, with their physical line and a reason a
-- person understands: GET /v1/imports/{id}/errors.
CREATE TABLE import_errors (
    import_id uuid NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    tenant_id uuid NOT NULL,
    line      bigint NOT NULL,
    reason    text NOT NULL,
    raw       jsonb NOT NULL, -- the cells as uploaded, a JSON array of strings
    PRIMARY KEY (import_id, line)
);

ALTER TABLE imports ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON imports
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());
ALTER TABLE import_seen ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON import_seen
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());
ALTER TABLE import_errors ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON import_errors
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());

-- +goose Down
DROP TABLE import_errors;
DROP TABLE import_seen;
DROP TABLE import_rows;
DROP TABLE imports;
ALTER TABLE contacts DROP COLUMN email_key, DROP COLUMN last_import_id, DROP COLUMN closing_date,
    DROP COLUMN property_type;
