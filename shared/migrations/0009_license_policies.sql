-- Every license follows a policy (Keygen requires one; the other systems' licenses get their
-- app's default policy). A license's machine, IP and use limits are overrides: NULL follows the
-- policy, so editing a policy changes every license that did not override it.

-- One default policy per app, the template of licenses made without naming one (KeyAuth's,
-- Panda's, Junkie's keys): node-locked like their one-HWID keys, redeemable once, and the
-- license key is its own credential.
ALTER TABLE policies ADD COLUMN is_default boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX policies_one_default ON policies (app_id) WHERE is_default;
ALTER TABLE policies ADD CONSTRAINT policies_id_app UNIQUE (id, app_id);

INSERT INTO policies (id, account_id, app_id, name, authentication_strategy, max_uses, is_default)
SELECT gen_random_uuid(), a.account_id, a.id,
       CASE WHEN EXISTS (SELECT 1 FROM policies p WHERE p.app_id = a.id AND p.name = 'Default')
            THEN 'Default ' || left(a.id::text, 8) ELSE 'Default' END,
       'license', 1, true
  FROM apps a;

ALTER TABLE licenses
    ADD COLUMN policy_id uuid,
    ALTER COLUMN hwid_limit DROP NOT NULL, ALTER COLUMN hwid_limit DROP DEFAULT,
    ALTER COLUMN ip_limit DROP NOT NULL, ALTER COLUMN ip_limit DROP DEFAULT,
    ALTER COLUMN max_uses DROP NOT NULL, ALTER COLUMN max_uses DROP DEFAULT;

-- Existing licenses join their app's default policy; a limit equal to that policy's (every
-- default of before) becomes "the policy's", the others stay overrides. One pass over the table.
UPDATE licenses l
   SET policy_id = p.id,
       hwid_limit = nullif(l.hwid_limit, 1),
       ip_limit = nullif(l.ip_limit, 0),
       max_uses = nullif(l.max_uses, 1)
  FROM policies p
 WHERE p.app_id = l.app_id AND p.is_default;

-- Same app as the license (so the same tenant). A policy with licenses cannot be deleted
-- (checked at the end of the statement, so deleting an app still takes both).
ALTER TABLE licenses
    ALTER COLUMN policy_id SET NOT NULL,
    ADD CONSTRAINT licenses_policy FOREIGN KEY (policy_id, app_id) REFERENCES policies (id, app_id);
CREATE INDEX licenses_policy ON licenses (policy_id);
