-- AppointmentLock loads an appointment for a change, holding it until the
-- transaction ends: two PUTs of the same appointment plan its messages one
-- after the other, never together. NO KEY UPDATE, because a worker
-- claiming one of its messages checks the message's foreign key (KEY
-- SHARE) while this transaction waits for that message: a full FOR UPDATE
-- would deadlock the two.
-- name: AppointmentLock :one
SELECT * FROM appointments WHERE tenant_id = @tenant_id AND external_id = @external_id FOR NO KEY UPDATE;

-- AppointmentInsert creates an appointment unless a concurrent request
-- just did (then it returns no row, and the caller locks that one).
-- name: AppointmentInsert :one
INSERT INTO appointments (tenant_id, external_id, contact_id, location_id, starts_at, address, technician, status,
                          created_at, updated_at)
VALUES (@tenant_id, @external_id, @contact_id, @location_id, @starts_at, sqlc.narg('address'), sqlc.narg('technician'),
        @status, @now, @now)
ON CONFLICT (tenant_id, external_id) DO NOTHING
RETURNING *;

-- name: AppointmentUpdate :one
UPDATE appointments
SET contact_id = @contact_id, location_id = @location_id, starts_at = @starts_at, address = sqlc.narg('address'),
    technician = sqlc.narg('technician'), status = @status, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id
RETURNING *;

-- name: AppointmentGetByExternalID :one
SELECT * FROM appointments WHERE tenant_id = @tenant_id AND external_id = @external_id;

-- AppointmentMessageContext is everything an appointment message's text
-- and its send-time checks need: the appointment, who it is for, where,
-- whose business, the location's settings and its own wording for this
-- event and channel, if any.
-- name: AppointmentMessageContext :one
SELECT a.starts_at, a.address, a.technician, a.status AS appointment_status,
       c.name AS contact_name, c.timezone AS contact_timezone, c.address AS contact_address,
       l.name AS location_name, l.timezone AS location_timezone, l.settings AS location_settings,
       t.name AS tenant_name, t.timezone AS tenant_timezone,
       lt.subject AS template_subject, lt.body AS template_body
FROM appointments a
JOIN contacts c ON c.id = a.contact_id
JOIN locations l ON l.id = a.location_id
JOIN tenants t ON t.id = a.tenant_id
LEFT JOIN location_templates lt ON lt.location_id = a.location_id AND lt.event = @event AND lt.channel = @channel
WHERE a.tenant_id = @tenant_id AND a.id = @id;

-- name: AppointmentMessages :many
SELECT * FROM messages WHERE tenant_id = @tenant_id AND appointment_id = @appointment_id
ORDER BY send_at, created_at;

-- AppointmentCancelPending cancels an appointment's messages that have not
-- been handed to a provider, those of the given slots or (with no slots)
-- all of them, with the reason on each row. A message an attempt has
-- claimed may be at the provider already: it is left to its task, which
-- asks the provider before it records sent or cancelled (the renderer
-- sees the appointment's new state).
-- name: AppointmentCancelPending :many
UPDATE messages SET status = 'cancelled', error = @reason, updated_at = @now
WHERE tenant_id = @tenant_id AND appointment_id = @appointment_id AND status IN ('scheduled', 'queued')
  AND claimed_at IS NULL
  AND (cardinality(@slots::text[]) = 0 OR slot = ANY(@slots::text[]))
RETURNING *;

-- AppointmentMoveMessage moves one pending message to a new send time (its
-- appointment moved); enqueued_at says whether it goes to Redis now or
-- waits for the due-scan. A message already attempted (waiting to retry)
-- is not moved: the provider may have it, and its retry must find it there.
-- name: AppointmentMoveMessage :one
UPDATE messages
SET send_at = @send_at, due_at = @send_at, enqueued_at = sqlc.narg('enqueued_at'), status = @status, error = NULL,
    updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status IN ('scheduled', 'queued') AND claimed_at IS NULL
RETURNING *;

-- AppointmentRedirectPending points an appointment's pending messages at
-- its new contact and location.
-- name: AppointmentRedirectPending :exec
UPDATE messages SET contact_id = @contact_id, location_id = @location_id, updated_at = @now
WHERE tenant_id = @tenant_id AND appointment_id = @appointment_id AND status IN ('scheduled', 'queued');
