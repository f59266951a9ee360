-- A dry run asks, for each staged row, whether import_seen already holds
-- any of the row's identity hashes. With the import first in the primary
-- key the planner may read every hash of the import per row (a prefix
-- scan on import_id, then a filter) whenever its statistics think the
-- import has few (an unlogged table nobody has analyzed yet, or a cached
-- generic plan made when it was small): quadratic in the file. With the
-- hash first, the only index condition is the lookup of the row's own
-- hashes.

-- +goose Up
ALTER TABLE import_seen DROP CONSTRAINT import_seen_pkey, ADD PRIMARY KEY (key_hash, import_id);

-- +goose Down
ALTER TABLE import_seen DROP CONSTRAINT import_seen_pkey, ADD PRIMARY KEY (import_id, key_hash);
