//! Every knob of the control-plane: a flag with an environment variable and a default that suits
//! a local run.

use std::net::SocketAddr;

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,

    /// Streaming replicas for the native API's read-only GETs. Boxed: it would make `Config` a
    /// large enum variant of the CLI's commands.
    #[command(flatten)]
    pub replicas: Box<ReplicaOptions>,

    /// Address to serve the REST API on.
    #[arg(long, env = "KEYWARD_CP_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// TLS termination (plain HTTP without a certificate).
    #[command(flatten)]
    pub tls: keyward_shared::tls::TlsOptions,

    /// HS256 secret for admin JWTs. Default: generated once and kept in the database, so every
    /// control-plane instance agrees without configuration.
    #[arg(long, env = "KEYWARD_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Lifetime of an admin JWT.
    #[arg(long, env = "KEYWARD_JWT_TTL_SECS", default_value_t = 86_400)]
    pub jwt_ttl_secs: u64,

    /// Maximum connections of the query pool.
    #[arg(long, env = "KEYWARD_CP_POOL_SIZE", default_value_t = 16)]
    pub pool_size: usize,

    /// Largest accepted request body.
    #[arg(long, env = "KEYWARD_CP_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Login attempts allowed per client IP per minute (a burst of that size, refilled evenly).
    #[arg(long, env = "KEYWARD_LOGIN_RATE_PER_MINUTE", default_value_t = 10)]
    pub login_rate_per_minute: u32,

    /// Seed (64 hex characters) of the Ed25519 key that signs KeyAuth 1.3 answers; at startup it
    /// becomes the primary signing key. Default: a key generated once and kept in the database
    /// (`control-plane signing-key` shows, rotates and imports keys).
    #[arg(long, env = "KEYWARD_SIGNING_KEY", hide_env_values = true)]
    pub signing_key_seed: Option<String>,

    /// How often dead machines of `DEACTIVATE_DEAD` policies are deactivated (and signing keys
    /// rotated by the operator CLI picked up), in milliseconds.
    #[arg(long, env = "KEYWARD_JANITOR_MS", default_value_t = 30_000)]
    pub janitor_ms: u64,

    /// Days of per-license usage statistics kept (CyberLicense's usage and daily stats: the
    /// requests, daily counts and IPs/HWIDs seen) and of the per-minute validation counts (the
    /// Overview's chart); the janitor drops older ones.
    #[arg(
        long,
        env = "KEYWARD_USAGE_RETENTION_DAYS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..=3650)
    )]
    pub usage_retention_days: u32,

    /// Event webhooks: targets allowed, delivery worker, retries.
    #[command(flatten)]
    pub webhooks: WebhookOptions,

    /// Discord OAuth2 login of the admin and customer portals (off unless configured). Boxed:
    /// it would make `Config` a large enum variant of the CLI's commands.
    #[command(flatten)]
    pub discord: Box<DiscordOptions>,
}

/// Read replicas (`--replica-url`), with the validator's names and semantics.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplicaOptions {
    /// Streaming replicas of that database for the native API's read-only GETs (comma-separated
    /// URLs; none: every read on the primary). Auth, writes, the compat facades, exports and the
    /// workers always use DATABASE_URL; a read uses a replica only once it has replayed this
    /// process's own writes.
    #[arg(
        long = "replica-url",
        env = "KEYWARD_REPLICA_URL",
        value_delimiter = ','
    )]
    pub url: Vec<String>,

    /// A replica more stale than this (or that has not answered a poll for this long) is
    /// skipped: reads use the primary.
    #[arg(
        long = "replica-max-lag-ms",
        env = "KEYWARD_REPLICA_MAX_LAG_MS",
        default_value_t = 1_000
    )]
    pub max_lag_ms: u64,
}

/// Discord OAuth2 login (`/v1/auth/discord`): the application's credentials and redirect URL
/// (all three, or none: the login is then off), Discord's endpoints (a stand-in's in tests or
/// behind an egress proxy; operator-set, so they may be private or loopback addresses), and
/// how long the session it opens lasts.
#[derive(Clone, clap::Args)]
pub struct DiscordOptions {
    /// The Discord application's client id.
    #[arg(long = "discord-client-id", env = "KEYWARD_DISCORD_CLIENT_ID")]
    pub client_id: Option<String>,

    /// The Discord application's client secret.
    #[arg(
        long = "discord-client-secret",
        env = "KEYWARD_DISCORD_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub client_secret: Option<String>,

    /// The redirect URL registered with Discord: the portal's page that receives `code` and
    /// `state` and hands them to `GET /v1/auth/discord/callback`.
    #[arg(long = "discord-redirect-url", env = "KEYWARD_DISCORD_REDIRECT_URL")]
    pub redirect_url: Option<String>,

