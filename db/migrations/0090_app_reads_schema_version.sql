-- The production roles (api, worker, scheduler) log in as a role that is
-- neither superuser nor owner, a member of errand_app, and refuse to start
-- on a schema behind the binary: they read goose's version table, which
-- goose created before 0001 granted errand_app anything. Reading it is
-- all they may do; `errand migrate` runs as the owner.

-- +goose Up
GRANT SELECT ON goose_db_version TO errand_app;

-- +goose Down
REVOKE SELECT ON goose_db_version FROM errand_app;
