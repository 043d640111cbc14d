-- Keyward foundation schema. Every tenant-owned row carries account_id so that every query can be
-- scoped by it directly; composite foreign keys keep a child's account_id equal to its parent's.

CREATE TABLE accounts (
    id            uuid PRIMARY KEY,
    -- 10-character public id (KeyAuth clients send it as `ownerid`).
    public_id     text NOT NULL UNIQUE CHECK (length(public_id) = 10),
    username      text NOT NULL UNIQUE CHECK (length(username) BETWEEN 3 AND 64),
    email         text UNIQUE,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    account_id   uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name         text NOT NULL,
    -- First characters of the key, kept so that admins can recognise it; the key itself is only hashed.
    prefix       text NOT NULL,
    key_hash     bytea NOT NULL UNIQUE,
    scopes       text[] NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE apps (
    id         uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- Kept in the clear: KeyAuth 1.2 clients sign with it, so the server needs the secret itself.
    secret     text NOT NULL,
    version    text NOT NULL DEFAULT '1.0',
    paused     boolean NOT NULL DEFAULT false,
    hwid_lock  boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, name),
    UNIQUE (id, account_id)
);

CREATE TYPE license_status AS ENUM ('active', 'banned');

CREATE TABLE licenses (
    id                uuid PRIMARY KEY,
    account_id        uuid NOT NULL,
    app_id            uuid NOT NULL,
    key               text NOT NULL CHECK (length(key) BETWEEN 1 AND 128),
    status            license_status NOT NULL DEFAULT 'active',
    level             integer NOT NULL DEFAULT 1,
    note              text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    -- First successful validation.
    used_at           timestamptz,
    expires_at        timestamptz,
    -- Expiry on first use: expires_at is set to used_at + duration at the first validation.
    duration_secs     bigint CHECK (duration_secs > 0),
    hwid_limit        integer NOT NULL DEFAULT 1 CHECK (hwid_limit >= 0),
    ip_limit          integer NOT NULL DEFAULT 0 CHECK (ip_limit >= 0),
    ban_reason        text,
    -- Written behind by validators in batches; never read on the hot path.
    last_validated_at timestamptz,
    validation_count  bigint NOT NULL DEFAULT 0,
    UNIQUE (app_id, key),
    FOREIGN KEY (app_id, account_id) REFERENCES apps (id, account_id) ON DELETE CASCADE
);
CREATE INDEX licenses_account_created ON licenses (account_id, created_at DESC, id DESC);
CREATE INDEX licenses_app_created ON licenses (app_id, created_at DESC, id DESC);

CREATE TABLE license_hwids (
    license_id uuid NOT NULL REFERENCES licenses (id) ON DELETE CASCADE,
    hwid       text NOT NULL,
    bound_at   timestamptz NOT NULL DEFAULT now(),
    -- 'validate' (first use on a validator) or 'admin'.
    bound_by   text NOT NULL,
    PRIMARY KEY (license_id, hwid)
);
CREATE INDEX license_hwids_hwid ON license_hwids (hwid);

CREATE TABLE license_ips (
    license_id uuid NOT NULL REFERENCES licenses (id) ON DELETE CASCADE,
    ip         inet NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (license_id, ip)
);

CREATE TABLE blacklist (
    id         uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    app_id     uuid NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('ip', 'hwid')),
    -- Normalised: an IP address or CIDR network for 'ip', the HWID for 'hwid'.
    value      text NOT NULL,
    note       text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app_id, kind, value),
    FOREIGN KEY (app_id, account_id) REFERENCES apps (id, account_id) ON DELETE CASCADE
);

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    actor       text NOT NULL,
    action      text NOT NULL,
    target_type text NOT NULL,
    target_id   text,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_account ON audit_log (account_id, id DESC);

-- Bumped by every transaction that emits invalidations; validators compare it periodically as a
-- safety net against notifications lost in transit.
CREATE TABLE cache_epoch (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generation bigint NOT NULL
);
INSERT INTO cache_epoch (generation) VALUES (0);

-- Deployment-wide secrets generated once (e.g. the JWT signing key), so that every control-plane
-- instance agrees without configuration.
CREATE TABLE server_secrets (
    name       text PRIMARY KEY,
    value      bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
