-- When a message was first claimed. Every attempt claims the message again
-- (claimed_at), but an earlier attempt's text can only have reached the
-- provider after the first claim: the search for it (jobs.MessageSend,
-- Twilio's message list) starts there, not at the row's creation, which
-- for a reminder may be weeks before. NULL for rows never claimed, and for
-- rows claimed before this column existed (their search starts at their
-- creation, as before).

-- +goose Up
ALTER TABLE messages ADD COLUMN first_claimed_at timestamptz;

-- +goose Down
ALTER TABLE messages DROP COLUMN first_claimed_at;
