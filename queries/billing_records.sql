-- name: BillingRecordCreate :one
INSERT INTO billing_records (tenant_id, description, amount_cents, currency, occurred_at, created_at)
VALUES (@tenant_id, @description, @amount_cents, @currency, @occurred_at, @now)
RETURNING *;
