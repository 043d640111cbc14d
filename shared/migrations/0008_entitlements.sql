-- Entitlements: named features a license grants (Keygen's entitlements), attached to policies
-- (every license of the policy has them) and to single licenses. Account-wide, by code.
CREATE TABLE entitlements (
    id         uuid PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    code       text NOT NULL CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$'),
    metadata   jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, code),
    UNIQUE (id, account_id)
);
CREATE INDEX entitlements_account_created ON entitlements (account_id, created_at, id);

CREATE TABLE policy_entitlements (
    policy_id      uuid NOT NULL,
    entitlement_id uuid NOT NULL,
    account_id     uuid NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (policy_id, entitlement_id),
    FOREIGN KEY (policy_id, account_id) REFERENCES policies (id, account_id) ON DELETE CASCADE,
    FOREIGN KEY (entitlement_id, account_id) REFERENCES entitlements (id, account_id) ON DELETE CASCADE
);
CREATE INDEX policy_entitlements_entitlement ON policy_entitlements (entitlement_id);

CREATE TABLE license_entitlements (
    license_id     uuid NOT NULL REFERENCES licenses (id) ON DELETE CASCADE,
    entitlement_id uuid NOT NULL,
    account_id     uuid NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (license_id, entitlement_id),
    FOREIGN KEY (entitlement_id, account_id) REFERENCES entitlements (id, account_id) ON DELETE CASCADE
);
CREATE INDEX license_entitlements_entitlement ON license_entitlements (entitlement_id);
