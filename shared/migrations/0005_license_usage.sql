-- Usage counters apart from the licenses they count. Validators rewrite them for every license
-- validated in the last few seconds; kept in `licenses`, that rewrote the very pages the
-- validators' cache misses read (pruned by those readers, and logged as full-page images after
-- every checkpoint). One narrow row per license, created with it by the trigger below, so a flush
-- is a plain UPDATE: an upsert's foreign-key check would lock, and so rewrite, the license rows.
CREATE TABLE license_usage (
    license_id        uuid PRIMARY KEY REFERENCES licenses(id) ON DELETE CASCADE,
    validation_count  bigint NOT NULL DEFAULT 0,
    last_validated_at timestamptz
) WITH (fillfactor = 80);

INSERT INTO license_usage (license_id, validation_count, last_validated_at)
SELECT id, validation_count, last_validated_at FROM licenses;

ALTER TABLE licenses DROP COLUMN validation_count, DROP COLUMN last_validated_at;

-- Every way a license is created gets its usage row, one statement per batch of licenses.
CREATE FUNCTION license_usage_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO license_usage (license_id) SELECT id FROM added;
    RETURN NULL;
END
$$;

CREATE TRIGGER license_usage_rows AFTER INSERT ON licenses
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION license_usage_rows();
