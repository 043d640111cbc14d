use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Keyward validator: answers license validations from memory.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    config: keyward_validator::Config,
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
    let cli = Cli::parse();
    let running = keyward_validator::start(cli.config).await?;
    keyward_shared::serve::until_stopped(|| match running.tls() {
        Some(tls) => tls.reload_logged("reloaded on SIGHUP"),
        None => tracing::info!("SIGHUP: no TLS certificate to reload"),
    })
    .await?;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}
