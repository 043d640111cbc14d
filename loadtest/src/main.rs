//! `keyward-loadtest`: Keyward's load generator (native, KeyAuth, Keygen, Panda and Junkie
//! scenarios, closed
//! and open loop, per-step hdrhistograms, JSON and SVG reports), a bare hyper `baseline-server`
//! to compare with, and `compare` (A/B interleaved runs with the ratio of each pair).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use keyward_loadtest::baseline;
use keyward_loadtest::compare::{self, measure};
use keyward_loadtest::engine::{LoadConfig, Mode};
use keyward_loadtest::scenario::{KeyAuthVersion, Repeat, Scenario};

#[derive(Parser)]
#[command(version, about = "Load generator for Keyward validators")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs one scenario against a validator and reports it.
    Run {
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        scenario: ScenarioArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// A bare hyper server answering every request with a fixed JSON body: the reference point.
    BaselineServer {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        /// Size of the response body in bytes (match the validator's answer).
        #[arg(long, default_value_t = 120)]
        body_size: usize,
    },
    /// Seeds a load-test tenant: finds or creates the app through the control-plane and gives it
    /// N licenses (REST, 500 per call; or inserted by PostgreSQL with --database-url, for
    /// millions). Writes the keys to --keys-file and prints the tenant as JSON.
    Setup {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        control_plane: String,
        #[arg(long, env = "KEYWARD_API_KEY")]
        api_key: Option<String>,
        #[arg(long)]
        username: Option<String>,
        #[arg(long, env = "KEYWARD_ADMIN_PASSWORD")]
        password: Option<String>,
        #[arg(long, default_value = "loadtest")]
        app_name: String,
        #[arg(long, default_value_t = 1000)]
        licenses: u64,
        #[arg(long, default_value = "keys.txt")]
        keys_file: PathBuf,
        /// Insert the licenses directly (one statement per million; keys `LT<app>-0000000001`…).
        #[arg(long)]
        database_url: Option<String>,
        /// Create the app with the HWID lock on.
        #[arg(long)]
        hwid_lock: bool,
        /// With --database-url: mark the licenses used already (a fleet's steady state).
        #[arg(long)]
        activated: bool,
    },
    /// Measures ban/unban propagation: from the control-plane's 200 to the first answer of each
    /// validator that reflects it; p50/p99/max per validator, optionally under background load.
    Invalidation {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        control_plane: String,
        #[arg(long, env = "KEYWARD_API_KEY")]
        api_key: String,
        #[arg(long)]
        app: String,
        /// The key to ban and unban (it must exist in the app).
        #[arg(long)]
        key: String,
        /// Validator base URLs (repeatable).
        #[arg(long = "validator", required = true)]
        validators: Vec<String>,
        #[arg(long, default_value_t = 20)]
        rounds: usize,
        /// Background closed-loop connections per validator while probing.
        #[arg(long, default_value_t = 0)]
        background: usize,
        /// Keys for the background load (default: the probed key).
        #[arg(long)]
        keys_file: Option<PathBuf>,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// The standard benchmark suite of `deploy/bench.sh`: seeds tenants, measures every target
    /// against running services and writes BENCHMARKS.md.
    Suite {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        control_plane: String,
        #[arg(long, default_value = "admin")]
        username: String,
        #[arg(long, env = "KEYWARD_ADMIN_PASSWORD")]
        password: String,
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// Validator base URLs (repeatable).
        #[arg(long = "validator", required = true)]
        validators: Vec<String>,
        /// Their process ids, same order (repeatable).
        #[arg(long = "validator-pid")]
        validator_pids: Vec<u32>,
        /// URL,PID of a validator that trusts this host as a proxy (rate-limiter test).
        #[arg(long)]
        limiter_validator: Option<String>,
        /// CPUs for the baseline servers (taskset -c), i.e. the validators' CPUs.
        #[arg(long)]
        server_cpus: Option<String>,
        #[arg(short = 'c', long, default_value_t = 32)]
        connections: usize,
        /// Share of one core the servers of the A/B rows may use (cgroup CPU quota; needs root),
        /// so that one generator core has headroom over them; 0: full cores.
        #[arg(long, default_value_t = 0.5)]
        server_quota: f64,
        /// Short durations and 200k licenses (a smoke run).
        #[arg(long)]
        quick: bool,
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
        /// How the suite was started (recorded in the report).
        #[arg(long, default_value = "deploy/bench.sh")]
        command: String,
        /// Run only these rows (comma-separated): ceiling, native, keyauth, keygen, panda, junkie,
        /// cyberlicense, executions, open-loop, propagation, cold, memory, limiter. Default: all.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Criterion's output directory, where the Keygen row finds what signing an answer costs
        /// (run `cargo bench -p keyward-benches --bench keygen_signature` first).
        #[arg(long)]
        criterion_dir: Option<PathBuf>,
    },
    /// The measurements of `deploy/fleet.sh`: N validators behind a load balancer with a
    /// streaming replica (throughput and p99 through the balancer, propagation to each
    /// validator, one validator SIGKILLed and the replica stopped mid-load); writes a markdown
    /// section of BENCHMARKS.md to --out.
    Fleet {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        control_plane: String,
        #[arg(long, default_value = "admin")]
        username: String,
        #[arg(long, env = "KEYWARD_ADMIN_PASSWORD")]
        password: String,
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// The load balancer's base URL.
        #[arg(long)]
        balancer: String,
        /// What the balancer is, for the report.
        #[arg(long, default_value = "a load balancer")]
        balancer_name: String,
        /// Validator base URLs behind it (repeatable).
        #[arg(long = "validator", required = true)]
        validators: Vec<String>,
        /// Their process ids, same order (repeatable); the last one is SIGKILLed.
        #[arg(long = "validator-pid", required = true)]
        validator_pids: Vec<u32>,
        /// Shell command that stops the validators' replica (run mid-load); without it, no
        /// replica row.
        #[arg(long)]
        stop_replica: Option<String>,
        #[arg(short = 'c', long, default_value_t = 32)]
        connections: usize,
        /// Short phases and fewer cold keys (a smoke run).
        #[arg(long)]
        quick: bool,
        #[arg(long)]
        out: PathBuf,
        /// How the run was started (recorded in the report).
        #[arg(long, default_value = "deploy/fleet.sh")]
        command: String,
    },
    /// Runs the scenario against A and B in turn (A, B, A, B, …) and prints the A/B throughput
    /// ratio of each pair, their median, and the generator's CPU and ceiling on B: a ratio whose
    /// B ran within 10 % of that ceiling is reported as generator-bound.
    Compare {
        /// The system under test, e.g. a validator.
        #[arg(long)]
        a: String,
        /// The reference, e.g. a baseline-server with the same body size.
        #[arg(long)]
        b: String,
        /// Number of A/B pairs.
        #[arg(long, default_value_t = 3)]
        pairs: usize,
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        scenario: ScenarioArgs,
        /// Write the pairs and the median as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

#[derive(Args, Clone)]
struct LoadArgs {
    /// Validator base URL.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    url: String,
    /// Concurrent keep-alive connections.
    #[arg(short = 'c', long, default_value_t = 16)]
    connections: usize,
    /// Run time in seconds.
    #[arg(short = 'd', long, default_value_t = 10.0)]
    duration: f64,
    /// Stop after this many requests in total (whichever comes first).
    #[arg(long)]
    max_requests: Option<u64>,
    /// Open loop at this many requests per second (latency from the intended send time);
    /// without it, closed loop (maximum throughput).
    #[arg(long)]
    rate: Option<f64>,
    /// Per-request timeout in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    timeout_ms: u64,
    /// Generator threads, each a single-threaded runtime (default: one per CPU the process may
    /// use; `taskset` narrows that).
    #[arg(long)]
    threads: Option<usize>,
}

impl LoadArgs {
    fn config(&self) -> LoadConfig {
        LoadConfig {
            connections: self.connections,
            duration: Duration::from_secs_f64(self.duration.max(0.0)),
            max_requests: self.max_requests,
            mode: match self.rate {
                Some(rate) => Mode::Open { rate },
                None => Mode::Closed,
            },
            timeout: Duration::from_millis(self.timeout_ms.max(1)),
            threads: self.threads.map(|t| t.max(1)),
            stop: None,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ScenarioKind {
    /// POST /v1/validate, keys drawn uniformly from --key/--keys-file.
    Validate,
    /// Known keys, plus --unknown-share unknown keys and --activation-share new HWIDs.
    Mixed,
    /// KeyAuth 1.2: init → license → check, HMAC-verified.
    Keyauth12,
    /// KeyAuth 1.3: init → license → check, Ed25519-verified (--public-key).
    Keyauth13,
    /// Every key once, in order (fills caches; with --spoof-addresses, one client address each).
    Sweep,
    /// Keygen: POST /keygen/v1/licenses/actions/validate-key, keys drawn uniformly; the
    /// Keygen-Signature of one answer in --verify-every checked (--public-key) and its
    /// meta.code VALID.
    KeygenValidateKey,
    /// Panda: GET /v2_validation?key&service&hwid (--service, --hwid), the query unencoded; one
    /// answer in --verify-every must say V2_Authentication "success".
    PandaV2Validation,
    /// Junkie: POST /api/v1/whitelist/verifyOpen {key, service, identifier, hwid} (--service,
    /// --identifier, --hwid); one answer in --verify-every must say valid, KEY_VALID.
    JunkieVerifyOpen,
    /// Panda: POST /api/push-execution-count?apiKey=… (--service-key); every answer must say
    /// success. Needs no license key.
    PandaPushExecution,
}

#[derive(Clone, Copy, ValueEnum)]
enum RepeatArg {
    /// init → license → check, each iteration a new session.
    Flow,
    /// init → license once, then license again and again (an activated key).
    License,
    /// init → license once, then check again and again.
    Check,
}

#[derive(Args, Clone)]
struct ScenarioArgs {
    #[arg(long, value_enum, default_value = "validate")]
    scenario: ScenarioKind,
    /// App id (native scenarios).
    #[arg(long)]
    app: Option<String>,
    /// A license key (repeatable).
    #[arg(long = "key")]
    keys: Vec<String>,
    /// A file with one license key per line (e.g. written by a seeding script); with more keys
    /// than the validator caches this is the cold-key scenario.
    #[arg(long)]
    keys_file: Option<PathBuf>,
    #[arg(long)]
    hwid: Option<String>,
    #[arg(long, default_value_t = 0.1)]
    unknown_share: f64,
    #[arg(long, default_value_t = 0.01)]
    activation_share: f64,
    /// KeyAuth: app name, owner id, app secret.
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    owner: Option<String>,
    #[arg(long)]
    secret: Option<String>,
    /// KeyAuth 1.3, Keygen: the deployment's Ed25519 public key (hex).
    #[arg(long)]
    public_key: Option<String>,
    /// Panda: the service id; Junkie: the service's name or integer id.
    #[arg(long)]
    service: Option<String>,
    /// Junkie: the account's integer id (`num_id` of GET /v1/account).
    #[arg(long)]
    identifier: Option<String>,
    /// Panda: a service key (`apiKey`, POST /v1/apps/{id}/service-keys).
    #[arg(long)]
    service_key: Option<String>,
    /// KeyAuth: which step the flow repeats.
    #[arg(long, value_enum, default_value = "flow")]
    repeat: RepeatArg,
    /// Sweep: claim a new client address per request in X-Forwarded-For.
    #[arg(long)]
    spoof_addresses: bool,
    /// KeyAuth, Keygen: verify the signature of one answer in N (1: all). Verifying Ed25519
    /// costs the generator more than signing costs the server; sample when 1.3 or Keygen would
    /// be generator-bound. Panda, Junkie validations: parse one answer in N.
    #[arg(long, default_value_t = 1)]
    verify_every: u32,
}

impl ScenarioArgs {
    fn build(&self) -> anyhow::Result<Scenario> {
        let mut keys = self.keys.clone();
        if let Some(path) = &self.keys_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            keys.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string),
            );
        }
        if keys.is_empty() && !matches!(self.scenario, ScenarioKind::PandaPushExecution) {
            anyhow::bail!("give at least one --key or a --keys-file");
        }
        let keys = Arc::new(keys);
        let need = |v: &Option<String>, flag: &str| {
            v.clone()
                .ok_or_else(|| anyhow::anyhow!("this scenario needs --{flag}"))
        };
        Ok(match self.scenario {
            ScenarioKind::Validate => Scenario::Validate {
                app: need(&self.app, "app")?,
                keys,
                hwid: self.hwid.clone(),
            },
            ScenarioKind::Mixed => Scenario::Mixed {
                app: need(&self.app, "app")?,
                keys,
                unknown: self.unknown_share.clamp(0.0, 1.0),
                activations: self.activation_share.clamp(0.0, 1.0),
            },
            ScenarioKind::Keyauth12 | ScenarioKind::Keyauth13 => {
                let version = if matches!(self.scenario, ScenarioKind::Keyauth12) {
                    KeyAuthVersion::V1_2
                } else {
                    KeyAuthVersion::V1_3
                };
                let public_key = match (&self.public_key, version) {
                    (Some(hex_key), _) => {
                        let bytes: [u8; 32] = hex::decode(hex_key)
                            .ok()
                            .and_then(|b| b.try_into().ok())
                            .ok_or_else(|| {
                                anyhow::anyhow!("--public-key must be 64 hex characters")
                            })?;
                        Some(Box::new(ed25519_dalek::VerifyingKey::from_bytes(&bytes)?))
                    }
                    (None, KeyAuthVersion::V1_3) => {
                        anyhow::bail!("keyauth13 needs --public-key (GET /v1/signing-keys)")
                    }
                    (None, KeyAuthVersion::V1_2) => None,
                };
                Scenario::KeyAuth {
                    version,
                    name: need(&self.name, "name")?,
                    owner: need(&self.owner, "owner")?,
                    secret: need(&self.secret, "secret").unwrap_or_default(),
                    keys,
                    hwid: self
                        .hwid
                        .clone()
                        .unwrap_or_else(|| "keyward-loadtest-machine-0001".into()),
                    public_key,
                    repeat: match self.repeat {
                        RepeatArg::Flow => Repeat::Flow,
                        RepeatArg::License => Repeat::License,
                        RepeatArg::Check => Repeat::Check,
                    },
                    verify_every: self.verify_every.max(1),
                }
            }
            ScenarioKind::Sweep => Scenario::Sweep {
                app: need(&self.app, "app")?,
                keys,
                cursor: Arc::default(),
                spoof_addresses: self.spoof_addresses,
            },
            ScenarioKind::KeygenValidateKey => {
                let public_key = self.public_key.clone().ok_or_else(|| {
                    anyhow::anyhow!("keygen-validate-key needs --public-key (GET /v1/signing-keys)")
                })?;
                if !hex::decode(&public_key).is_ok_and(|b| b.len() == 32) {
                    anyhow::bail!("--public-key must be 64 hex characters");
                }
                Scenario::KeygenValidateKey {
                    keys,
                    public_key,
                    verify_every: self.verify_every.max(1),
                }
            }
            ScenarioKind::PandaV2Validation => Scenario::PandaV2Validation {
                service: need(&self.service, "service")?,
                keys,
                hwid: self
                    .hwid
                    .clone()
                    .unwrap_or_else(|| "keyward-loadtest-machine-0001".into()),
                verify_every: self.verify_every.max(1),
            },
            ScenarioKind::JunkieVerifyOpen => Scenario::JunkieVerifyOpen {
                service: need(&self.service, "service")?,
                identifier: need(&self.identifier, "identifier")?,
                keys,
                hwid: self
                    .hwid
                    .clone()
                    .unwrap_or_else(|| "keyward-loadtest-machine-0001".into()),
                verify_every: self.verify_every.max(1),
            },
            ScenarioKind::PandaPushExecution => Scenario::PandaPushExecution {
                api_key: need(&self.service_key, "service-key")?,
            },
        })
    }
}

#[derive(Args, Clone)]
struct OutputArgs {
    /// Name of the run in the reports.
    #[arg(long, default_value = "run")]
    label: String,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the latency-percentile plot (SVG) here.
    #[arg(long)]
    svg: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.cmd {
        Cmd::Run {
            load,
            scenario,
            output,
        } => {
            let scenario = scenario.build()?;
            let report = rt.block_on(measure(
                &load.url,
                &scenario,
                &load.config(),
                &output.label,
                true,
            ))?;
            print!("{}", report.human());
            if let Some(path) = &output.json {
                std::fs::write(path, serde_json::to_string_pretty(&report.json())?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if let Some(path) = &output.svg {
                std::fs::write(path, report.svg())
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        Cmd::BaselineServer { listen, body_size } => {
            rt.block_on(baseline::serve(listen, body_size))?
        }
        Cmd::Setup {
            control_plane,
            api_key,
            username,
            password,
            app_name,
            licenses,
            keys_file,
            database_url,
            hwid_lock,
            activated,
        } => {
            let setup = keyward_loadtest::setup::Setup {
                control_plane: &control_plane,
                api_key: api_key.as_deref(),
                username: username.as_deref(),
                password: password.as_deref(),
                app_name: &app_name,
                licenses,
                keys_file: &keys_file,
                database_url: database_url.as_deref(),
                hwid_lock,
                activated,
            };
            let out = rt.block_on(keyward_loadtest::setup::run(&setup))?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Cmd::Invalidation {
            control_plane,
            api_key,
            app,
            key,
            validators,
            rounds,
            background,
            keys_file,
            json,
        } => {
            let mut keys = vec![key.clone()];
            if let Some(path) = &keys_file {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                keys = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            let probe = keyward_loadtest::probe::Probe {
                control_plane: &control_plane,
                api_key: &api_key,
                app: &app,
                key: &key,
                validators: &validators,
                rounds,
                background,
                background_keys: Arc::new(keys),
                deadline: Duration::from_secs(10),
            };
            let out = rt.block_on(keyward_loadtest::probe::run(&probe))?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&out)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        Cmd::Suite {
            control_plane,
            username,
            password,
            database_url,
            validators,
            validator_pids,
            limiter_validator,
            server_cpus,
            connections,
            server_quota,
            quick,
            out,
            command,
            only,
            criterion_dir,
        } => {
            if let Some(unknown) = only
                .iter()
                .find(|r| !keyward_loadtest::suite::ROWS.contains(&r.as_str()))
            {
                anyhow::bail!(
                    "--only: no row {unknown:?} (rows: {})",
                    keyward_loadtest::suite::ROWS.join(", ")
                );
            }
            let limiter_validator = match limiter_validator {
                Some(s) => {
                    let (url, pid) = s
                        .rsplit_once(',')
                        .context("--limiter-validator is URL,PID")?;
                    Some((
                        url.to_string(),
                        pid.parse().context("--limiter-validator PID")?,
                    ))
                }
                None => None,
            };
            let cfg = keyward_loadtest::suite::SuiteConfig {
                control_plane,
                username,
                password,
                database_url,
                validators,
                validator_pids,
                limiter_validator,
                server_cpus,
                connections,
                server_quota: (server_quota > 0.0).then_some(server_quota),
                quick,
                out,
                command,
                only: (!only.is_empty()).then_some(only),
                criterion_dir,
            };
            rt.block_on(keyward_loadtest::suite::run(&cfg))?;
        }
        Cmd::Fleet {
            control_plane,
            username,
            password,
            database_url,
            balancer,
            balancer_name,
            validators,
            validator_pids,
            stop_replica,
            connections,
            quick,
            out,
            command,
        } => {
            let cfg = keyward_loadtest::fleet::FleetConfig {
                control_plane,
                username,
                password,
                database_url,
                balancer,
                balancer_name,
                validators,
                validator_pids,
                stop_replica,
                connections,
                quick,
                out,
                command,
            };
            rt.block_on(keyward_loadtest::fleet::run(&cfg))?;
        }
        Cmd::Compare {
            a,
            b,
            pairs,
            load,
            scenario,
            json,
        } => {
            let scenario = scenario.build()?;
            let result = rt.block_on(compare::run(
                &a,
                &b,
                &scenario,
                &load.config(),
                pairs,
                "compare",
                true,
            ))?;
            eprintln!("{}", result.summary());
            let result = result.json();
            println!("{}", serde_json::to_string_pretty(&result)?);
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&result)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(())
}
