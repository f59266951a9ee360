-- Deletions and retention: tenant cancellation with a 90-day grace period
-- and restore, the purge that follows it, erasure of one person, legal
-- holds, and retention policies as data that a daily sweep applies.
--
-- A deletion's state machine:
--
--   scheduled ──purge_after passed, no hold──> running ──every step done──> completed
--       │  ▲                                      │ (crash: the next scan resumes it;
--       │  └──held (hold_reason, held_since)──────┘  every step is idempotent)
--       └──DELETE /v1/deletions/{id} during grace──> cancelled (tenant restored)
--
-- Tenant scope: purge_after = cancelled_at + 90 days. Contact scope:
-- purge_after = now (the person is erased at once).
--
-- The deletion row is the certificate: it is never purged, holds no
-- personal data (IDs and counts only), and says per table what was
-- removed or anonymised (counts), and why it waited (hold_*).

-- +goose Up
ALTER TABLE tenants
    ADD COLUMN cancelled_at timestamptz,
    ADD COLUMN purged_at    timestamptz;

CREATE TABLE deletions (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES tenants (id),
    scope              text NOT NULL CHECK (scope IN ('tenant', 'contact')),
    -- The erased person; no foreign key: the contact row goes, the
    -- certificate stays.
    contact_id         uuid,
    reason             text NOT NULL DEFAULT '' CHECK (length(reason) <= 500),
    -- minor: a child's data, erased first (critical queue) and without the
    -- retention exceptions other erasures keep (message log metadata).
    minor              boolean NOT NULL DEFAULT false,
    status             text NOT NULL CHECK (status IN ('scheduled', 'running', 'completed', 'cancelled')),
    purge_after        timestamptz NOT NULL,
    privacy_request_id uuid,
    -- counts: table → rows removed or anonymised, written in the same
    -- transaction as each batch, so a crash never over- or under-counts.
    counts             jsonb NOT NULL DEFAULT '{}',
    -- step: the index of the purge step in progress (resume point);
    -- cursor: that step's keyset position, when it walks by id.
    step               integer NOT NULL DEFAULT 0,
    cursor             uuid,
    -- Why it waited: the legal hold that blocked it, since when, and
    -- when it could go on (NULL while still held).
    hold_id            uuid,
    hold_reason        text,
    held_since         timestamptz,
    held_until         timestamptz,
    restored_messages  integer,
    expired_messages   integer,
    enqueued_at        timestamptz,
    started_at         timestamptz,
    completed_at       timestamptz,
    cancelled_at       timestamptz,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    CHECK (scope = 'tenant' OR contact_id IS NOT NULL)
);
CREATE INDEX deletions_tenant_idx ON deletions (tenant_id, created_at);
CREATE INDEX deletions_due_idx ON deletions (purge_after) WHERE status IN ('scheduled', 'running');
-- One live tenant deletion per tenant.
CREATE UNIQUE INDEX deletions_tenant_live_idx ON deletions (tenant_id)
    WHERE scope = 'tenant' AND status IN ('scheduled', 'running');

-- Scheduled messages cancelled with their tenant carry the deletion's ID,
-- so a restore knows which to bring back.
ALTER TABLE messages ADD COLUMN deletion_id uuid;
CREATE INDEX messages_deletion_idx ON messages (deletion_id) WHERE deletion_id IS NOT NULL;
-- The purge walks a tenant's messages by ID (keyset; never rescans), and
-- the retention sweep finds old messages by creation time.
CREATE INDEX messages_tenant_id_idx ON messages (tenant_id, id);
CREATE INDEX messages_created_idx ON messages (created_at);
-- Deleting a contact sets these links NULL, and deleting a message sets
-- credential_expiry_notices.message_id NULL: without an index each of
-- those is a scan of the whole table per row removed.
CREATE INDEX exports_contact_idx ON exports (contact_id) WHERE contact_id IS NOT NULL;
CREATE INDEX privacy_requests_contact_idx ON privacy_requests (contact_id) WHERE contact_id IS NOT NULL;
CREATE INDEX credential_expiry_notices_message_idx ON credential_expiry_notices (message_id) WHERE message_id IS NOT NULL;

-- Billing records: kept 7 years after they were made (the law), whatever
-- happens to the tenant. Minimal: Errand bills nothing itself yet; the
-- retention policy and the purge's "keep" list are what matter.
CREATE TABLE billing_records (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants (id),
    description  text NOT NULL,
    amount_cents bigint NOT NULL,
    currency     text NOT NULL DEFAULT 'USD',
    occurred_at  timestamptz NOT NULL,
    created_at   timestamptz NOT NULL
);
CREATE INDEX billing_records_tenant_idx ON billing_records (tenant_id, occurred_at);
CREATE INDEX billing_records_occurred_idx ON billing_records (occurred_at);

