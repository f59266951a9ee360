-- IdempotencyKeyReserve claims a key for a request about to run; it
-- returns no row when a live record holds the key. A record left pending
-- by a process that died is reclaimed once it is older than @stale_before.
-- name: IdempotencyKeyReserve :one
INSERT INTO idempotency_keys (scope, key, request_hash, state, created_at, expires_at)
VALUES (@scope, @key, '', 'pending', @now, @expires_at)
ON CONFLICT (scope, key) DO UPDATE
SET request_hash = '', state = 'pending', response_status = NULL, response_type = NULL, response_body = NULL,
    created_at = excluded.created_at, expires_at = excluded.expires_at
WHERE idempotency_keys.expires_at <= @now
   OR (idempotency_keys.state = 'pending' AND idempotency_keys.created_at <= @stale_before::timestamptz)
RETURNING scope;

-- name: IdempotencyKeyGet :one
SELECT * FROM idempotency_keys WHERE scope = @scope AND key = @key;

-- name: IdempotencyKeyComplete :exec
UPDATE idempotency_keys
SET state = 'done', request_hash = @request_hash, response_status = @response_status,
    response_type = @response_type, response_body = @response_body
WHERE scope = @scope AND key = @key AND state = 'pending';

-- name: IdempotencyKeyRelease :exec
DELETE FROM idempotency_keys WHERE scope = @scope AND key = @key AND state = 'pending';

-- name: IdempotencyKeyDeleteExpired :execrows
DELETE FROM idempotency_keys WHERE expires_at <= @now;
