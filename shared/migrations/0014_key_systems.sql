-- What the Roblox key systems (Panda Auth, Junkie) need of the core.
--
-- Their clients and bots address things by integers (Junkie's ids, its numeric account
-- `identifier`) or by a global service name (Panda's `service`), so accounts, apps and licenses
-- gain a stable integer id, and apps a globally unique public service id.
ALTER TABLE accounts ADD COLUMN num_id bigint GENERATED ALWAYS AS IDENTITY (START WITH 1000001) UNIQUE;

ALTER TABLE apps
    ADD COLUMN num_id bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    ADD COLUMN service_id text CHECK (service_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    -- Keyless mode: validations succeed without a key (Junkie's KEYLESS, Panda's key=keyless).
    ADD COLUMN keyless_mode boolean NOT NULL DEFAULT false,
    ADD COLUMN keyless_ttl_secs integer NOT NULL DEFAULT 86400 CHECK (keyless_ttl_secs BETWEEN 60 AND 31536000),
    -- What Panda's legacy loader sends as its HWID (`serviceapi?command=getconfig`).
    ADD COLUMN auth_mode text NOT NULL DEFAULT 'hwidonly'
        CHECK (auth_mode IN ('playerid', 'hwidplayer', 'hwidonly', 'fingerprint', 'iponly')),
    -- Where end users get a key (Panda's /getkey redirect).
    ADD COLUMN get_key_url text CHECK (length(get_key_url) <= 2000),
    -- HWID resets: the minimum time between two resets of one key (0: none), and whether end
    -- users may reset their own key's HWIDs.
    ADD COLUMN hwid_reset_cooldown_secs integer NOT NULL DEFAULT 0 CHECK (hwid_reset_cooldown_secs >= 0),
    ADD COLUMN self_hwid_reset boolean NOT NULL DEFAULT false;
-- Unique regardless of case: Panda's legacy loader lower-cases the service id in some calls.
CREATE UNIQUE INDEX apps_service_id ON apps (lower(service_id));

-- Execution counts (Panda's push-execution-count) are written behind by the validators, one
-- row per app, so the app rows the validators cache are never rewritten by them.
CREATE TABLE app_usage (
    app_id          uuid PRIMARY KEY REFERENCES apps (id) ON DELETE CASCADE,
    execution_count bigint NOT NULL DEFAULT 0
);

-- Checkpoint providers that hand out keys (Junkie's providers): a link and a default validity.
CREATE TABLE key_providers (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id        uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name              text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    is_active         boolean NOT NULL DEFAULT true,
    -- Default validity of the keys it creates; NULL: forever.
    key_valid_minutes integer CHECK (key_valid_minutes > 0),
    link_url          text CHECK (length(link_url) <= 2000),
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, name),
    UNIQUE (account_id, id)
);

ALTER TABLE licenses
    ADD COLUMN num_id bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    ADD COLUMN premium boolean NOT NULL DEFAULT false,
    -- false: no HWID is bound or checked for this key (Junkie's no_hwid, Panda's noHwidValidation).
    ADD COLUMN hwid_check boolean NOT NULL DEFAULT true,
    -- NULL: the policy's. A one-time key is consumed by its first successful validation.
    ADD COLUMN one_time_use boolean,
    -- A days key: the first use sets expires_at = now + duration_secs even though a provisional
    -- expiry (Panda's `expire` date) is set until then.
    ADD COLUMN restart_expiry_on_first_use boolean NOT NULL DEFAULT false,
    ADD COLUMN discord_id text CHECK (discord_id ~ '^[0-9]{17,19}$'),
    ADD COLUMN provider_id bigint,
    ADD COLUMN hwid_reset_at timestamptz,
    ADD CONSTRAINT licenses_provider FOREIGN KEY (account_id, provider_id)
        REFERENCES key_providers (account_id, id) ON DELETE SET NULL (provider_id);
CREATE INDEX licenses_discord ON licenses (account_id, discord_id) WHERE discord_id IS NOT NULL;

-- HWIDs allowed without a key: made by keyless validations (refreshed while in use) or by an admin.
CREATE TABLE keyless_entries (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id uuid NOT NULL,
    app_id     uuid NOT NULL,
    hwid       text NOT NULL CHECK (length(hwid) BETWEEN 1 AND 256),
    premium    boolean NOT NULL DEFAULT false,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app_id, hwid),
    FOREIGN KEY (app_id, account_id) REFERENCES apps (id, account_id) ON DELETE CASCADE
);

-- Panda service keys: API keys of kind 'service', each for one app.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_kind_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_kind_check CHECK (kind IN ('api', 'seller', 'token', 'service'));
ALTER TABLE api_keys ADD CONSTRAINT api_keys_service_app CHECK (kind <> 'service' OR app_id IS NOT NULL);
