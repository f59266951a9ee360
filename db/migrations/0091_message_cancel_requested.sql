-- A cancellation asked for while an earlier attempt's outcome is unknown
-- (the message was claimed, then went back to wait for a retry): the row
-- cannot simply become 'cancelled', because the provider may have the
-- text. The request is recorded here; the message's next run asks the
-- provider (Twilio's message list) and records 'sent' if it went out,
-- else 'cancelled', and never sends it.

-- +goose Up
ALTER TABLE messages ADD COLUMN cancel_requested_at timestamptz;

-- +goose Down
ALTER TABLE messages DROP COLUMN cancel_requested_at;