    /// Discord's API base: the token endpoint is `{base}/oauth2/token`, the user `{base}/users/@me`.
    #[arg(
        long = "discord-api-base",
        env = "KEYWARD_DISCORD_API_BASE",
        default_value = "https://discord.com/api/v10"
    )]
    pub api_base: String,

    /// Discord's authorization page.
    #[arg(
        long = "discord-authorize-url",
        env = "KEYWARD_DISCORD_AUTHORIZE_URL",
        default_value = "https://discord.com/oauth2/authorize"
    )]
    pub authorize_url: String,

    /// Lifetime of the session a Discord login opens (the admin JWT or the customer token).
    #[arg(
        long = "discord-session-secs",
        env = "KEYWARD_DISCORD_SESSION_SECS",
        default_value_t = 86_400
    )]
    pub session_secs: u64,

    /// Deadline of each call to Discord.
    #[arg(
        // Its own id: the webhooks' `timeout_ms` has the same field name, and clap cannot tell
        // two arguments of one id apart (the service would refuse to start).
        id = "discord_timeout_ms",
        value_name = "TIMEOUT_MS",
        long = "discord-timeout-ms",
        env = "KEYWARD_DISCORD_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub timeout_ms: u64,
}

/// Without the client secret: a logged configuration must not carry it.
impl std::fmt::Debug for DiscordOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordOptions")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<hidden>"),
            )
            .field("redirect_url", &self.redirect_url)
            .field("api_base", &self.api_base)
            .field("authorize_url", &self.authorize_url)
            .field("session_secs", &self.session_secs)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl Default for DiscordOptions {
    fn default() -> Self {
        DiscordOptions {
            client_id: None,
            client_secret: None,
            redirect_url: None,
            api_base: "https://discord.com/api/v10".into(),
            authorize_url: "https://discord.com/oauth2/authorize".into(),
            session_secs: 86_400,
            timeout_ms: 10_000,
        }
    }
}

/// Event webhooks (`/v1/webhook-endpoints`): which URLs tenants may register and how the
/// delivery worker retries.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookOptions {
    /// Accept plain-http webhook URLs (default: https only; deliveries carry tenants' data).
    #[arg(
        long = "webhook-allow-http",
        env = "KEYWARD_WEBHOOK_ALLOW_HTTP",
        default_value_t = false
    )]
    pub allow_http: bool,

    /// Let webhooks reach loopback and private addresses (off: a tenant could otherwise make the
    /// control-plane probe the operator's own network). The validator's knob of the same name
    /// does the same for the KeyAuth `webhook` call.
    #[arg(
        long = "webhook-allow-private",
        env = "KEYWARD_WEBHOOK_ALLOW_PRIVATE",
        default_value_t = false
    )]
    pub allow_private: bool,

    /// Run the delivery worker in this process (off: events queue up for another instance).
    #[arg(
        long = "webhook-worker",
        env = "KEYWARD_WEBHOOK_WORKER",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub worker: bool,

    /// Whole-request deadline of one delivery.
    #[arg(
        long = "webhook-timeout-ms",
        env = "KEYWARD_WEBHOOK_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub timeout_ms: u64,

    /// Delay before the first retry of a failed delivery; each further retry doubles it (plus up
    /// to a quarter of jitter).
    #[arg(
        long = "webhook-backoff-base-ms",
        env = "KEYWARD_WEBHOOK_BACKOFF_BASE_MS",
        default_value_t = 10_000
    )]
    pub backoff_base_ms: u64,

    /// Longest delay between two attempts.
    #[arg(long = "webhook-backoff-max-secs", env = "KEYWARD_WEBHOOK_BACKOFF_MAX_SECS", default_value_t = 6 * 3600)]
    pub backoff_max_secs: u64,

    /// Attempts before an event is marked failed (about 2.5 days with the default back-off).
    #[arg(
        long = "webhook-max-attempts",
        env = "KEYWARD_WEBHOOK_MAX_ATTEMPTS",
        default_value_t = 20
    )]
    pub max_attempts: u32,

    /// Safety-net poll of the queue, in case a wake-up notification is lost.
    #[arg(
        long = "webhook-poll-ms",
        env = "KEYWARD_WEBHOOK_POLL_MS",
        default_value_t = 5_000
    )]
    pub poll_ms: u64,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            allow_http: false,
            allow_private: false,
            worker: true,
            timeout_ms: 10_000,
            backoff_base_ms: 10_000,
            backoff_max_secs: 6 * 3600,
            max_attempts: 20,
            poll_ms: 5_000,
        }
    }
}

impl Config {
    /// All defaults, listening on an ephemeral loopback port.
    pub fn new(database_url: impl Into<String>) -> Config {
        Config {
            database_url: database_url.into(),
            replicas: Box::new(ReplicaOptions {
                url: Vec::new(),
                max_lag_ms: 1_000,
            }),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: Default::default(),
            jwt_secret: None,
            jwt_ttl_secs: 86_400,
            pool_size: 16,
            max_body_bytes: 1024 * 1024,
            login_rate_per_minute: 10,
            signing_key_seed: None,
            janitor_ms: 30_000,
            usage_retention_days: 30,
            webhooks: WebhookOptions::default(),
            discord: Box::default(),
        }
    }
}
