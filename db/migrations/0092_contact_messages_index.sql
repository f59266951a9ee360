-- +goose NO TRANSACTION
-- A contact's message log is listed newest first, a page at a time
-- (GET /v1/contacts/{id}/messages, keyset on created_at and id): an index
-- in that order reads each page from the index instead of sorting all of
-- the contact's messages. It serves every lookup by contact_id the old
-- index served (erasure, exports). CONCURRENTLY, outside a transaction,
-- so writes to messages go on while it is built.

-- +goose Up
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_contact_created_idx ON messages (contact_id, created_at, id)
    WHERE contact_id IS NOT NULL;
DROP INDEX CONCURRENTLY IF EXISTS messages_contact_idx;

-- +goose Down
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_contact_idx ON messages (contact_id) WHERE contact_id IS NOT NULL;
DROP INDEX CONCURRENTLY IF EXISTS messages_contact_created_idx;
