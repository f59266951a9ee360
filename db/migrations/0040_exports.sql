-- Exports: everything Errand holds for a tenant, or for one person (a
-- subject access request), as a zip of CSV or JSON files with a manifest,
-- stored privately and served through short-lived signed links.
--
-- An export is a job row. Its state machine:
--
--   queued ──claim──> running ──file committed──> succeeded ──TTL (7 days)──> expired
--     ▲                 │  └─permanent / gave up──> failed
--     └──transient──────┘  (due_at = retry time; the next attempt starts from scratch)
--
-- A worker that dies mid-export leaves 'running' with a stale heartbeat_at;
-- the next attempt (asynq's own retry, or the dispatcher's stalled scan)
-- claims it again and rebuilds the whole file. Each attempt writes its own
-- file key (…-<attempt>.zip), which the file store publishes only when it
-- is complete, and only the attempt that still holds the claim may mark the
-- row succeeded: a truncated or superseded file is never pointed at.

-- +goose Up
CREATE TABLE exports (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    scope              text NOT NULL CHECK (scope IN ('tenant', 'contact')),
    contact_id         uuid REFERENCES contacts (id) ON DELETE SET NULL,
    format             text NOT NULL CHECK (format IN ('csv', 'json')),
    status             text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'expired')),
    -- The privacy request this export fulfils, if any (constraint in 0041).
    privacy_request_id uuid,
    rows_total         bigint NOT NULL DEFAULT 0,
    rows_done          bigint NOT NULL DEFAULT 0,
    file_key           text,
    bytes              bigint,
    sha256             text,
    error              text,
    attempts           integer NOT NULL DEFAULT 0,
    due_at             timestamptz NOT NULL,
    enqueued_at        timestamptz,
    claimed_at         timestamptz,
    heartbeat_at       timestamptz,
    finished_at        timestamptz,
    file_expires_at    timestamptz,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);
CREATE INDEX exports_tenant_created_idx ON exports (tenant_id, created_at);
-- The dispatcher's scans and the expiry sweep; each costs what is due.
CREATE INDEX exports_undispatched_idx ON exports (due_at) WHERE status = 'queued' AND enqueued_at IS NULL;
CREATE INDEX exports_inflight_idx ON exports (due_at) WHERE status IN ('queued', 'running') AND enqueued_at IS NOT NULL;
CREATE INDEX exports_file_expiry_idx ON exports (file_expires_at) WHERE status = 'succeeded';

ALTER TABLE exports ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON exports
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());

-- +goose Down
DROP TABLE exports;
