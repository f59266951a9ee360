-- One dedupe rule for imports, the same within a batch and across
-- batches: a row's key is its external_id, else its phone, else its email;
-- rows with the same key are one client and rows with different keys never
-- merge. A key matches the contacts the import did not create (by
-- external_id; a phone or email key: the oldest contact with it), and the
-- contact the import created for that same key, found by its external_id:
-- a row without one gets "import-" and a UUID derived (keyed hash) from
-- the import and the key, so the next batch finds it again.

-- +goose Up
-- The import that created the contact: its phone and email are not
-- matched by that import's other keys.
ALTER TABLE contacts ADD COLUMN created_by_import uuid;

-- The staging table is empty between transactions. new_external_id is the
-- external_id a new contact gets (the row's own, or the derived one);
-- id_hashes (every identity of a row, for dry runs) is no longer used:
-- a dry run remembers the key only.
ALTER TABLE import_rows DROP COLUMN id_hashes, ADD COLUMN new_external_id text NOT NULL;

-- +goose Down
ALTER TABLE import_rows DROP COLUMN new_external_id, ADD COLUMN id_hashes bytea[] NOT NULL DEFAULT '{}';
ALTER TABLE contacts DROP COLUMN created_by_import;
