-- Event webhooks (Keygen's webhook endpoints and events) with a transactional outbox: a change
-- and the events it causes commit together (`WriteTx::commit` inserts one `webhook_events` row
-- per subscribed endpoint), and the control-plane's delivery worker sends them afterwards, so an
-- event survives a restart between the commit and its delivery.

CREATE TABLE webhook_endpoints (
    id                  uuid PRIMARY KEY,
    account_id          uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- Product scope: only events of this app's resources (NULL: every event of the account).
    app_id              uuid,
    url                 text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    -- Event names, or '*' for all of them.
    subscriptions       text[] NOT NULL DEFAULT ARRAY['*']::text[]
                        CHECK (cardinality(subscriptions) BETWEEN 1 AND 100),
    signature_algorithm text NOT NULL DEFAULT 'ed25519' CHECK (signature_algorithm = 'ed25519'),
    api_version         text NOT NULL DEFAULT '1.8' CHECK (length(api_version) BETWEEN 1 AND 10),
    enabled             boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, account_id),
    FOREIGN KEY (app_id, account_id) REFERENCES apps (id, account_id) ON DELETE CASCADE
);
-- Listing, and the commit-time match of an account's endpoints.
CREATE INDEX webhook_endpoints_account ON webhook_endpoints (account_id, created_at, id);
CREATE INDEX webhook_endpoints_app ON webhook_endpoints (app_id) WHERE app_id IS NOT NULL;

CREATE TABLE webhook_events (
    id                 uuid PRIMARY KEY,
    account_id         uuid NOT NULL,
    endpoint_id        uuid NOT NULL,
    event              text NOT NULL CHECK (length(event) BETWEEN 1 AND 100),
    payload            jsonb NOT NULL,
    -- queued: waiting for next_attempt_at; delivering: claimed by a worker until next_attempt_at
    -- (its lease; after it another worker may claim it again); delivered; failed (gave up).
    status             text NOT NULL DEFAULT 'queued'
                       CHECK (status IN ('queued', 'delivering', 'delivered', 'failed')),
    attempts           integer NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    -- The claim that may record the attempt: a worker whose lease ran out (and was claimed
    -- again) cannot overwrite the newer claim's outcome.
    lease_id           uuid,
    last_response_code integer,
    last_response_body text,
    last_error         text,
    -- One entry per attempt ({at, code, error}), the newest last, at most the last 25.
    attempt_log        jsonb NOT NULL DEFAULT '[]'::jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    delivered_at       timestamptz,
    FOREIGN KEY (endpoint_id, account_id) REFERENCES webhook_endpoints (id, account_id)
        ON DELETE CASCADE
);
-- The worker's claim: what is due, oldest first; delivered and failed rows are not in it, so it
-- stays as small as the backlog.
CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at)
    WHERE status IN ('queued', 'delivering');
-- Listing (newest first, keyset on (created_at, id)) and its filters.
CREATE INDEX webhook_events_account ON webhook_events (account_id, created_at DESC, id DESC);
CREATE INDEX webhook_events_endpoint ON webhook_events (endpoint_id, created_at DESC, id DESC);
