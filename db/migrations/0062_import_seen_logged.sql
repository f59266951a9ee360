-- import_seen outlives the batch that writes it: a dry run's later
-- batches count a row as a duplicate because an earlier, committed batch
-- put its identity there. Unlogged, a PostgreSQL crash and restart
-- emptied it while the import's counts and resume point (logged) stayed,
-- so the resumed dry run counted the rest of the file as new. Logged, it
-- commits and survives with the batch it belongs to. (import_rows stays
-- unlogged: none of its rows outlives its transaction.)

-- +goose Up
ALTER TABLE import_seen SET LOGGED;

-- +goose Down
ALTER TABLE import_seen SET UNLOGGED;
