-- The HWID bindings become machines (Keygen's machine, Junkie's hwids[] with bound_by,
-- CyberLicense's usedHwids): the fingerprint a client sends, plus what an admin or an SDK says of
-- the device. Existing bindings keep their fingerprint, binding time and bound_by.
ALTER TABLE license_hwids RENAME TO machines;
ALTER TABLE machines RENAME COLUMN hwid TO fingerprint;
ALTER TABLE machines RENAME CONSTRAINT license_hwids_pkey TO machines_pkey;
ALTER INDEX license_hwids_hwid RENAME TO machines_fingerprint;
ALTER TABLE machines
    ADD COLUMN id                uuid NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN name              text CHECK (length(name) <= 255),
    ADD COLUMN hostname          text CHECK (length(hostname) <= 255),
    ADD COLUMN platform          text CHECK (length(platform) <= 255),
    ADD COLUMN ip                inet,
    ADD COLUMN cores             integer CHECK (cores >= 1),
    ADD COLUMN memory            bigint CHECK (memory >= 1),
    ADD COLUMN disk              bigint CHECK (disk >= 1),
    ADD COLUMN metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN last_heartbeat_at timestamptz,
    ADD COLUMN updated_at        timestamptz NOT NULL DEFAULT now();
ALTER TABLE machines ADD CONSTRAINT machines_id UNIQUE (id);
