-- Appointment notifications and client texting: locations with their
-- notification settings and template overrides, appointments, bulk
-- batches, account notices, and the links from a message to what it is
-- about. Webhook receipts make replayed provider webhooks harmless.

-- +goose Up

-- A location of a tenant's business and what it notifies about. settings
-- is the full notification and quiet-hours configuration with every
-- default filled in (internal/notify.Settings).
CREATE TABLE locations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    external_id text NOT NULL,
    name        text NOT NULL,
    timezone    text NOT NULL,
    settings    jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    UNIQUE (tenant_id, external_id)
);

-- A location's own wording for one event on one channel; without a row the
-- built-in wording is used. Placeholders are checked when saved.
CREATE TABLE location_templates (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    location_id uuid NOT NULL REFERENCES locations (id) ON DELETE CASCADE,
    event       text NOT NULL CHECK (event IN ('confirmation', 'reminder', 'on_the_way', 'follow_up')),
    channel     text NOT NULL CHECK (channel IN ('sms', 'email')),
    subject     text,
    body        text NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (location_id, event, channel)
);

-- An appointment. Its state machine (the intake's PUT drives it):
--
--   scheduled ──PUT cancelled──> cancelled ──PUT scheduled──> scheduled
--       │  └────PUT completed──> completed ──PUT scheduled──> scheduled
--       └─PUT starts_at moved──> scheduled (pending reminders move)
--
-- Each transition plans the appointment's messages (internal/appointment).
CREATE TABLE appointments (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    external_id  text NOT NULL,
    contact_id   uuid NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    location_id  uuid NOT NULL REFERENCES locations (id) ON DELETE CASCADE,
    starts_at    timestamptz NOT NULL,
    address      text,
    technician   text,
    status       text NOT NULL CHECK (status IN ('scheduled', 'cancelled', 'completed')),
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    UNIQUE (tenant_id, external_id)
);
CREATE INDEX appointments_contact_idx ON appointments (contact_id);
CREATE INDEX appointments_location_idx ON appointments (location_id);

-- One text or email to many of a tenant's contacts; each recipient is a
-- message of kind 'bulk' pointing here.
CREATE TABLE message_batches (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel    text NOT NULL CHECK (channel IN ('sms', 'email')),
    send_at    timestamptz NOT NULL,
    total      integer NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX message_batches_tenant_idx ON message_batches (tenant_id, created_at);

-- A notice to every active tenant's owner (a policy change, at least 30
-- days ahead). Not tenant-scoped: it belongs to the platform.
CREATE TABLE notices (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    subject      text NOT NULL,
    body         text NOT NULL,
    effective_at timestamptz NOT NULL,
    recipients   integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL
);

-- What a message is about. slot names an appointment message's place in
-- its plan ('confirmation', 'reminder:24h0m0s', 'follow_up', 'on_the_way'),
-- so a rescheduled appointment moves its pending reminders instead of
-- adding more.
ALTER TABLE messages
    ADD COLUMN appointment_id uuid REFERENCES appointments (id) ON DELETE SET NULL,
    ADD COLUMN location_id    uuid REFERENCES locations (id) ON DELETE SET NULL,
    ADD COLUMN slot           text,
    ADD COLUMN batch_id       uuid REFERENCES message_batches (id) ON DELETE SET NULL,
    ADD COLUMN notice_id      uuid REFERENCES notices (id) ON DELETE SET NULL;

CREATE INDEX messages_appointment_idx ON messages (appointment_id) WHERE appointment_id IS NOT NULL;
CREATE INDEX messages_location_idx ON messages (location_id) WHERE location_id IS NOT NULL;
CREATE INDEX messages_batch_idx ON messages (batch_id) WHERE batch_id IS NOT NULL;
-- At most one pending message per appointment, slot and channel: no
-- duplicate reminders, whatever the interleaving of PUTs.
CREATE UNIQUE INDEX messages_appointment_slot_pending_idx ON messages (appointment_id, slot, channel)
    WHERE status IN ('scheduled', 'queued') AND appointment_id IS NOT NULL AND slot IS NOT NULL
          AND slot <> 'on_the_way';
-- A notice reaches each tenant once.
CREATE UNIQUE INDEX messages_notice_tenant_idx ON messages (notice_id, tenant_id) WHERE notice_id IS NOT NULL;

-- Bulk messages are admitted to Redis per tenant in bounded windows
-- (jobs/bulk_admit.go), not by the general due-scan, so the due-scan's
-- index leaves them out: a tenant's 50,000-text batch costs the scan
-- nothing.
DROP INDEX messages_undispatched_idx;
CREATE INDEX messages_undispatched_idx ON messages (due_at)
    WHERE status IN ('scheduled', 'queued') AND enqueued_at IS NULL AND kind <> 'bulk';
CREATE INDEX messages_bulk_waiting_idx ON messages (tenant_id, due_at)
    WHERE kind = 'bulk' AND status IN ('scheduled', 'queued') AND enqueued_at IS NULL;
CREATE INDEX messages_bulk_admitted_idx ON messages (tenant_id)
    WHERE kind = 'bulk' AND status IN ('scheduled', 'queued', 'sending') AND enqueued_at IS NOT NULL;

-- An inbound STOP names a phone number, not a tenant: find the tenants
-- that know that number.
CREATE INDEX contacts_phone_any_idx ON contacts (phone) WHERE phone IS NOT NULL;

-- Provider webhooks already processed (Svix message IDs, Twilio message
-- SIDs): a replayed delivery is acknowledged and ignored. Kept a week.
CREATE TABLE webhook_receipts (
    source      text NOT NULL,
    event_id    text NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (source, event_id)
);
CREATE INDEX webhook_receipts_received_idx ON webhook_receipts (received_at);

ALTER TABLE locations ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON locations
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());

ALTER TABLE location_templates ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON location_templates
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());

ALTER TABLE appointments ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON appointments
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());

ALTER TABLE message_batches ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON message_batches
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());

-- +goose Down
DROP TABLE webhook_receipts;
DROP INDEX contacts_phone_any_idx;
DROP INDEX messages_bulk_admitted_idx;
DROP INDEX messages_bulk_waiting_idx;
DROP INDEX messages_undispatched_idx;
CREATE INDEX messages_undispatched_idx ON messages (due_at)
    WHERE status IN ('scheduled', 'queued') AND enqueued_at IS NULL;
ALTER TABLE messages
    DROP COLUMN notice_id,
    DROP COLUMN batch_id,
    DROP COLUMN slot,
    DROP COLUMN location_id,
    DROP COLUMN appointment_id;
DROP TABLE notices;
DROP TABLE message_batches;
DROP TABLE appointments;
DROP TABLE location_templates;
DROP TABLE locations;
