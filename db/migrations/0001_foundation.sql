-- Foundation: tenants and their keys, contacts, messages, idempotent
-- requests, the security log and console sessions.
--
-- Row-level security is the second wall behind "every query takes the
-- tenant": the application runs as errand_app (neither superuser nor table
-- owner), and every tenant-scoped table only shows rows whose tenant_id
-- matches errand.tenant_id, set per transaction. Cross-tenant scans
-- (dispatch, retention) declare errand.scope = 'system' explicitly.

-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'errand_app') THEN
        CREATE ROLE errand_app NOLOGIN;
    END IF;
END
$$;
-- +goose StatementEnd

GRANT USAGE ON SCHEMA public TO errand_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO errand_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO errand_app;

CREATE FUNCTION errand_tenant() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('errand.tenant_id', true), '')::uuid $$;

CREATE FUNCTION errand_system() RETURNS boolean
    LANGUAGE sql STABLE
    AS $$ SELECT coalesce(current_setting('errand.scope', true), '') = 'system' $$;

CREATE TABLE tenants (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name           text NOT NULL,
    timezone       text NOT NULL,
    default_region text NOT NULL DEFAULT 'US',
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cancelled')),
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    prefix       text NOT NULL UNIQUE,
    key_hash     bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

CREATE TABLE contacts (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    external_id text NOT NULL,
    name        text NOT NULL DEFAULT '',
    phone       text,
    email       text,
    timezone    text,
    address     text,
    notes       text,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    UNIQUE (tenant_id, external_id)
);
CREATE INDEX contacts_phone_idx ON contacts (tenant_id, phone) WHERE phone IS NOT NULL;
CREATE INDEX contacts_email_idx ON contacts (tenant_id, lower(email)) WHERE email IS NOT NULL;

-- A message is the unit of delivery. Its state machine:
--
--   scheduled ──due──> queued ──claim──> sending ──accepted──> sent ──callback──> delivered
--       │                 │                 │  └─transient─> queued (due_at = retry time)
--       │                 │                 └─permanent───> failed | suppressed
--       └─────────────────┴──DELETE────────> cancelled
--
-- send_at is what the caller asked for; due_at is when the next attempt
-- should run (send_at, moved by quiet hours or a retry). enqueued_at says
-- the row has a task in Redis; NULL means the dispatcher must enqueue it
-- once due_at comes within its horizon.
CREATE TABLE messages (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    contact_id          uuid REFERENCES contacts (id) ON DELETE SET NULL,
    kind                text NOT NULL DEFAULT 'manual',
    channel             text NOT NULL CHECK (channel IN ('sms', 'email')),
    subject             text,
    body                text NOT NULL,
    destination         text,
    status              text NOT NULL CHECK (status IN ('scheduled', 'queued', 'sending', 'sent', 'delivered',
                                                        'undelivered', 'failed', 'suppressed', 'cancelled')),
    send_at             timestamptz NOT NULL,
    due_at              timestamptz NOT NULL,
    enqueued_at         timestamptz,
    claimed_at          timestamptz,
    sent_at             timestamptz,
    delivered_at        timestamptz,
    provider_message_id text,
    error               text,
    attempts            integer NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL
);
CREATE INDEX messages_tenant_created_idx ON messages (tenant_id, created_at);
CREATE INDEX messages_contact_idx ON messages (contact_id) WHERE contact_id IS NOT NULL;
CREATE UNIQUE INDEX messages_provider_id_idx ON messages (provider_message_id) WHERE provider_message_id IS NOT NULL;
-- The dispatcher's two scans; both cost what is due, not what exists.
CREATE INDEX messages_undispatched_idx ON messages (due_at)
    WHERE status IN ('scheduled', 'queued') AND enqueued_at IS NULL;
CREATE INDEX messages_inflight_idx ON messages (due_at)
    WHERE status IN ('scheduled', 'queued', 'sending') AND enqueued_at IS NOT NULL;

-- Idempotency-Key records: the first response to a (scope, key), replayed
-- for 24 hours. scope is the tenant ID, or 'admin'.
CREATE TABLE idempotency_keys (
    scope           text NOT NULL,
    key             text NOT NULL,
    request_hash    bytea NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'done')),
    response_status integer,
    response_type   text,
    response_body   bytea,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);

-- Security log: authentication failures, key lifecycle, admin actions,
-- console logins. Kept one year (the retention sweep enforces it). Never
-- holds personal data of a tenant's customers.
CREATE TABLE security_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    tenant_id   uuid,
    kind        text NOT NULL,
    actor       text NOT NULL DEFAULT '',
    remote_addr text NOT NULL DEFAULT '',
    request_id  text NOT NULL DEFAULT '',
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX security_events_occurred_idx ON security_events (occurred_at);
CREATE INDEX security_events_tenant_idx ON security_events (tenant_id, occurred_at) WHERE tenant_id IS NOT NULL;

-- Console sessions of people logged in through the form. Only a hash of
-- the session token is stored.
CREATE TABLE console_sessions (
    token_hash  bytea PRIMARY KEY,
    csrf_token  text NOT NULL,
    remote_addr text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);

ALTER TABLE contacts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON contacts
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());

ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON messages
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());

-- +goose Down
DROP TABLE console_sessions;
DROP TABLE security_events;
DROP TABLE idempotency_keys;
DROP TABLE messages;
DROP TABLE contacts;
DROP TABLE api_keys;
DROP TABLE tenants;
DROP FUNCTION errand_system();
DROP FUNCTION errand_tenant();
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM errand_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT ON SEQUENCES FROM errand_app;
REVOKE USAGE ON SCHEMA public FROM errand_app;
