-- Per-tenant privacy promises differ by platform: one keeps a cancelled
-- account 90 days in case its owner changes their mind (seed 001), another
-- deletes an account's personal information within 30 days (seed 000).
-- deletion_grace_days is how long this tenant's cancelled account is kept
-- before its purge starts (NULL: the platform's default, 90 days). And a
-- privacy request is answered within 30 days (seed 002) or sooner, never
-- later: response_days above 30 become 30.

-- +goose Up
ALTER TABLE privacy_settings ADD COLUMN deletion_grace_days integer
    CHECK (deletion_grace_days BETWEEN 1 AND 90);
UPDATE privacy_settings SET response_days = 30 WHERE response_days > 30;
ALTER TABLE privacy_settings DROP CONSTRAINT privacy_settings_response_days_check,
    ADD CONSTRAINT privacy_settings_response_days_check CHECK (response_days BETWEEN 1 AND 30);

-- +goose Down
ALTER TABLE privacy_settings DROP CONSTRAINT privacy_settings_response_days_check,
    ADD CONSTRAINT privacy_settings_response_days_check CHECK (response_days BETWEEN 1 AND 365);
ALTER TABLE privacy_settings DROP COLUMN deletion_grace_days;
