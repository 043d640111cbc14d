-- The data a KeyAuth-compatible deployment manages: end users with their subscriptions and
-- variables, subscription tiers, global variables, webhooks, client logs and sessions, plus the
-- license and app fields KeyAuth clients and the KeyAux dashboard expect. Every row carries its
-- tenant (account_id), kept equal to its app's by composite foreign keys.

ALTER TABLE accounts ADD COLUMN plan text NOT NULL DEFAULT 'free';
ALTER TABLE accounts ADD COLUMN role text NOT NULL DEFAULT 'user';

-- Seller keys (`ka_…`) are API keys of kind 'seller': account-wide, hashed, shown once.
ALTER TABLE api_keys ADD COLUMN kind text NOT NULL DEFAULT 'api' CHECK (kind IN ('api', 'seller'));

ALTER TABLE apps ADD COLUMN anti_vpn boolean NOT NULL DEFAULT false;
ALTER TABLE apps ADD COLUMN hash_check boolean NOT NULL DEFAULT false;

-- KeyAuth semantics of a key: how many times it may be redeemed and by whom it was.
ALTER TABLE licenses ADD COLUMN max_uses integer NOT NULL DEFAULT 1 CHECK (max_uses >= 0);
ALTER TABLE licenses ADD COLUMN uses integer NOT NULL DEFAULT 0 CHECK (uses >= 0);
ALTER TABLE licenses ADD COLUMN used_by text;
CREATE INDEX licenses_app_used_by ON licenses (app_id, used_by) WHERE used_by IS NOT NULL;

CREATE TABLE subscriptions (
    id            uuid PRIMARY KEY,
    account_id    uuid NOT NULL,
    app_id        uuid NOT NULL,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    level         integer NOT NULL DEFAULT 1,
    duration_days integer NOT NULL DEFAULT 30 CHECK (duration_days > 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app_id, name),
    FOREIGN KEY (app_id, account_id) REFERENCES apps (id, account_id) ON DELETE CASCADE
);

-- End users of an app (those who log in through the client API).
CREATE TABLE app_users (
    id            uuid PRIMARY KEY,
    account_id    uuid NOT NULL,
    app_id        uuid NOT NULL,
    username      text NOT NULL CHECK (length(username) BETWEEN 1 AND 128),
    email         text,
    -- argon2id PHC string (bcrypt `$2y$` accepted for users imported from KeyAuth).
    password_hash text NOT NULL,
    hwid          text,
    ip            text,
    banned        boolean NOT NULL DEFAULT false,
    ban_reason    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_login_at timestamptz,
    UNIQUE (app_id, username),
    UNIQUE (id, account_id),
    FOREIGN KEY (app_id, account_id) REFERENCES apps (id, account_id) ON DELETE CASCADE
);
CREATE INDEX app_users_app_created ON app_users (app_id, created_at DESC, id DESC);

CREATE TABLE user_subscriptions (
    id         uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    user_id    uuid NOT NULL,
    name       text NOT NULL,
    level      integer NOT NULL DEFAULT 1,
    expires_at timestamptz NOT NULL,
    -- The license key that granted it, if any.
    key        text,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, name),
    FOREIGN KEY (user_id, account_id) REFERENCES app_users (id, account_id) ON DELETE CASCADE
);

CREATE TABLE app_vars (
    id         uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    app_id     uuid NOT NULL,
    key        text NOT NULL CHECK (length(key) BETWEEN 1 AND 128),
    value      text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app_id, key),
    FOREIGN KEY (app_id, account_id) REFERENCES apps (id, account_id) ON DELETE CASCADE
);

CREATE TABLE user_vars (
    id         uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    user_id    uuid NOT NULL,
    key        text NOT NULL CHECK (length(key) BETWEEN 1 AND 128),
    value      text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, key),
    FOREIGN KEY (user_id, account_id) REFERENCES app_users (id, account_id) ON DELETE CASCADE
);

CREATE TABLE webhooks (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL,
    app_id      uuid NOT NULL,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    url         text NOT NULL,
    user_agent  text,
    body        text,
    -- A credential of the vendor's own endpoint; sent server-side only, never to clients.
    auth_header text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (app_id, account_id) REFERENCES apps (id, account_id) ON DELETE CASCADE
);

-- Logs sent by client applications (KeyAuth `log`) and client-API events.
CREATE TABLE client_logs (
    id         bigserial PRIMARY KEY,
    account_id uuid NOT NULL,
    app_id     uuid NOT NULL,
    action     text NOT NULL,
    username   text,
    ip         text,
    data       text,
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (app_id, account_id) REFERENCES apps (id, account_id) ON DELETE CASCADE
);
CREATE INDEX client_logs_app ON client_logs (app_id, id DESC);

-- Client-API sessions, persisted so any validator can serve any session.
CREATE TABLE sessions (
    id         text PRIMARY KEY,
    account_id uuid NOT NULL,
    app_id     uuid NOT NULL,
    user_id    uuid,
    validated  boolean NOT NULL DEFAULT false,
    ip         text,
    hwid       text,
    enckey     text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    FOREIGN KEY (app_id, account_id) REFERENCES apps (id, account_id) ON DELETE CASCADE
);
CREATE INDEX sessions_app_expires ON sessions (app_id, expires_at);
