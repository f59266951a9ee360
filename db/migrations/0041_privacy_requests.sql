-- Privacy requests (access, deletion, correction) with a deadline, an audit
-- trail of every state change, and links to the export or deletion that
-- fulfils them. The seeds promise "we will respond to your request within
-- 30 days"; the deadline watcher reminds the tenant's owner 7 days and 1
-- day before due_at and marks what is overdue.
--
-- State machine (open states: received, approved, in_progress):
--
--   received ──(access: export started)──────────> in_progress ──export succeeded──> completed
--      │  ▲                                            │
--      │  └─────────────export failed───────────────────┘
--      ├──(deletion: approve)──> approved ──(deletion started)──> in_progress ──> completed
--      ├──(correction, by hand)──> in_progress ──> completed
--      └──(any open state, by hand)──> rejected | completed
--
-- A deletion request stays 'approved' until a deletion is started for it
-- (the deletions feature does that when it is wired in).

-- +goose Up
CREATE TABLE privacy_requests (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    type           text NOT NULL CHECK (type IN ('access', 'deletion', 'correction')),
    subject        text NOT NULL CHECK (subject IN ('tenant', 'contact')),
    -- The person the request is about. SET NULL when the contact is erased
    -- (by this very request, perhaps): the request and its trail remain.
    contact_id     uuid REFERENCES contacts (id) ON DELETE SET NULL,
    status         text NOT NULL CHECK (status IN ('received', 'approved', 'in_progress', 'completed', 'rejected')),
    received_at    timestamptz NOT NULL,
    due_at         timestamptz NOT NULL,
    export_id      uuid REFERENCES exports (id) ON DELETE SET NULL,
    -- The deletion that fulfils it (the deletions table is another
    -- feature's; no foreign key here).
    deletion_id    uuid,
    notified_7d_at timestamptz,
    notified_1d_at timestamptz,
    overdue_at     timestamptz,
    closed_at      timestamptz,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX privacy_requests_tenant_created_idx ON privacy_requests (tenant_id, created_at);
-- The deadline watcher and the overdue gauge look at open requests only.
CREATE INDEX privacy_requests_open_due_idx ON privacy_requests (due_at)
    WHERE status IN ('received', 'approved', 'in_progress');

-- The audit trail: every state change (who, when, from → to, note), and
-- the watcher's reminders and overdue marks. Append-only.
CREATE TABLE privacy_request_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    request_id  uuid NOT NULL REFERENCES privacy_requests (id) ON DELETE CASCADE,
    action      text NOT NULL,
    actor       text NOT NULL,
    from_status text,
    to_status   text NOT NULL,
    note        text NOT NULL DEFAULT '',
    occurred_at timestamptz NOT NULL
);
CREATE INDEX privacy_request_events_request_idx ON privacy_request_events (request_id, id);

-- Per-tenant privacy settings: how many days a request has (30 unless set).
CREATE TABLE privacy_settings (
    tenant_id     uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    response_days integer NOT NULL CHECK (response_days BETWEEN 1 AND 365),
    updated_at    timestamptz NOT NULL
);

ALTER TABLE exports ADD CONSTRAINT exports_privacy_request_fk
    FOREIGN KEY (privacy_request_id) REFERENCES privacy_requests (id) ON DELETE SET NULL;

ALTER TABLE privacy_requests ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON privacy_requests
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());

ALTER TABLE privacy_request_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON privacy_request_events
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());

ALTER TABLE privacy_settings ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON privacy_settings
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());

-- +goose Down
ALTER TABLE exports DROP CONSTRAINT exports_privacy_request_fk;
DROP TABLE privacy_settings;
DROP TABLE privacy_request_events;
DROP TABLE privacy_requests;
