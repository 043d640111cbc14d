-- What Keygen's admin API needs of the core.
--
-- Tokens are API keys of kind 'token': an admin token acts for its whole account, a product
-- token for one app; both may expire. Their plaintext is only hashed, like every other key.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_kind_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_kind_check CHECK (kind IN ('api', 'seller', 'token'));
ALTER TABLE api_keys
    ADD COLUMN bearer_kind text CHECK (bearer_kind IN ('admin', 'product')),
    ADD COLUMN app_id uuid REFERENCES apps (id) ON DELETE CASCADE,
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT api_keys_token_bearer CHECK (
        (kind = 'token') = (bearer_kind IS NOT NULL)
        AND (bearer_kind <> 'product' OR app_id IS NOT NULL));

-- Licenses carry the vendor's metadata and when they last changed. The trigger keeps
-- `updated_at` true for every writer (control-plane, validators' first-use writes) without each
-- statement having to remember it.
ALTER TABLE licenses
    ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN updated_at timestamptz;

CREATE FUNCTION licenses_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE TRIGGER licenses_touch BEFORE UPDATE ON licenses
    FOR EACH ROW EXECUTE FUNCTION licenses_touch();

-- Keygen's key pool: keys made ahead of time for a policy; a license of a policy that uses the
-- pool takes the oldest one (each key once, whatever the concurrency: SKIP LOCKED).
ALTER TABLE policies ADD COLUMN use_pool boolean NOT NULL DEFAULT false;
CREATE TABLE license_key_pool (
    id         uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    policy_id  uuid NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    key        text NOT NULL CHECK (length(key) BETWEEN 1 AND 128),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (policy_id, key)
);
CREATE INDEX license_key_pool_order ON license_key_pool (policy_id, created_at, id);
CREATE INDEX license_key_pool_account ON license_key_pool (account_id, created_at DESC, id DESC);
