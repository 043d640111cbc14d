-- What the KeyAuth client API (`/api/1.1|1.2|1.3/` on the validator) needs beyond 0002: the
-- per-app client settings and messages, session credentials, per-item "requires a validated
-- session" flags, and the deployment's Ed25519 response-signing keys for API 1.3.

-- Ed25519 keys that sign 1.3 responses. Deployment-wide, as KeyAuth's is; exactly one primary.
-- An app signs with its pinned key, or with the primary when it has none; rotation pins the apps
-- that used the old primary to it, so shipped clients keep verifying until the vendor moves them.
CREATE TABLE signing_keys (
    id          uuid PRIMARY KEY,
    seed        bytea NOT NULL CHECK (length(seed) = 32),
    public_key  text NOT NULL UNIQUE,
    is_primary  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);
CREATE UNIQUE INDEX signing_keys_one_primary ON signing_keys ((true)) WHERE is_primary;

ALTER TABLE apps ADD COLUMN download_url text;
ALTER TABLE apps ADD COLUMN force_hwid boolean NOT NULL DEFAULT true;
ALTER TABLE apps ADD COLUMN min_hwid_len integer NOT NULL DEFAULT 20 CHECK (min_hwid_len BETWEEN 0 AND 256);
ALTER TABLE apps ADD COLUMN session_secs integer NOT NULL DEFAULT 21600 CHECK (session_secs BETWEEN 1 AND 2592000);
ALTER TABLE apps ADD COLUMN force_encryption boolean NOT NULL DEFAULT false;
ALTER TABLE apps ADD COLUMN min_username_len integer NOT NULL DEFAULT 1 CHECK (min_username_len BETWEEN 1 AND 64);
-- Accepted program hashes (hash check), learned from the first client when empty.
ALTER TABLE apps ADD COLUMN program_hashes text[] NOT NULL DEFAULT '{}';
-- Custom client-API messages by KeyAuth column name (`keynotfound`, `loggedInMsg`, ...).
ALTER TABLE apps ADD COLUMN messages jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(messages) = 'object');
ALTER TABLE apps ADD COLUMN signing_key_id uuid REFERENCES signing_keys (id);

ALTER TABLE sessions ADD COLUMN credential text;
CREATE INDEX sessions_expires ON sessions (expires_at);
CREATE INDEX sessions_user ON sessions (user_id) WHERE user_id IS NOT NULL;

-- KeyAuth's `authed` flags: a variable or webhook usable only from a validated session.
ALTER TABLE app_vars ADD COLUMN authed boolean NOT NULL DEFAULT true;
ALTER TABLE webhooks ADD COLUMN authed boolean NOT NULL DEFAULT true;
