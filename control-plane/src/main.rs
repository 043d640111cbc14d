use std::io::IsTerminal;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod healthcheck;

/// Keyward control-plane: the admin REST API, migrations and tenant set-up.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the REST API (the default).
    Serve(keyward_control_plane::Config),
    /// Apply pending database migrations and exit.
    Migrate {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
    /// Create an admin account (a tenant).
    CreateAdmin {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long)]
        username: String,
        /// The password (better: the environment variable, which stays out of shell history).
        #[arg(long, env = "KEYWARD_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Show, rotate, import or retire the Ed25519 keys that sign KeyAuth 1.3 answers.
    #[command(subcommand)]
    SigningKey(SigningKeyCommand),
    /// Create (or refresh) the demo tenant and print its credentials and a validation curl.
    Demo {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        control_plane_url: String,
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        validator_url: String,
    },
    /// GET a readiness URL (plain HTTP) and exit non-zero unless it answers 2xx: the container
    /// image's HEALTHCHECK, for the control-plane and the validator alike (the image has no curl).
    Healthcheck {
        #[arg(
            long,
            env = "KEYWARD_HEALTHCHECK_URL",
            default_value = "http://127.0.0.1:8080/readyz"
        )]
        url: String,
        /// Deadline of the connection and of each read and write.
        #[arg(long, default_value_t = 3_000)]
        timeout_ms: u64,
    },
}

#[derive(Subcommand)]
enum SigningKeyCommand {
    /// Print the primary public key (what 1.3 clients embed) and every key.
    Show(Database),
    /// Make a freshly generated key the primary. Apps signing with the old primary are pinned to
    /// it, so their shipped clients keep verifying until the vendor moves them.
    Rotate(Database),
    /// Make the key with this seed the primary (same pinning as rotate).
    Import {
        #[command(flatten)]
        db: Database,
        /// The seed, 64 hex characters (better: the environment variable, which stays out of
        /// shell history).
        #[arg(env = "KEYWARD_SIGNING_KEY", hide_env_values = true)]
        seed: String,
    },
    /// Take a key out of service (not the primary, nor one that apps are pinned to).
    Retire {
        #[command(flatten)]
        db: Database,
        /// The key's id, as `show` prints it.
        id: uuid::Uuid,
    },
}

#[derive(clap::Args)]
struct Database {
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
}

impl Database {
    async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        let cfg = keyward_shared::db::pg_config(&self.database_url, "keyward-signing-key")?;
        keyward_shared::db::connect(&cfg)
            .await
            .context("connecting to PostgreSQL")
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let command = match Cli::parse().command {
        Some(c) => c,
        // `control-plane` alone serves, configured from the environment.
        None => match Cli::try_parse_from(["control-plane", "serve"])?.command {
            Some(c) => c,
            None => anyhow::bail!("no command"),
        },
    };
    match command {
        Command::Serve(cfg) => {
            let running = keyward_control_plane::start(cfg).await?;
            keyward_shared::serve::until_stopped(|| match running.tls() {
                Some(tls) => tls.reload_logged("reloaded on SIGHUP"),
                None => tracing::info!("SIGHUP: no TLS certificate to reload"),
            })
            .await?;
            tracing::info!("shutting down");
            running.shutdown().await;
        }
        Command::Migrate { database_url } => {
            let cfg = keyward_shared::db::pg_config(&database_url, "keyward-migrate")?;
            let mut c = keyward_shared::db::connect(&cfg)
                .await
                .context("connecting to PostgreSQL")?;
            let applied = keyward_shared::db::migrate(&mut c).await?;
            if applied.is_empty() {
                println!(
                    "database is up to date (version {})",
                    keyward_shared::db::latest_migration()
                );
            } else {
                println!("applied migrations {applied:?}");
            }
        }
        Command::CreateAdmin {
            database_url,
            username,
            password,
        } => {
            let account =
                keyward_control_plane::create_admin(&database_url, &username, &password).await?;
            println!(
                "created admin '{}' (account {})",
                account.username, account.id
            );
        }
        Command::SigningKey(cmd) => signing_key(cmd).await?,
        Command::Demo {
            database_url,
            control_plane_url,
            validator_url,
        } => {
            let demo = keyward_control_plane::demo::create(&database_url).await?;
            print!("{}", demo.render(&control_plane_url, &validator_url));
        }
        Command::Healthcheck { url, timeout_ms } => {
            let timeout = std::time::Duration::from_millis(timeout_ms);
            let status =
                tokio::task::spawn_blocking(move || healthcheck::check(&url, timeout)).await??;
            println!("ready ({status})");
        }
    }
    Ok(())
}

async fn signing_key(cmd: SigningKeyCommand) -> anyhow::Result<()> {
    use keyward_shared::store::signing_keys;
    match cmd {
        SigningKeyCommand::Show(db) => {
            let c = db.connect().await?;
            let keys = signing_keys::list(&c).await?;
            match keys.iter().find(|k| k.is_primary) {
                Some(p) => println!("primary public key: {}", p.public_key),
                None => {
                    println!("no primary key yet: the control-plane creates one when it starts")
                }
            }
            print_keys(&keys);
        }
        SigningKeyCommand::Rotate(db) => {
            let mut c = db.connect().await?;
            let old = primary(&c).await?;
            let new = signing_keys::rotate(&mut c).await?;
            report_new_primary(&c, &new, old).await?;
        }
        SigningKeyCommand::Import { db, seed } => {
            let seed = keyward_control_plane::parse_signing_seed(&seed, "the seed")?;
            let mut c = db.connect().await?;
            let old = primary(&c).await?;
            let new = signing_keys::ensure_primary(&mut c, Some(seed)).await?;
            report_new_primary(&c, &new, old).await?;
        }
        SigningKeyCommand::Retire { db, id } => {
            let mut c = db.connect().await?;
            let key = signing_keys::retire(&mut c, id).await?;
            println!("retired signing key {} ({})", key.id, key.public_key);
        }
    }
    Ok(())
}

async fn primary(
    c: &tokio_postgres::Client,
) -> anyhow::Result<Option<keyward_shared::store::signing_keys::SigningKey>> {
    let keys = keyward_shared::store::signing_keys::list(c).await?;
    Ok(keys.into_iter().find(|k| k.is_primary))
}

async fn report_new_primary(
    c: &tokio_postgres::Client,
    new: &keyward_shared::store::signing_keys::SigningKey,
    old: Option<keyward_shared::store::signing_keys::SigningKey>,
) -> anyhow::Result<()> {
    println!("primary public key: {}", new.public_key);
    match old {
        Some(old) if old.id != new.id => {
            let keys = keyward_shared::store::signing_keys::list(c).await?;
            let pinned = keys
                .iter()
                .find(|k| k.id == old.id)
                .map_or(0, |k| k.apps_pinned);
            println!(
                "{pinned} app(s) stay pinned to the previous key {} ({}); \
                 PATCH an app with \"signing_key_id\": null once its clients embed the new key",
                old.id, old.public_key
            );
        }
        Some(_) => println!("(already the primary; nothing changed)"),
        None => {}
    }
    Ok(())
}

fn print_keys(keys: &[keyward_shared::store::signing_keys::SigningKey]) {
    for k in keys {
        let state = match (k.is_primary, k.retired_at) {
            (true, _) => "primary".to_string(),
            (false, Some(at)) => format!("retired {}", at.to_rfc3339()),
            (false, None) => "active".to_string(),
        };
        println!(
            "{}  {}  {:<30}  {} app(s) pinned  created {}",
            k.id,
            k.public_key,
            state,
            k.apps_pinned,
            k.created_at.to_rfc3339()
        );
    }
}
