-- A deletion's reason is one of a few words, never free text: the deletion
-- row is the certificate that outlives the data, so it must not carry the
-- personal data it certifies as erased ("Zelda Quixote asked by phone").
--   request          the account or the person asked (the default)
--   minor            a child's data (contact scope)
--   privacy_request  started by an approved privacy request (its ID is in
--                    privacy_request_id)
--   other            anything else
-- Reasons written before this migration are free text we cannot vet: they
-- become 'other' (or 'minor' / 'privacy_request' where the row says so).

-- +goose Up
UPDATE deletions SET reason = CASE
    WHEN minor THEN 'minor'
    WHEN privacy_request_id IS NOT NULL THEN 'privacy_request'
    WHEN reason = '' OR reason = 'request' THEN 'request'
    ELSE 'other' END
WHERE reason NOT IN ('request', 'minor', 'privacy_request', 'other')
   OR (minor AND reason <> 'minor');
ALTER TABLE deletions
    ALTER COLUMN reason SET DEFAULT 'request',
    ADD CONSTRAINT deletions_reason_check_enum CHECK (reason IN ('request', 'minor', 'privacy_request', 'other'));

-- +goose Down
ALTER TABLE deletions
    DROP CONSTRAINT deletions_reason_check_enum,
    ALTER COLUMN reason SET DEFAULT '';
