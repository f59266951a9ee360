-- ContactUpsert creates or replaces a contact by its external ID; inserted
-- tells which happened.
-- name: ContactUpsert :one
INSERT INTO contacts (tenant_id, external_id, name, phone, email, timezone, address, notes, created_at, updated_at)
VALUES (@tenant_id, @external_id, @name, sqlc.narg('phone'), sqlc.narg('email'), sqlc.narg('timezone'),
        sqlc.narg('address'), sqlc.narg('notes'), @now, @now)
ON CONFLICT (tenant_id, external_id) DO UPDATE
SET name = excluded.name, phone = excluded.phone, email = excluded.email, timezone = excluded.timezone,
    address = excluded.address, notes = excluded.notes, updated_at = excluded.updated_at
RETURNING *, (xmax = 0)::boolean AS inserted;

-- name: ContactGetByExternalID :one
SELECT * FROM contacts WHERE tenant_id = @tenant_id AND external_id = @external_id;

-- name: ContactGet :one
SELECT * FROM contacts WHERE tenant_id = @tenant_id AND id = @id;

-- ContactIDsByExternalIDs resolves many external IDs at once (a bulk
-- message's recipients).
-- name: ContactIDsByExternalIDs :many
SELECT id, external_id FROM contacts WHERE tenant_id = @tenant_id AND external_id = ANY(@external_ids::text[]);
