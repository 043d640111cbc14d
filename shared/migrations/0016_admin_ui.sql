-- The admin web UI (issue 19): what its pages read that the API lacked. One commented block per
-- part.

-- ---------------------------------------------------------------------------------------------
-- Validation buckets (the Overview chart): validations per app, UTC minute and outcome (the
-- verdict code in snake_case: valid, not_found, banned, expired, hwid_mismatch, ...; Keygen's
-- own codes for its validations), written behind by the validators in one upsert per batch.
-- No foreign keys, like license_daily_usage: a flush must never lock app or license rows. An
-- app's rows go with it (the trigger below); the control-plane's janitor prunes rows past
-- KEYWARD_USAGE_RETENTION_DAYS. A bucket is updated for a minute and then never again, so its
-- updates stay HOT with room on the page.
CREATE TABLE validation_buckets (
    account_id uuid NOT NULL,
    app_id     uuid NOT NULL,
    minute     timestamptz NOT NULL,
    outcome    text NOT NULL CHECK (length(outcome) BETWEEN 1 AND 64),
    n          bigint NOT NULL CHECK (n >= 0),
    PRIMARY KEY (app_id, minute, outcome)
) WITH (fillfactor = 80);
-- The Overview reads an account's recent minutes.
CREATE INDEX validation_buckets_account_minute ON validation_buckets (account_id, minute);
-- The janitor's prune by age: rows arrive in minute order, so a BRIN index finds old ones for
-- a few pages of index.
CREATE INDEX validation_buckets_minute ON validation_buckets USING brin (minute);

CREATE FUNCTION validation_buckets_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM validation_buckets WHERE app_id IN (SELECT id FROM gone);
    RETURN NULL;
END
$$;

CREATE TRIGGER validation_buckets_gone AFTER DELETE ON apps
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION validation_buckets_gone();
-- (end of validation buckets)
