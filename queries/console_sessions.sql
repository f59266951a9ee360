-- name: ConsoleSessionCreate :exec
INSERT INTO console_sessions (token_hash, csrf_token, remote_addr, created_at, expires_at)
VALUES (@token_hash, @csrf_token, @remote_addr, @now, @expires_at);

-- name: ConsoleSessionGet :one
SELECT * FROM console_sessions WHERE token_hash = @token_hash AND expires_at > @now;

-- name: ConsoleSessionDelete :exec
DELETE FROM console_sessions WHERE token_hash = @token_hash;

-- name: ConsoleSessionDeleteExpired :execrows
DELETE FROM console_sessions WHERE expires_at <= @now;
