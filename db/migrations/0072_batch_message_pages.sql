-- +goose NO TRANSACTION
-- A batch's messages are listed in pages, in ID order after the last one
-- seen (GET /v1/message-batches/{id}/messages): the batch index carries the
-- ID, so each page reads its rows from the index in order instead of
-- sorting all 50,000 of a batch. It still serves everything the index on
-- batch_id alone served. Built CONCURRENTLY (so outside a transaction):
-- messages is the largest table, and a plain build would block every
-- write to it, sends included, for as long as the build takes.

-- +goose Up
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_batch_id_idx ON messages (batch_id, id) WHERE batch_id IS NOT NULL;
DROP INDEX CONCURRENTLY IF EXISTS messages_batch_idx;

-- +goose Down
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_batch_idx ON messages (batch_id) WHERE batch_id IS NOT NULL;
DROP INDEX CONCURRENTLY IF EXISTS messages_batch_id_idx;
