-- Credentials of service professionals (driver's licences, trade licences,
-- insurance): the uploaded document lives encrypted in the file store
-- (tenants/<tenant>/credentials/<id>), never served to tenants; the row
-- holds what was declared about it, the results of the automatic checks,
-- and where it stands.
--
-- State machine (each transition a named query in queries/credentials.sql):
--
--   pending ──checks pass────────────────────> verified      (CredentialFinishChecks)
--      │ ────a check wants a person───────────> needs_review (CredentialFinishChecks; retries exhausted: CredentialNeedsReview)
--      └────a check fails─────────────────────> rejected     (CredentialFinishChecks)
--   needs_review ──ops approve / reject──────> verified | rejected   (CredentialReview)
--   pending | verified | needs_review ──expiry date passed──> expired (CredentialExpireDue)
--
-- due_at / enqueued_at make pending rows dispatchable exactly like
-- messages: enqueued_at NULL means the dispatcher must (re-)enqueue it.

-- +goose Up
-- A professional, known by the tenant's own ID for them.
CREATE TABLE pros (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    external_id text NOT NULL,
    created_at  timestamptz NOT NULL,
    UNIQUE (tenant_id, external_id)
);

CREATE TABLE credentials (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    pro_id      uuid NOT NULL REFERENCES pros (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('drivers_license', 'trade_license', 'insurance')),
    number      text NOT NULL,
    -- number_norm is the number in capitals without separators: what the
    -- duplicate check compares.
    number_norm text NOT NULL,
    issuer      text NOT NULL,
    expires_on  date NOT NULL,
    file_key    text NOT NULL,
    file_type   text NOT NULL CHECK (file_type IN ('application/pdf', 'image/jpeg', 'image/png')),
    file_size   bigint NOT NULL,
    file_sha256 text NOT NULL,
    status      text NOT NULL CHECK (status IN ('pending', 'verified', 'needs_review', 'rejected', 'expired')),
    -- checks is the list of {check, outcome, reason} the pipeline (and
    -- reviewers) recorded, in order.
    checks      jsonb NOT NULL DEFAULT '[]',
    error       text,
    attempts    integer NOT NULL DEFAULT 0,
    due_at      timestamptz NOT NULL,
    enqueued_at timestamptz,
    checked_at  timestamptz,
    reviewed_at timestamptz,
    expired_at  timestamptz,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX credentials_pro_idx ON credentials (tenant_id, pro_id, created_at);
CREATE INDEX credentials_number_idx ON credentials (tenant_id, kind, number_norm);
CREATE INDEX credentials_sha256_idx ON credentials (tenant_id, file_sha256);
CREATE INDEX credentials_undispatched_idx ON credentials (due_at) WHERE status = 'pending' AND enqueued_at IS NULL;
CREATE INDEX credentials_inflight_idx ON credentials (due_at) WHERE status = 'pending' AND enqueued_at IS NOT NULL;
CREATE INDEX credentials_review_idx ON credentials (created_at) WHERE status = 'needs_review';
CREATE INDEX credentials_live_expiry_idx ON credentials (expires_on) WHERE status IN ('pending', 'verified', 'needs_review');

-- Expiry warnings already sent: one row per credential and threshold, so
-- a re-run of the watch (or two at once) never warns twice.
CREATE TABLE credential_expiry_notices (
    credential_id  uuid NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,
    threshold_days integer NOT NULL,
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    message_id     uuid REFERENCES messages (id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (credential_id, threshold_days)
);
CREATE INDEX credential_expiry_notices_tenant_idx ON credential_expiry_notices (tenant_id);

-- The audit trail of manual reviews: who, when, what, and why.
CREATE TABLE credential_reviews (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    credential_id uuid NOT NULL REFERENCES credentials (id) ON DELETE CASCADE,
    actor         text NOT NULL,
    reviewer      text NOT NULL DEFAULT '',
    decision      text NOT NULL CHECK (decision IN ('approve', 'reject')),
    note          text NOT NULL DEFAULT '',
    from_status   text NOT NULL,
    to_status     text NOT NULL,
    remote_addr   text NOT NULL DEFAULT '',
    request_id    text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL
);
CREATE INDEX credential_reviews_credential_idx ON credential_reviews (credential_id, id);

ALTER TABLE pros ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON pros
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());

ALTER TABLE credentials ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON credentials
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());

ALTER TABLE credential_expiry_notices ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON credential_expiry_notices
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());

ALTER TABLE credential_reviews ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON credential_reviews
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());

-- +goose Down
DROP TABLE credential_reviews;
DROP TABLE credential_expiry_notices;
DROP TABLE credentials;
DROP TABLE pros;
