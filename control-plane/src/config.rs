//! Every knob of the control-plane: a flag with an environment variable and a default that suits
//! a local run.

use std::net::SocketAddr;

#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// PostgreSQL URL.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,

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
}

impl Config {
    /// All defaults, listening on an ephemeral loopback port.
    pub fn new(database_url: impl Into<String>) -> Config {
        Config {
            database_url: database_url.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: Default::default(),
            jwt_secret: None,
            jwt_ttl_secs: 86_400,
            pool_size: 16,
            max_body_bytes: 1024 * 1024,
            login_rate_per_minute: 10,
            signing_key_seed: None,
        }
    }
}
