-- The purge's files step walks the tenant's folder in the file store a
-- bounded batch at a time (filestore.Local.DeletePrefixStep): each batch
-- counts the next files and records the last one here, in the same
-- transaction as the count, and removes them in the batch after. A crash
-- then never loses a count (files are removed only after they are
-- counted) nor doubles one (what is at or before the cursor is never
-- counted again). Keys are IDs only (tenants/<id>/exports/<id>-1.zip).

-- +goose Up
ALTER TABLE deletions ADD COLUMN file_cursor text;

-- +goose Down
ALTER TABLE deletions DROP COLUMN file_cursor;
