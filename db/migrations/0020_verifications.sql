-- One-time verification codes (SMS and email).
--
-- The code itself is never stored. A verification keeps a random nonce;
-- the code is HMAC(secret-derived key, id || nonce) reduced to six digits,
-- computed by the intake (to hash it) and by the worker (to send it), and
-- code_hash is a keyed hash of the code for the check. Both are wiped when
-- the verification ends, so a finished verification holds no secret at all.
--
-- State machine (every transition is a named query in queries/verifications.sql):
--
--   pending ──right code──────────────────> approved       (VerificationApprove)
--      │ ───5th wrong code─────────────────> failed        (VerificationWrongCode)
--      │ ───newer request, same address────> failed        (VerificationSupersede)
--      │ ───its message failed/suppressed──> failed        (VerificationFail)
--      └───10 minutes passed───────────────> expired       (VerificationExpire)
--
-- destination is the normalised address (E.164 phone, email); the worker's
-- renderer sends to it. destination_hash is its pseudonym (the same one the
-- suppression list uses), by which newer requests find older ones.

-- +goose Up
CREATE TABLE verifications (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel          text NOT NULL CHECK (channel IN ('sms', 'email')),
    destination      text NOT NULL,
    destination_hash bytea NOT NULL,
    brand            text NOT NULL,
    nonce            bytea,
    code_hash        bytea,
    status           text NOT NULL CHECK (status IN ('pending', 'approved', 'expired', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL,
    reason           text,
    message_id       uuid REFERENCES messages (id) ON DELETE SET NULL,
    expires_at       timestamptz NOT NULL,
    approved_at      timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    CHECK (status <> 'pending' OR (nonce IS NOT NULL AND code_hash IS NOT NULL))
);
-- At most one live code per address and tenant: a new request supersedes
-- the old one (under an advisory lock; this index is the second wall).
CREATE UNIQUE INDEX verifications_pending_destination_idx ON verifications (tenant_id, channel, destination_hash)
    WHERE status = 'pending';
CREATE INDEX verifications_message_idx ON verifications (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX verifications_tenant_created_idx ON verifications (tenant_id, created_at);

ALTER TABLE verifications ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON verifications
    USING (tenant_id = errand_tenant() OR errand_system())
    WITH CHECK (tenant_id = errand_tenant() OR errand_system());

-- +goose Down
DROP TABLE verifications;
