-- What Keygen's client calls need of the core: licenses found by key alone (the validate-key
-- and `Authorization: License` calls name no app), check-in and check-out times.
CREATE INDEX licenses_key ON licenses (key);
ALTER TABLE licenses
    ADD COLUMN last_check_in_at timestamptz,
    ADD COLUMN last_check_out_at timestamptz;
ALTER TABLE machines ADD COLUMN last_check_out_at timestamptz;
