//! `keyward`: offline tools for vendors. For now, `verify-license-file` checks a Keygen license or
//! machine file the way a client would, against the deployment's public key.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::{Parser, Subcommand};
use keyward_shared::license_file::{self, FileKind, Verified};
use serde_json::Value;

/// Keyward's offline tools for vendors.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify a license or machine file (signature, decryption, expiry) and print what it grants.
    VerifyLicenseFile {
        /// The deployment's Ed25519 public key, 64 hex characters (what clients embed).
        #[arg(long)]
        public_key: String,
        /// The license key: needed to decrypt an encrypted file.
        #[arg(long)]
        key: Option<String>,
        /// The machine's fingerprint: with --key, decrypts an encrypted machine file.
        #[arg(long, requires = "key")]
        fingerprint: Option<String>,
        /// The certificate file, or `-` for standard input.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; usage errors are failures like any other.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli.command) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<String> {
    match command {
        Command::VerifyLicenseFile {
            public_key,
            key,
            fingerprint,
            file,
        } => {
            let certificate = read_input(&file)?;
            // A machine file is keyed by the license key followed by the fingerprint.
            let secret = key.map(|k| {
                let mut s = k.into_bytes();
                s.extend_from_slice(fingerprint.unwrap_or_default().as_bytes());
                s
            });
            let verified =
                license_file::verify(&certificate, &public_key, secret.as_deref(), Utc::now())?;
            Ok(report(&verified))
        }
    }
}

fn read_input(file: &PathBuf) -> anyhow::Result<String> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the certificate from standard input")?;
        Ok(text)
    } else {
        std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the certificate {}", file.display()))
    }
}

/// `name: value` lines, then `valid`: easy to read and to grep in scripts.
fn report(v: &Verified) -> String {
    let data = &v.dataset["data"];
    let mut out = String::new();
    let mut line = |name: &str, value: &str| {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push('\n');
    };
    let license = match v.kind {
        FileKind::License => {
            line("file", &format!("license file ({})", v.algorithm.as_str()));
            Some(data)
        }
        FileKind::Machine => {
            line("file", &format!("machine file ({})", v.algorithm.as_str()));
            line("machine id", text(&data["id"]));
            line("fingerprint", text(&data["attributes"]["fingerprint"]));
            // A machine file carries its license in `included` (keygen-rs requires it).
            v.dataset["included"]
                .as_array()
                .and_then(|inc| inc.iter().find(|r| r["type"] == "licenses"))
        }
    };
    if let Some(license) = license {
        line("license id", text(&license["id"]));
        line("license key", text(&license["attributes"]["key"]));
    }
    line("issued", &time(v.issued, "unknown"));
    line("expiry", &time(v.expiry, "never"));
    out.push_str("valid\n");
    out
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn time(t: Option<DateTime<Utc>>, none: &str) -> String {
    t.map_or_else(
        || none.to_owned(),
        |t| t.to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}
