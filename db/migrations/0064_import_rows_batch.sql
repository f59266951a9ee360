-- A batch's staged rows are found by import and batch, not by import
-- alone: every batch of an import deletes its rows, which stay in the
-- table and its index as dead entries until a vacuum, and a lookup by
-- import alone read all of them again for each later batch (between two
-- vacuums an import's batches grew slower and slower; with autovacuum
-- off, to the end of the import).

-- +goose Up
ALTER TABLE import_rows ADD COLUMN batch bigint NOT NULL;
DROP INDEX import_rows_import_idx;
CREATE INDEX import_rows_batch_idx ON import_rows (import_id, batch);

-- +goose Down
DROP INDEX import_rows_batch_idx;
CREATE INDEX import_rows_import_idx ON import_rows (import_id);
ALTER TABLE import_rows DROP COLUMN batch;
