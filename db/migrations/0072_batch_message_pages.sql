-- A batch's messages are listed in pages, in ID order after the last one
-- seen (GET /v1/message-batches/{id}/messages): the batch index carries the
-- ID, so each page reads its rows from the index in order instead of
-- sorting all 50,000 of a batch. It still serves everything the index on
-- batch_id alone served.

-- +goose Up
CREATE INDEX messages_batch_id_idx ON messages (batch_id, id) WHERE batch_id IS NOT NULL;
DROP INDEX messages_batch_idx;

-- +goose Down
CREATE INDEX messages_batch_idx ON messages (batch_id) WHERE batch_id IS NOT NULL;
DROP INDEX messages_batch_id_idx;
