-- Users of a whole account (Keygen's users, CyberLicense's customers), beside the app-scoped end
-- users of KeyAuth: the same table with no app. Every KeyAuth query names its app, so it never
-- sees them; these are found by id or by e-mail, unique in the account.
ALTER TABLE app_users ALTER COLUMN app_id DROP NOT NULL;
ALTER TABLE app_users
    ADD FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE,
    ADD COLUMN first_name text CHECK (length(first_name) <= 100),
    ADD COLUMN last_name text CHECK (length(last_name) <= 100),
    ADD COLUMN role text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'read-only')),
    ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN updated_at timestamptz,
    -- A password reset in progress: the token's digest (the token itself is only handed out).
    ADD COLUMN password_reset_digest bytea,
    ADD COLUMN password_reset_expires_at timestamptz,
    ADD CONSTRAINT app_users_account_user_email CHECK (app_id IS NOT NULL OR email IS NOT NULL);
CREATE UNIQUE INDEX app_users_account_email ON app_users (account_id, lower(email))
    WHERE app_id IS NULL;
CREATE INDEX app_users_account_created ON app_users (account_id, created_at DESC, id DESC)
    WHERE app_id IS NULL;

-- A license's owner: one of the account's users (Keygen's `owner`); a banned owner bans it.
ALTER TABLE licenses ADD COLUMN owner_id uuid REFERENCES app_users (id) ON DELETE SET NULL;
CREATE INDEX licenses_owner ON licenses (owner_id) WHERE owner_id IS NOT NULL;

-- User tokens: a token whose bearer is one of those users.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_token_bearer;
ALTER TABLE api_keys DROP CONSTRAINT api_keys_bearer_kind_check;
ALTER TABLE api_keys
    ADD CONSTRAINT api_keys_bearer_kind_check CHECK (bearer_kind IN ('admin', 'product', 'user')),
    ADD COLUMN user_id uuid REFERENCES app_users (id) ON DELETE CASCADE,
    ADD CONSTRAINT api_keys_token_bearer CHECK (
        (kind = 'token') = (bearer_kind IS NOT NULL)
        AND (bearer_kind <> 'product' OR app_id IS NOT NULL)
        AND (bearer_kind <> 'user' OR user_id IS NOT NULL));

-- Products carry what Keygen's do: a code, a URL, platforms and the vendor's metadata.
ALTER TABLE apps
    ADD COLUMN code text CHECK (length(code) <= 64),
    ADD COLUMN url text CHECK (length(url) <= 2000),
    ADD COLUMN platforms text[] NOT NULL DEFAULT '{}',
    ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}'::jsonb;
