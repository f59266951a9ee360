-- LocationUpsert creates or replaces a location by its external ID;
-- inserted tells which happened.
-- name: LocationUpsert :one
INSERT INTO locations (tenant_id, external_id, name, timezone, settings, created_at, updated_at)
VALUES (@tenant_id, @external_id, @name, @timezone, @settings, @now, @now)
ON CONFLICT (tenant_id, external_id) DO UPDATE
SET name = excluded.name, timezone = excluded.timezone, settings = excluded.settings, updated_at = excluded.updated_at
RETURNING *, (xmax = 0)::boolean AS inserted;

-- name: LocationGetByExternalID :one
SELECT * FROM locations WHERE tenant_id = @tenant_id AND external_id = @external_id;

-- name: LocationGet :one
SELECT * FROM locations WHERE tenant_id = @tenant_id AND id = @id;

-- name: LocationTemplateUpsert :one
INSERT INTO location_templates (tenant_id, location_id, event, channel, subject, body, updated_at)
VALUES (@tenant_id, @location_id, @event, @channel, sqlc.narg('subject'), @body, @now)
ON CONFLICT (location_id, event, channel) DO UPDATE
SET subject = excluded.subject, body = excluded.body, updated_at = excluded.updated_at
RETURNING *;

-- name: LocationTemplateDelete :execrows
DELETE FROM location_templates
WHERE tenant_id = @tenant_id AND location_id = @location_id AND event = @event AND channel = @channel;

-- name: LocationTemplateList :many
SELECT * FROM location_templates WHERE tenant_id = @tenant_id AND location_id = @location_id
ORDER BY event, channel;
