//! Connections and migrations.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, QueueMode, RecyclingMethod, Runtime};
use tokio_postgres::{Client, NoTls};

use crate::error::{StoreError, StoreResult};

/// Embedded, versioned migrations, applied in order, each in its own transaction.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "foundation",
        include_str!("../migrations/0001_foundation.sql"),
    ),
    (
        2,
        "keyauth_data",
        include_str!("../migrations/0002_keyauth_data.sql"),
    ),
    (
        3,
        "client_api",
        include_str!("../migrations/0003_client_api.sql"),
    ),
    (
        4,
        "license_fillfactor",
        include_str!("../migrations/0004_license_fillfactor.sql"),
    ),
    (
        5,
        "license_usage",
        include_str!("../migrations/0005_license_usage.sql"),
    ),
    (
        6,
        "policies",
        include_str!("../migrations/0006_policies.sql"),
    ),
    (
        7,
        "machines",
        include_str!("../migrations/0007_machines.sql"),
    ),
    (
        8,
        "entitlements",
        include_str!("../migrations/0008_entitlements.sql"),
    ),
    (
        9,
        "license_policies",
        include_str!("../migrations/0009_license_policies.sql"),
    ),
    (
        10,
        "keygen_client",
        include_str!("../migrations/0010_keygen_client.sql"),
    ),
    (
        11,
        "keygen_admin",
        include_str!("../migrations/0011_keygen_admin.sql"),
    ),
    (
        12,
        "webhook_events",
        include_str!("../migrations/0012_webhook_events.sql"),
    ),
    (
        13,
        "account_users",
        include_str!("../migrations/0013_account_users.sql"),
    ),
    (
        14,
        "key_systems",
        include_str!("../migrations/0014_key_systems.sql"),
    ),
    (
        15,
        "cyberlicense",
        include_str!("../migrations/0015_cyberlicense.sql"),
    ),
    (
        16,
        "admin_ui",
        include_str!("../migrations/0016_admin_ui.sql"),
    ),
];

/// Arbitrary constant identifying Keyward's migration lock among advisory locks.
const MIGRATION_LOCK: i64 = 0x6b65_7977_6172_6401;

#[derive(Debug, thiserror::Error)]
#[error("invalid database URL: {0}")]
pub struct ConfigError(#[from] tokio_postgres::Error);

/// Parses a `postgres://` URL (or key=value string) with Keyward's connection defaults: short
/// connect timeout so an outage is detected quickly, and TCP keepalives so a half-open connection
/// is noticed.
pub fn pg_config(
    database_url: &str,
    application_name: &str,
) -> Result<tokio_postgres::Config, ConfigError> {
    let mut cfg: tokio_postgres::Config = database_url.parse()?;
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(Duration::from_secs(3));
    }
    cfg.keepalives(true)
        .keepalives_idle(Duration::from_secs(10))
        .keepalives_interval(Duration::from_secs(2))
        .keepalives_retries(3);
    if cfg.get_application_name().is_none() {
        cfg.application_name(application_name);
    }
    Ok(cfg)
}

/// A query pool. Never used for LISTEN: pools drop notifications and recycle connections.
///
/// Last in, first out: a light load keeps reusing the same few connections, whose PostgreSQL
/// backends stay hot (in a first-in-first-out pool every query woke the next of all 16 backends
/// in turn).
pub fn pool(cfg: tokio_postgres::Config, max_size: usize) -> Pool {
    let mgr = Manager::from_config(
        cfg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    // Building only fails without a runtime for timeouts, which we always give.
    Pool::builder(mgr)
        .max_size(max_size)
        .queue_mode(QueueMode::Lifo)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(3)))
        .recycle_timeout(Some(Duration::from_secs(2)))
        .build()
        .unwrap_or_else(|e| unreachable!("pool builder with runtime cannot fail: {e}"))
}

/// Opens a single connection whose driver runs in a background task.
pub async fn connect(cfg: &tokio_postgres::Config) -> StoreResult<Client> {
    let (client, connection) = cfg.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}

/// Applies pending migrations under an advisory lock so concurrent starters do not race.
/// Returns the versions applied by this call.
pub async fn migrate(client: &mut Client) -> StoreResult<Vec<i32>> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = apply_pending(client).await;
    // Unlock even when a migration failed; the session ends soon anyway.
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    let applied = result?;
    unlock?;
    Ok(applied)
}

async fn apply_pending(client: &mut Client) -> StoreResult<Vec<i32>> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version    integer PRIMARY KEY,
                name       text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let done: Vec<i32> = client
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version, name, "applied migration");
        applied.push(*version);
    }
    Ok(applied)
}

/// The SQL of every embedded migration, in order (tests key their template database on it).
pub fn migration_sources() -> impl Iterator<Item = &'static str> {
    MIGRATIONS.iter().map(|m| m.2)
}

/// The newest migration version embedded in this binary.
pub fn latest_migration() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Returns the named deployment secret, creating it with `len` random bytes the first time.
pub async fn server_secret(client: &Client, name: &str, len: usize) -> StoreResult<Vec<u8>> {
    let fresh: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
    client
        .execute(
            "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &fresh],
        )
        .await?;
    let row = client
        .query_one("SELECT value FROM server_secrets WHERE name = $1", &[&name])
        .await?;
    Ok(row.get(0))
}

/// Opens up to `n` pooled connections at once, so the first burst of traffic after a start does
/// not queue behind PostgreSQL starting backends (several ms each); they go back to the pool when
/// dropped. Failures are left to the pool's on-demand connecting.
pub async fn open(pool: &Pool, n: usize) -> Vec<deadpool_postgres::Client> {
    futures_util::future::join_all((0..n).map(|_| pool.get()))
        .await
        .into_iter()
        .filter_map(Result::ok)
        .collect()
}

/// Maps a pool checkout failure.
pub async fn checkout(pool: &Pool) -> StoreResult<deadpool_postgres::Client> {
    pool.get().await.map_err(StoreError::from)
}

/// A connection for the validator's hot reads: statements are prepared once per pooled
/// connection (planning the license query costs more than running it), or per call on a plain
/// client.
pub trait Hot: Sync {
    fn statement<'a>(
        &'a self,
        sql: &'a str,
    ) -> impl std::future::Future<Output = Result<tokio_postgres::Statement, tokio_postgres::Error>>
           + Send
           + 'a;

    fn client(&self) -> &Client;
}

impl Hot for Client {
    fn statement<'a>(
        &'a self,
        sql: &'a str,
    ) -> impl std::future::Future<Output = Result<tokio_postgres::Statement, tokio_postgres::Error>>
           + Send
           + 'a {
        self.prepare(sql)
    }

    fn client(&self) -> &Client {
        self
    }
}

impl Hot for deadpool_postgres::ClientWrapper {
    fn statement<'a>(
        &'a self,
        sql: &'a str,
    ) -> impl std::future::Future<Output = Result<tokio_postgres::Statement, tokio_postgres::Error>>
           + Send
           + 'a {
        self.prepare_cached(sql)
    }

    fn client(&self) -> &Client {
        self
    }
}
