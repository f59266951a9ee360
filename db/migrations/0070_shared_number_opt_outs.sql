-- Opt-outs texted to the shared sending number.
--
-- Twilio blocks a number pair (our number, theirs) for every tenant that
-- sends from it, and the sender of a STOP may be no tenant's contact yet
-- (an erased contact, a client not imported yet). Such records are kept
-- for the number itself, under the all-zero tenant ID
-- (db.SharedNumberTenant), whether or not a tenant knows the sender:
-- system scope writes them, and every tenant reads them (pseudonyms only)
-- so that a number added later is never texted.

-- +goose Up
CREATE POLICY shared_number_read ON suppressions FOR SELECT
    USING (tenant_id = '00000000-0000-0000-0000-000000000000');

-- +goose Down
DROP POLICY shared_number_read ON suppressions;