-- Retention policies. tenant_id NULL is the platform default (seeded from
-- the published schedules); a tenant's row overrides it and may only be
-- stricter: fewer days, never below the legal floor (min_days), and
-- 'delete' where the default deletes. The trigger below is the wall; the
-- admin API checks first to answer with a readable error.
CREATE TABLE retention_policies (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- No foreign key: a TRUNCATE … CASCADE of tenants must not take the
    -- platform defaults with it, and overrides outlive a purge.
    tenant_id  uuid,
    what       text NOT NULL CHECK (what IN ('message_logs', 'opt_out_records', 'billing_records', 'security_logs')),
    days       integer NOT NULL CHECK (days >= 0),
    min_days   integer NOT NULL DEFAULT 0 CHECK (min_days >= 0),
    action     text NOT NULL CHECK (action IN ('delete', 'anonymise')),
    note       text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL,
    CHECK (days >= min_days)
);
CREATE UNIQUE INDEX retention_policies_default_idx ON retention_policies (what) WHERE tenant_id IS NULL;
CREATE UNIQUE INDEX retention_policies_tenant_idx ON retention_policies (tenant_id, what) WHERE tenant_id IS NOT NULL;

-- +goose StatementBegin
CREATE FUNCTION retention_override_stricter() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    d retention_policies%ROWTYPE;
BEGIN
    IF NEW.tenant_id IS NULL THEN
        RETURN NEW;
    END IF;
    SELECT * INTO d FROM retention_policies WHERE tenant_id IS NULL AND what = NEW.what;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no default retention policy for %', NEW.what USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.days > d.days OR NEW.days < d.min_days THEN
        RAISE EXCEPTION 'retention override for % must be between % and % days', NEW.what, d.min_days, d.days
            USING ERRCODE = 'check_violation';
    END IF;
    IF d.action = 'delete' AND NEW.action <> 'delete' THEN
        RAISE EXCEPTION 'retention override for % must delete, as the default does', NEW.what
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.min_days := d.min_days;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER retention_override_stricter BEFORE INSERT OR UPDATE ON retention_policies
    FOR EACH ROW EXECUTE FUNCTION retention_override_stricter();

-- The published schedules (seeds 001, 002): message logs (delivery status
-- included) and opt-out records 3 years for TCPA, billing 7 years (also the
-- legal floor), security logs 1 year.
INSERT INTO retention_policies (tenant_id, what, days, min_days, action, note, updated_at) VALUES
    (NULL, 'message_logs', 1095, 0, 'delete', 'message log metadata and delivery status: 3 years (TCPA)', now()),
    (NULL, 'opt_out_records', 1095, 0, 'delete', 'opt-out and opt-in records: 3 years (TCPA)', now()),
    (NULL, 'billing_records', 2555, 2555, 'delete', 'billing records: 7 years', now()),
    (NULL, 'security_logs', 365, 0, 'delete', 'security and audit logs: up to 1 year', now());

-- Legal holds: while a hold is live (released_at NULL), no purge, erasure
-- or retention sweep touches the tenant's (contact_id NULL) or that
-- person's data.
CREATE TABLE legal_holds (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    contact_id  uuid,
    reason      text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    placed_by   text NOT NULL,
    placed_at   timestamptz NOT NULL,
    released_by text,
    released_at timestamptz
);
CREATE INDEX legal_holds_live_idx ON legal_holds (tenant_id) WHERE released_at IS NULL;

-- What each retention sweep removed: one row per policy applied that
-- removed anything.
CREATE TABLE retention_runs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ran_at     timestamptz NOT NULL,
    what       text NOT NULL,
    action     text NOT NULL,
    rows       bigint NOT NULL
);
CREATE INDEX retention_runs_ran_idx ON retention_runs (ran_at);

ALTER TABLE deletions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON deletions
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());

ALTER TABLE billing_records ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON billing_records
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());

-- +goose Down
DROP TABLE retention_runs;
DROP TABLE legal_holds;
DROP TABLE retention_policies;
DROP FUNCTION retention_override_stricter();
DROP TABLE billing_records;
DROP INDEX credential_expiry_notices_message_idx;
DROP INDEX privacy_requests_contact_idx;
DROP INDEX exports_contact_idx;
DROP INDEX messages_created_idx;
DROP INDEX messages_tenant_id_idx;
DROP INDEX messages_deletion_idx;
ALTER TABLE messages DROP COLUMN deletion_id;
DROP TABLE deletions;
ALTER TABLE tenants DROP COLUMN purged_at, DROP COLUMN cancelled_at;
