-- CredentialExpiryNoticeClaim records that a credential's warning for a
-- threshold is being sent; it returns no row when it already was.
-- name: CredentialExpiryNoticeClaim :one
INSERT INTO credential_expiry_notices (credential_id, threshold_days, tenant_id, created_at)
VALUES (@credential_id, @threshold_days, @tenant_id, @now)
ON CONFLICT (credential_id, threshold_days) DO NOTHING
RETURNING *;

-- CredentialExpiryNoticeSetMessage links the notices claimed in this
-- transaction to the email that carries them.
-- name: CredentialExpiryNoticeSetMessage :exec
UPDATE credential_expiry_notices SET message_id = @message_id
WHERE tenant_id = @tenant_id AND credential_id = ANY(@credential_ids::uuid[]) AND message_id IS NULL
  AND created_at = @now;

-- name: CredentialExpiryNoticeList :many
SELECT * FROM credential_expiry_notices WHERE tenant_id = @tenant_id AND credential_id = @credential_id
ORDER BY threshold_days DESC;
