-- Retention periods are calendar intervals, not day counts: "7 years" of
-- billing records is seven calendar years, which holds one or two leap
-- days, so a fixed 2555 days let a record go up to two days early (and
-- 1095 days cut "3 years" of message logs a day short across a 29
-- February). keep and min_keep replace days and min_days; the sweep
-- computes each cutoff in UTC as now - keep.
--
-- An override is "stricter" when, measured back from the moment it is
-- written, it keeps no longer than the default and no shorter than the
-- floor (min_keep). Because "3 years" and "1095 days" are not the same
-- length on every date, the sweep checks both again on every run: a row
-- goes only when it is past the default or the override, and never before
-- the floor.

-- +goose Up
DROP TRIGGER retention_override_stricter ON retention_policies;
DROP FUNCTION retention_override_stricter();

ALTER TABLE retention_policies
    ADD COLUMN keep     interval,
    ADD COLUMN min_keep interval NOT NULL DEFAULT '0';
UPDATE retention_policies SET keep = make_interval(days => days), min_keep = make_interval(days => min_days);
UPDATE retention_policies SET keep = '3 years'
    WHERE tenant_id IS NULL AND what IN ('message_logs', 'opt_out_records') AND days = 1095;
UPDATE retention_policies SET keep = '7 years', min_keep = '7 years'
    WHERE tenant_id IS NULL AND what = 'billing_records' AND days = 2555;
UPDATE retention_policies SET keep = '1 year'
    WHERE tenant_id IS NULL AND what = 'security_logs' AND days = 365;
UPDATE retention_policies o SET min_keep = d.min_keep
    FROM retention_policies d WHERE o.tenant_id IS NOT NULL AND d.tenant_id IS NULL AND d.what = o.what;
ALTER TABLE retention_policies
    ALTER COLUMN keep SET NOT NULL,
    ADD CHECK (keep >= interval '0'),
    ADD CHECK (min_keep >= interval '0'),
    DROP COLUMN days,
    DROP COLUMN min_days;

-- +goose StatementBegin
CREATE FUNCTION retention_override_stricter() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    d retention_policies%ROWTYPE;
    t timestamp := now() AT TIME ZONE 'UTC';
BEGIN
    IF NEW.tenant_id IS NULL THEN
        RETURN NEW;
    END IF;
    SELECT * INTO d FROM retention_policies WHERE tenant_id IS NULL AND what = NEW.what;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no default retention policy for %', NEW.what USING ERRCODE = 'check_violation';
    END IF;
    IF t - NEW.keep < t - d.keep OR t - NEW.keep > t - d.min_keep THEN
        RAISE EXCEPTION 'retention override for % must be between % and %', NEW.what, d.min_keep, d.keep
            USING ERRCODE = 'check_violation';
    END IF;
    IF d.action = 'delete' AND NEW.action <> 'delete' THEN
        RAISE EXCEPTION 'retention override for % must delete, as the default does', NEW.what
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.min_keep := d.min_keep;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER retention_override_stricter BEFORE INSERT OR UPDATE ON retention_policies
    FOR EACH ROW EXECUTE FUNCTION retention_override_stricter();

-- +goose Down
DROP TRIGGER retention_override_stricter ON retention_policies;
DROP FUNCTION retention_override_stricter();
ALTER TABLE retention_policies
    ADD COLUMN days     integer,
    ADD COLUMN min_days integer NOT NULL DEFAULT 0;
-- Back to day counts as they were seeded: a year is 365 days, a month 30
-- ('7 years' -> 2555, not the 2556 an epoch division would give).
UPDATE retention_policies SET
    days = (extract(year FROM keep) * 365 + extract(month FROM keep) * 30 + extract(day FROM keep))::integer,
    min_days = (extract(year FROM min_keep) * 365 + extract(month FROM min_keep) * 30 + extract(day FROM min_keep))::integer;
ALTER TABLE retention_policies
    ALTER COLUMN days SET NOT NULL,
    ADD CHECK (days >= 0),
    ADD CHECK (min_days >= 0),
    ADD CHECK (days >= min_days),
    DROP COLUMN keep,
    DROP COLUMN min_keep;
-- +goose StatementBegin
CREATE FUNCTION retention_override_stricter() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    d retention_policies%ROWTYPE;
BEGIN
    IF NEW.tenant_id IS NULL THEN
        RETURN NEW;
    END IF;
    SELECT * INTO d FROM retention_policies WHERE tenant_id IS NULL AND what = NEW.what;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no default retention policy for %', NEW.what USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.days > d.days OR NEW.days < d.min_days THEN
        RAISE EXCEPTION 'retention override for % must be between % and % days', NEW.what, d.min_days, d.days
            USING ERRCODE = 'check_violation';
    END IF;
    IF d.action = 'delete' AND NEW.action <> 'delete' THEN
        RAISE EXCEPTION 'retention override for % must delete, as the default does', NEW.what
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.min_days := d.min_days;
    RETURN NEW;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER retention_override_stricter BEFORE INSERT OR UPDATE ON retention_policies
    FOR EACH ROW EXECUTE FUNCTION retention_override_stricter();
