-- name: CredentialReviewRecord :one
INSERT INTO credential_reviews (tenant_id, credential_id, actor, reviewer, decision, note, from_status, to_status,
                                remote_addr, request_id, created_at)
VALUES (@tenant_id, @credential_id, @actor, @reviewer, @decision, @note, @from_status, @to_status, @remote_addr,
        @request_id, @now)
RETURNING *;

-- name: CredentialReviewList :many
SELECT * FROM credential_reviews WHERE tenant_id = @tenant_id AND credential_id = @credential_id ORDER BY id;
