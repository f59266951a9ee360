-- WebhookReceiptRecord remembers a webhook delivery; it returns no row
-- when the same delivery was processed before (a replay).
-- name: WebhookReceiptRecord :one
INSERT INTO webhook_receipts (source, event_id, received_at)
VALUES (@source, @event_id, @now)
ON CONFLICT DO NOTHING
RETURNING event_id;

-- name: WebhookReceiptPrune :execrows
DELETE FROM webhook_receipts WHERE received_at < @before;

-- ContactTenantsByPhone lists the tenants that have a contact with this
-- number: an inbound STOP names a number, not a tenant. System scope.
-- name: ContactTenantsByPhone :many
SELECT DISTINCT tenant_id FROM contacts WHERE phone = @phone;
