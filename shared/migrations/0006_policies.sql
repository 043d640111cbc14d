-- Policies: the license template every seed system has in some form (Keygen's policy, KeyAuth's
-- level and app settings, Panda's premium days-key, Junkie's validity/HWID/one-time settings,
-- CyberLicense's license type). One table in the core; each facade maps its names onto it.
-- The enumerations are the union of what those systems distinguish, lower-case.
CREATE TABLE policies (
    id                        uuid PRIMARY KEY,
    account_id                uuid NOT NULL,
    app_id                    uuid NOT NULL,
    name                      text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- How long a license of this policy lasts; NULL: it does not expire.
    duration_secs             bigint CHECK (duration_secs >= 60),
    expiration_basis          text NOT NULL DEFAULT 'from_creation' CHECK (expiration_basis IN
        ('from_creation', 'from_first_validation', 'from_first_activation', 'from_first_download', 'from_first_use')),
    expiration_strategy       text NOT NULL DEFAULT 'restrict_access' CHECK (expiration_strategy IN
        ('restrict_access', 'revoke_access', 'maintain_access', 'allow_access')),
    renewal_basis             text NOT NULL DEFAULT 'from_expiry' CHECK (renewal_basis IN
        ('from_expiry', 'from_now', 'from_now_if_expired')),
    authentication_strategy   text NOT NULL DEFAULT 'token' CHECK (authentication_strategy IN
        ('token', 'license', 'mixed', 'none')),
    -- Node-locked (false) allows exactly one machine; floating allows max_machines (NULL: any).
    floating                  boolean NOT NULL DEFAULT false,
    strict                    boolean NOT NULL DEFAULT false,
    max_machines              integer CHECK (max_machines >= 1),
    max_cores                 integer CHECK (max_cores >= 1),
    max_memory                bigint CHECK (max_memory >= 1),
    max_disk                  bigint CHECK (max_disk >= 1),
    max_processes             integer CHECK (max_processes >= 1),
    max_users                 integer CHECK (max_users >= 1),
    max_uses                  integer CHECK (max_uses >= 0),
    -- Distinct client addresses a license may be used from (0: any).
    ip_limit                  integer NOT NULL DEFAULT 0 CHECK (ip_limit >= 0),
    overage_strategy          text NOT NULL DEFAULT 'no_overage' CHECK (overage_strategy IN
        ('always_allow_overage', 'allow_1_25x_overage', 'allow_1_5x_overage', 'allow_2x_overage', 'no_overage')),
    machine_uniqueness_strategy text NOT NULL DEFAULT 'unique_per_license' CHECK (machine_uniqueness_strategy IN
        ('unique_per_account', 'unique_per_product', 'unique_per_policy', 'unique_per_license')),
    machine_matching_strategy text NOT NULL DEFAULT 'match_any' CHECK (machine_matching_strategy IN
        ('match_any', 'match_two', 'match_most', 'match_all')),
    require_heartbeat         boolean NOT NULL DEFAULT false,
    heartbeat_duration_secs   integer NOT NULL DEFAULT 600 CHECK (heartbeat_duration_secs >= 60),
    heartbeat_cull_strategy   text NOT NULL DEFAULT 'deactivate_dead' CHECK (heartbeat_cull_strategy IN
        ('deactivate_dead', 'keep_dead')),
    heartbeat_resurrection_strategy text NOT NULL DEFAULT 'no_revive' CHECK (heartbeat_resurrection_strategy IN
        ('no_revive', 'always_revive', '1_minute_revive', '2_minute_revive', '5_minute_revive',
         '10_minute_revive', '15_minute_revive')),
    heartbeat_basis           text NOT NULL DEFAULT 'from_first_ping' CHECK (heartbeat_basis IN
        ('from_creation', 'from_first_ping')),
    require_check_in          boolean NOT NULL DEFAULT false,
    check_in_interval         text CHECK (check_in_interval IN ('day', 'week', 'month', 'year')),
    check_in_interval_count   integer CHECK (check_in_interval_count BETWEEN 1 AND 365),
    -- Scopes a validation must carry (product, policy, machine, fingerprint, components, user,
    -- checksum, version, environment).
    required_scopes           text[] NOT NULL DEFAULT '{}',
    -- A key that may be redeemed once only (Junkie's one_time_use).
    one_time_use              boolean NOT NULL DEFAULT false,
    -- Only admins may create licenses of a protected policy (user tokens may not).
    protected                 boolean NOT NULL DEFAULT false,
    metadata                  jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app_id, name),
    UNIQUE (id, account_id),
    FOREIGN KEY (app_id, account_id) REFERENCES apps (id, account_id) ON DELETE CASCADE,
    CHECK (floating OR max_machines IS NULL OR max_machines = 1),
    CHECK (NOT require_check_in OR (check_in_interval IS NOT NULL AND check_in_interval_count IS NOT NULL))
);
CREATE INDEX policies_account_created ON policies (account_id, created_at DESC, id DESC);
CREATE INDEX policies_app ON policies (app_id);
