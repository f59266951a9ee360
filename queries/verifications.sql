-- VerificationLockAddress serialises requests for one address within a
-- tenant, so superseding its live code and creating the new one are one
-- step (the partial unique index is the second wall).
-- name: VerificationLockAddress :exec
SELECT pg_advisory_xact_lock(@lock_key::bigint);

-- VerificationSupersede ends the live code of an address when a newer one
-- is requested; the caller cancels the old code's message if it is still
-- waiting.
-- name: VerificationSupersede :many
UPDATE verifications
SET status = 'failed', reason = 'superseded by a newer code for the same address', nonce = NULL, code_hash = NULL,
    updated_at = @now
WHERE tenant_id = @tenant_id AND channel = @channel AND destination_hash = @destination_hash AND status = 'pending'
RETURNING id, message_id;

-- name: VerificationCreate :one
INSERT INTO verifications (id, tenant_id, channel, destination, destination_hash, brand, nonce, code_hash, status,
                           max_attempts, message_id, expires_at, created_at, updated_at)
VALUES (@id, @tenant_id, @channel, @destination, @destination_hash, @brand, @nonce, @code_hash, 'pending',
        @max_attempts, @message_id, @expires_at, @now, @now)
RETURNING *;

-- name: VerificationGet :one
SELECT * FROM verifications WHERE tenant_id = @tenant_id AND id = @id;

-- VerificationLock holds a verification until the transaction ends, so
-- concurrent checks count every wrong code.
-- name: VerificationLock :one
SELECT * FROM verifications WHERE tenant_id = @tenant_id AND id = @id FOR UPDATE;

-- VerificationGetByMessage is how the worker's renderer finds the code
-- behind a verification message.
-- name: VerificationGetByMessage :one
SELECT * FROM verifications WHERE tenant_id = @tenant_id AND message_id = @message_id::uuid;

-- name: VerificationApprove :one
UPDATE verifications
SET status = 'approved', approved_at = @now::timestamptz, nonce = NULL, code_hash = NULL, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status = 'pending'
RETURNING *;

-- VerificationWrongCode counts a wrong code; the one that reaches
-- max_attempts fails the verification for good.
-- name: VerificationWrongCode :one
UPDATE verifications
SET attempts   = attempts + 1,
    status     = CASE WHEN attempts + 1 >= max_attempts THEN 'failed' ELSE status END,
    reason     = CASE WHEN attempts + 1 >= max_attempts THEN 'too many wrong codes' ELSE reason END,
    nonce      = CASE WHEN attempts + 1 >= max_attempts THEN NULL ELSE nonce END,
    code_hash  = CASE WHEN attempts + 1 >= max_attempts THEN NULL ELSE code_hash END,
    updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status = 'pending'
RETURNING *;

-- name: VerificationExpire :one
UPDATE verifications
SET status = 'expired', reason = 'the code expired before it was checked', nonce = NULL, code_hash = NULL,
    updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status = 'pending' AND expires_at <= @now
RETURNING *;

-- VerificationFail ends a verification whose code could not be delivered.
-- name: VerificationFail :one
UPDATE verifications
SET status = 'failed', reason = @reason::text, nonce = NULL, code_hash = NULL, updated_at = @now
WHERE tenant_id = @tenant_id AND id = @id AND status = 'pending'
RETURNING *;
