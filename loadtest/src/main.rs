//! `keyward-loadtest`: a small closed-loop HTTP/1.1 load generator for Keyward's validator, and a
//! bare hyper `baseline-server` to compare it with (same body size, same machine).

mod baseline;
mod closed_loop;

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Load generator for Keyward validators")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Closed loop against POST /v1/validate: each connection sends its next request when the
    /// previous answer arrived (max throughput; latency suffers coordinated omission).
    Validate {
        /// Validator base URL, e.g. http://127.0.0.1:8081
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        url: String,
        #[arg(long)]
        app: String,
        #[arg(long)]
        key: String,
        #[arg(long)]
        hwid: Option<String>,
        /// Concurrent keep-alive connections.
        #[arg(short = 'c', long, default_value_t = 16)]
        connections: usize,
        /// Run time in seconds.
        #[arg(short = 'd', long, default_value_t = 10.0)]
        duration: f64,
        /// Stop after this many requests in total (whichever comes first).
        #[arg(long)]
        max_requests: Option<u64>,
    },
    /// A bare hyper server answering every request with a fixed JSON body: the reference point.
    BaselineServer {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        /// Size of the response body in bytes.
        #[arg(long, default_value_t = 120)]
        body_size: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.cmd {
        Cmd::Validate {
            url,
            app,
            key,
            hwid,
            connections,
            duration,
            max_requests,
        } => {
            let body = serde_json::json!({ "app": app, "key": key, "hwid": hwid }).to_string();
            let target = closed_loop::Target::post_json(&url, "/v1/validate", body)?;
            let report = rt.block_on(closed_loop::run(
                target,
                connections,
                Duration::from_secs_f64(duration),
                max_requests,
            ))?;
            println!("{}", report.human());
            println!("{}", serde_json::to_string_pretty(&report.json())?);
        }
        Cmd::BaselineServer { listen, body_size } => {
            rt.block_on(baseline::serve(listen, body_size))?
        }
    }
    Ok(())
}
