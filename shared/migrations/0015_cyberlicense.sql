-- What CyberLicense (seed 003) adds to the core: two more license states, license types with
-- metered credits, products' descriptions and key prefixes, Discord identities, the purchases a
-- vendor records, audit origins, and per-license usage statistics written behind.

-- A license may also be revoked (permanent: the key stays known and is refused for good) or
-- disabled (switched off by an admin, reversible). Banned is CyberLicense's "suspended".
-- (New enum values cannot be used in the transaction that adds them: nothing below does.)
ALTER TYPE license_status ADD VALUE IF NOT EXISTS 'revoked';
ALTER TYPE license_status ADD VALUE IF NOT EXISTS 'disabled';

-- A license's commercial type. `trial` must expire; `consumption` is metered: each successful
-- CyberLicense validation spends one of its `max_uses` (the counter Keygen's `uses` and KeyAuth's
-- redemptions share); `fixed` and `enterprise` are labels over the same rules.
ALTER TABLE licenses ADD COLUMN license_type text NOT NULL DEFAULT 'fixed'
    CHECK (license_type IN ('fixed', 'trial', 'consumption', 'enterprise'));

-- A credit-spending validation's nonce (or Idempotency-Key): repeated within the window, it
-- answers again without spending. No foreign key: its check would lock, and so rewrite, the
-- license row on every spend; rows of deleted licenses go with them by the trigger below.
CREATE TABLE license_spends (
    license_id uuid NOT NULL,
    nonce      text NOT NULL CHECK (length(nonce) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (license_id, nonce)
);
CREATE INDEX license_spends_created ON license_spends (created_at);

-- Products as CyberLicense shows them: a description and the prefix of rotated keys.
ALTER TABLE apps
    ADD COLUMN description text CHECK (length(description) <= 2000),
    ADD COLUMN license_prefix text NOT NULL DEFAULT 'LIC'
        CHECK (license_prefix ~ '^[A-Za-z0-9]{1,16}$');

-- Discord identities for the OAuth2 login of admins (an account) and customers (account users).
ALTER TABLE accounts ADD COLUMN discord_id text UNIQUE CHECK (discord_id ~ '^[0-9]{1,25}$');
ALTER TABLE app_users ADD COLUMN discord_id text CHECK (discord_id ~ '^[0-9]{1,25}$');
CREATE UNIQUE INDEX app_users_account_discord ON app_users (account_id, discord_id)
    WHERE app_id IS NULL AND discord_id IS NOT NULL;

-- Purchases the vendor records (a store's order, a marketplace sale), so they can be exported.
CREATE TABLE transactions (
    id           uuid PRIMARY KEY,
    account_id   uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    customer_id  uuid REFERENCES app_users (id) ON DELETE SET NULL,
    license_id   uuid REFERENCES licenses (id) ON DELETE SET NULL,
    app_id       uuid REFERENCES apps (id) ON DELETE SET NULL,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN
                     ('pending', 'processing', 'completed', 'failed', 'refunded', 'cancelled')),
    -- In the currency's minor unit (cents).
    amount_minor bigint NOT NULL CHECK (amount_minor >= 0),
    currency     text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    provider     text CHECK (length(provider) <= 64),
    reference    text CHECK (length(reference) <= 200),
    note         text CHECK (length(note) <= 2000),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX transactions_account_created ON transactions (account_id, created_at DESC, id DESC);

-- Where an audited change came from, and whether it succeeded (a refused login is recorded too).
ALTER TABLE audit_log
    ADD COLUMN ip inet,
    ADD COLUMN user_agent text CHECK (length(user_agent) <= 512),
    ADD COLUMN success boolean NOT NULL DEFAULT true;

-- Per-license usage statistics, written behind by the validators (never a row write per
-- validation). No foreign keys, for the reason given for `license_spends`.
-- Validations per license and UTC day by outcome: success (valid), blocked (an IP/HWID limit),
-- invalid (any other refusal of an existing license).
CREATE TABLE license_daily_usage (
    license_id   uuid NOT NULL,
    day          date NOT NULL,
    success      bigint NOT NULL DEFAULT 0,
    blocked      bigint NOT NULL DEFAULT 0,
    invalid      bigint NOT NULL DEFAULT 0,
    last_used_at timestamptz NOT NULL,
    PRIMARY KEY (license_id, day)
);
-- Distinct IPs and HWIDs that asked for a license, with when they last did.
CREATE TABLE license_seen (
    license_id   uuid NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('ip', 'hwid')),
    value        text NOT NULL CHECK (length(value) <= 256),
    last_seen_at timestamptz NOT NULL,
    PRIMARY KEY (license_id, kind, value)
);
-- The newest validation requests of a license (a flush writes at most the newest 100 per license).
CREATE TABLE license_requests (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    license_id uuid NOT NULL,
    ip         text CHECK (length(ip) <= 64),
    hwid       text CHECK (length(hwid) <= 256),
    status     text NOT NULL CHECK (status IN ('success', 'blocked', 'invalid')),
    created_at timestamptz NOT NULL
);
CREATE INDEX license_requests_license ON license_requests (license_id, created_at DESC, id DESC);
CREATE INDEX license_requests_created ON license_requests (created_at);

CREATE FUNCTION license_stats_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM license_spends WHERE license_id IN (SELECT id FROM gone);
    DELETE FROM license_daily_usage WHERE license_id IN (SELECT id FROM gone);
    DELETE FROM license_seen WHERE license_id IN (SELECT id FROM gone);
    DELETE FROM license_requests WHERE license_id IN (SELECT id FROM gone);
    RETURN NULL;
END
$$;

CREATE TRIGGER license_stats_gone AFTER DELETE ON licenses
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION license_stats_gone();

-- (license_stats prune) The janitor drops statistics past the retention by age: these let it
-- find them without reading the tables whole every run. `day` never changes, so the daily
-- rows' updates stay HOT; a sighting's update rewrites its index entry, once per flush.
CREATE INDEX license_daily_usage_day ON license_daily_usage (day);
CREATE INDEX license_seen_last ON license_seen (last_seen_at);
