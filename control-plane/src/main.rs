use std::io::IsTerminal;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

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
    /// Create (or refresh) the demo tenant and print its credentials and a validation curl.
    Demo {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        control_plane_url: String,
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        validator_url: String,
    },
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
            shutdown_signal().await?;
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
        Command::Demo {
            database_url,
            control_plane_url,
            validator_url,
        } => {
            let demo = keyward_control_plane::demo::create(&database_url).await?;
            print!("{}", demo.render(&control_plane_url, &validator_url));
        }
    }
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}
