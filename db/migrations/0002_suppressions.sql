-- The suppression list and its history, and a tenant's owner email.
--
-- Addresses are stored as keyed hashes (HMAC-SHA256 with the server's
-- secret over the E.164 number or lower-cased email), never in clear: a
-- suppression must outlive the erasure of the person it protects (TCPA
-- records are kept 3 years), and a pseudonym is all it needs to match the
-- next send.

-- +goose Up
ALTER TABLE tenants ADD COLUMN owner_email text;

CREATE TABLE suppressions (
    tenant_id    uuid NOT NULL,
    channel      text NOT NULL CHECK (channel IN ('sms', 'email')),
    address_hash bytea NOT NULL,
    reason       text NOT NULL,
    source       text NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, channel, address_hash)
);

-- Every opt-out and opt-in, kept as evidence: who (the pseudonym), when,
-- what was said (the keyword), and where it came from.
CREATE TABLE suppression_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    uuid NOT NULL,
    channel      text NOT NULL CHECK (channel IN ('sms', 'email')),
    address_hash bytea NOT NULL,
    action       text NOT NULL CHECK (action IN ('opt_out', 'opt_in', 'help')),
    keyword      text NOT NULL DEFAULT '',
    source       text NOT NULL,
    reference    text NOT NULL DEFAULT '',
    occurred_at  timestamptz NOT NULL
);
CREATE INDEX suppression_events_address_idx ON suppression_events (tenant_id, channel, address_hash, occurred_at);
CREATE INDEX suppression_events_occurred_idx ON suppression_events (occurred_at);

ALTER TABLE suppressions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON suppressions
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());

ALTER TABLE suppression_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON suppression_events
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());

-- +goose Down
DROP TABLE suppression_events;
DROP TABLE suppressions;
ALTER TABLE tenants DROP COLUMN owner_email;
