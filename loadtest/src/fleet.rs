//! `fleet`: the measurements of `deploy/fleet.sh` against N validators behind a load balancer,
//! with a streaming replica for cache misses. Given the running services, it seeds the tenants
//! (as the suite does), then measures through the balancer (throughput, p99), ban/unban
//! propagation to each validator directly, a validator SIGKILLed mid-load and the replica
//! stopped mid-load, and writes one markdown section of BENCHMARKS.md.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::engine::{LoadConfig, Mode};
use crate::report::Report;
use crate::scenario::Scenario;
use crate::suite::measure;

/// The section's heading, fixed so that `deploy/fleet.sh --write` and `deploy/bench.sh` find it.
pub const HEADING: &str = "## Fleet on one machine (`deploy/fleet.sh N`)";

/// The validators' counters the replica row reports (read before and after the run).
const COUNTERS: &[&str] = &["miss_reads_total", "replica_fallbacks_total"];

pub struct FleetConfig {
    pub control_plane: String,
    pub username: String,
    pub password: String,
    pub database_url: String,
    /// The load balancer's base URL.
    pub balancer: String,
    /// What the balancer is (for the report), e.g. "HAProxy 2.6.12".
    pub balancer_name: String,
    /// Every validator behind it, directly.
    pub validators: Vec<String>,
    /// Their process ids, same order; the last is the one killed.
    pub validator_pids: Vec<u32>,
    /// A shell command that stops the replica (run mid-load); `None`: no replica row.
    pub stop_replica: Option<String>,
    pub connections: usize,
    pub quick: bool,
    pub out: PathBuf,
    pub command: String,
}

struct Row {
    what: String,
    target: String,
    measured: String,
    met: Option<bool>,
}

impl FleetConfig {
    fn secs(&self, full: f64) -> Duration {
        Duration::from_secs_f64(if self.quick {
            (full / 3.0).max(3.0)
        } else {
            full
        })
    }

    fn load(&self, seconds: f64, mode: Mode) -> LoadConfig {
        LoadConfig {
            connections: self.connections,
            duration: self.secs(seconds),
            max_requests: None,
            mode,
            timeout: Duration::from_secs(5),
            threads: None,
            stop: None,
        }
    }
}

fn ms(h: &hdrhistogram::Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn errors(r: &Report) -> String {
    if r.stats.errors.is_empty() {
        return "0".into();
    }
    let kinds: Vec<String> = r
        .stats
        .errors
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    format!("{} ({})", r.stats.error_count(), kinds.join(", "))
}

/// Requests per second over the run's full seconds in `[from, to)` (by send time).
fn rate_between(r: &Report, from: usize, to: usize) -> f64 {
    let to = to.min(r.elapsed.as_secs() as usize);
    if to <= from {
        return 0.0;
    }
    let n: u64 = r
        .stats
        .timeline
        .iter()
        .skip(from)
        .take(to - from)
        .map(|s| s.latency.len())
        .sum();
    n as f64 / (to - from) as f64
}

/// The seconds of the run that had errors, as "s3: 2, s4: 1".
fn error_seconds(r: &Report) -> String {
    let list: Vec<String> = r
        .stats
        .timeline
        .iter()
        .enumerate()
        .filter(|(_, s)| s.errors > 0)
        .map(|(i, s)| format!("s{i}: {}", s.errors))
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

/// The sum over the validators of every Prometheus sample whose name contains one of `parts`,
/// by name (the cache misses' reads by source and the replica's fallbacks by reason).
async fn metric_sums(
    http: &reqwest::Client,
    validators: &[String],
    parts: &[&str],
) -> std::collections::BTreeMap<String, f64> {
    let mut sums = std::collections::BTreeMap::new();
    for v in validators {
        let Ok(resp) = http.get(format!("{v}/metrics")).send().await else {
            continue;
        };
        let Ok(text) = resp.text().await else {
            continue;
        };
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            if let Some((name, value)) = line.rsplit_once(' ') {
                if parts.iter().any(|p| name.contains(p)) {
                    if let Ok(x) = value.parse::<f64>() {
                        *sums.entry(name.to_string()).or_default() += x;
                    }
                }
            }
        }
    }
    sums
}

/// Runs `scenario` through the balancer and, `at` into the run, `action` (a SIGKILL, a stop):
/// the report and the second of the run the action was taken in.
async fn with_action_midway(
    cfg: &FleetConfig,
    scenario: &Scenario,
    load: &LoadConfig,
    label: &str,
    at: Duration,
    action: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<(Report, usize)> {
    let started = std::time::Instant::now();
    let run = measure(&cfg.balancer, scenario, load, label);
    tokio::pin!(run);
    tokio::select! {
        r = &mut run => bail!("{label}: the run ended before the action ({:?})", r?.elapsed),
        _ = tokio::time::sleep(at) => {}
    }
    // The run's clock starts once its connections are open (milliseconds after `started`).
    let second = started.elapsed().as_secs() as usize;
    action()?;
    Ok((run.await?, second))
}

pub async fn run(cfg: &FleetConfig) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let cp = cfg.control_plane.trim_end_matches('/').to_string();
    let lb = cfg.balancer.trim_end_matches('/').to_string();
    let n = cfg.validators.len();
    if n < 2 || cfg.validator_pids.len() != n {
        bail!("a fleet is at least 2 validators, each with its --validator-pid");
    }
    let dir = std::env::temp_dir().join(format!("keyward-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut rows = Vec::new();

    // Tenants as the suite's: 1000 keys through REST (cache hits), and a big activated app
    // inserted by PostgreSQL (cache misses: every key once, so each request is a miss).
    let setup = crate::setup::Setup {
        control_plane: &cp,
        api_key: None,
        username: Some(&cfg.username),
        password: Some(&cfg.password),
        app_name: "fleet",
        licenses: 1000,
        keys_file: &dir.join("fleet.txt"),
        database_url: None,
        hwid_lock: false,
        activated: false,
    };
    let tenant = crate::setup::run(&setup).await?;
    let cold_count = if cfg.quick { 100_000 } else { 400_000 };
    let cold = crate::setup::run(&crate::setup::Setup {
        app_name: "fleet-cold",
        licenses: cold_count,
        keys_file: &dir.join("cold.txt"),
        database_url: Some(&cfg.database_url),
        activated: true,
        ..setup
    })
    .await?;
    let read_keys = |p: PathBuf| -> anyhow::Result<Arc<Vec<String>>> {
        Ok(Arc::new(
            std::fs::read_to_string(p)?
                .lines()
                .map(str::to_string)
                .collect(),
        ))
    };
    let keys = read_keys(dir.join("fleet.txt"))?;
    let cold_keys = read_keys(dir.join("cold.txt"))?;
    let app = tenant["app_id"].as_str().context("app id")?.to_string();
    let cold_app = cold["app_id"].as_str().context("app id")?.to_string();
    let hits = Scenario::Validate {
        app: app.clone(),
        keys: keys.clone(),
        hwid: None,
    };

    // 1. Cache hits through the balancer: warm every validator's cache, then a closed loop
    // (throughput), an open loop at half of it (latency), and one validator alone for scale.
    for v in &cfg.validators {
        let sweep = Scenario::Sweep {
            app: app.clone(),
            keys: keys.clone(),
            cursor: Arc::default(),
            spoof_addresses: false,
        };
        let warm = LoadConfig {
            max_requests: Some(keys.len() as u64),
            duration: Duration::from_secs(60),
            ..cfg.load(1.0, Mode::Closed)
        };
        let r = measure(v, &sweep, &warm, "warm-up").await?;
        if r.stats.error_count() > 0 {
            bail!("warm-up of {v}: {:?}", r.stats.errors);
        }
    }
    let closed = measure(&lb, &hits, &cfg.load(15.0, Mode::Closed), "through the LB").await?;
    let half = (closed.throughput() / 2.0).max(100.0);
    let open = measure(
        &lb,
        &hits,
        &cfg.load(15.0, Mode::Open { rate: half }),
        "through the LB, open loop",
    )
    .await?;
    let direct = measure(
        &cfg.validators[0],
        &hits,
        &cfg.load(10.0, Mode::Closed),
        "one validator directly",
    )
    .await?;
    let (ct, ot, dt) = (
        closed.stats.total(),
        open.stats.total(),
        direct.stats.total(),
    );
    rows.push(Row {
        what: format!(
            "Native validate through {} over {n} validators (round-robin, keep-alive to upstreams), 1000 keys, caches warm; {} connections",
            cfg.balancer_name, cfg.connections
        ),
        target: "reported: throughput and p99 through the balancer, errors 0".into(),
        measured: format!(
            "closed loop **{:.0} req/s** (p50 {:.2}, p99 {:.2} ms; {}); open loop at 50 % ({half:.0} req/s): p50 {:.2}, **p99 {:.2} ms**, p99.9 {:.2} ms; one validator directly, same load: {:.0} req/s (p99 {:.2} ms); errors {} / {} / {}",
            closed.throughput(),
            ms(&ct, 0.5),
            ms(&ct, 0.99),
            closed.generator_summary(),
            ms(&ot, 0.5),
            ms(&ot, 0.99),
            ms(&ot, 0.999),
            direct.throughput(),
            ms(&dt, 0.99),
            errors(&closed),
            errors(&open),
            errors(&direct),
        ),
        met: Some(
            closed.stats.error_count() + open.stats.error_count() + direct.stats.error_count() == 0,
        ),
    });

    // 2. Ban/unban propagation to every validator, each polled directly, under load.
    let api_key: Value = {
        let token: Value = http
            .post(format!("{cp}/v1/auth/login"))
            .json(&json!({"username": cfg.username, "password": cfg.password}))
            .send()
            .await?
            .json()
            .await?;
        let token = token["token"].as_str().context("login token")?;
        http.post(format!("{cp}/v1/api-keys"))
            .bearer_auth(token)
            .json(&json!({"name": "fleet-probe", "scopes": ["*"]}))
            .send()
            .await?
            .json()
            .await?
    };
    let probe = crate::probe::Probe {
        control_plane: &cp,
        api_key: api_key["key"].as_str().context("api key")?,
        app: &app,
        key: &keys[0],
        validators: &cfg.validators,
        rounds: if cfg.quick { 5 } else { 20 },
        background: 2,
        background_keys: keys.clone(),
        deadline: Duration::from_secs(10),
    };
    let prop = crate::probe::run(&probe).await?;
    let per: Vec<&Value> = prop["validators"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let p99s: Vec<f64> = per
        .iter()
        .map(|v| v["p99_ms"].as_f64().unwrap_or(f64::MAX))
        .collect();
    let worst = p99s.iter().copied().fold(0.0, f64::max);
    let missed: u64 = per.iter().map(|v| v["missed"].as_u64().unwrap_or(0)).sum();
    rows.push(Row {
        what: format!(
            "Ban/unban propagation to each of the {n} validators (polled directly, 2 background connections each), {} changes",
            probe.rounds * 2
        ),
        target: "p99 ≤ 50 ms at every validator".into(),
        measured: format!(
            "worst validator p99 **{worst:.2} ms**; per validator p99 {} ms; missed {missed}",
            p99s.iter()
                .map(|p| format!("{p:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        met: Some(worst <= 50.0 && missed == 0),
    });

    // 3. The replica stopped mid-load: every request a cache miss (each cold key once), so the
    // validators read PostgreSQL throughout; after the stop, misses must fall back to the primary.
    if let Some(stop) = &cfg.stop_replica {
        let sweep = Scenario::Sweep {
            app: cold_app.clone(),
            keys: cold_keys.clone(),
            cursor: Arc::default(),
            spoof_addresses: false,
        };
        let load = cfg.load(20.0, Mode::Closed);
        let at = load.duration.mul_f64(0.4);
        let before = metric_sums(&http, &cfg.validators, COUNTERS).await;
        let (r, second) = with_action_midway(
            cfg,
            &sweep,
            &load,
            "misses through the LB, replica stopped midway",
            at,
            || {
                eprintln!("fleet: stopping the replica");
                let status = Command::new("bash").arg("-c").arg(stop).status()?;
                if !status.success() {
                    bail!("stopping the replica: {status}");
                }
                Ok(())
            },
        )
        .await?;
        let after = metric_sums(&http, &cfg.validators, COUNTERS).await;
        let counters: Vec<String> = after
            .iter()
            .map(|(k, v)| {
                format!(
                    "`{k}` +{:.0}",
                    v - before.get(k).copied().unwrap_or_default()
                )
            })
            .collect();
        let end = r.elapsed.as_secs() as usize;
        let (pre, post) = (
            rate_between(&r, 1, second),
            rate_between(&r, second + 2, end),
        );
        let total = r.stats.total();
        let wrapped = r.requests() as usize > cold_keys.len();
        rows.push(Row {
            what: format!(
                "Replica stopped (`pg_ctl stop -m fast`) {:.0} s into a closed loop of cache misses through the balancer ({} activated licenses, each key once{})",
                at.as_secs_f64(),
                cold_keys.len(),
                if wrapped { "; the sweep wrapped, later requests were hits" } else { "" }
            ),
            target: "misses fall back to the primary: errors 0 (or only requests in flight on the replica)".into(),
            measured: format!(
                "errors **{}** (by second: {}); {:.0} req/s before the stop → {:.0} req/s after (whole run {:.0} req/s, p99 {:.2} ms); the validators' counters over the run: {}",
                errors(&r),
                error_seconds(&r),
                pre,
                post,
                r.throughput(),
                ms(&total, 0.99),
                if counters.is_empty() { "none exported".into() } else { counters.join(", ") }
            ),
            met: Some(r.stats.error_count() <= cfg.connections as u64),
        });
    }

    // 4. One validator SIGKILLed in a closed loop through the balancer (cache hits): what the
    // clients see is at most the requests in flight on it, unless the balancer retries them.
    {
        let victim = *cfg.validator_pids.last().context("pids")?;
        let load = cfg.load(20.0, Mode::Closed);
        let at = load.duration.mul_f64(0.4);
        let (r, second) = with_action_midway(
            cfg,
            &hits,
            &load,
            "through the LB, one validator SIGKILLed midway",
            at,
            || {
                eprintln!("fleet: SIGKILL to validator pid {victim}");
                let status = Command::new("bash")
                    .args(["-c", "kill -KILL \"$1\"", "kill", &victim.to_string()])
                    .status()?;
                if !status.success() {
                    bail!("kill -KILL {victim}: {status}");
                }
                Ok(())
            },
        )
        .await?;
        let end = r.elapsed.as_secs() as usize;
        let (pre, post) = (
            rate_between(&r, 1, second),
            rate_between(&r, second + 2, end),
        );
        // A closed loop through round-robin holds about connections ÷ N requests on each server.
        let in_flight = cfg.connections.div_ceil(n) as u64;
        let total = r.stats.total();
        rows.push(Row {
            what: format!(
                "One of the {n} validators SIGKILLed {:.0} s into a closed loop through the balancer ({} connections, cache hits)",
                at.as_secs_f64(),
                cfg.connections
            ),
            target: format!(
                "client errors ≤ requests in flight on it (≈ {in_flight}); the balancer retries them or marks it down"
            ),
            measured: format!(
                "errors **{}** (by second: {}); {:.0} req/s before the kill → {:.0} req/s on {} validators after (p99 over the run {:.2} ms)",
                errors(&r),
                error_seconds(&r),
                pre,
                post,
                n - 1,
                ms(&total, 0.99),
            ),
            met: Some(r.stats.error_count() <= in_flight),
        });
    }

    write_report(cfg, &rows)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn write_report(cfg: &FleetConfig, rows: &[Row]) -> anyhow::Result<()> {
    let mut md = String::new();
    let _ = writeln!(md, "{HEADING}\n");
    let _ = writeln!(
        md,
        "Written by `deploy/fleet.sh --write` (do not edit by hand; `deploy/bench.sh` carries it over).\n"
    );
    let _ = writeln!(md, "- Machine: {}", crate::suite::machine());
    let _ = writeln!(md, "- Command: `{}`", cfg.command);
    let _ = writeln!(
        md,
        "- Setup: {} build; control-plane, {} validators and {} on one machine, all on 127.0.0.1; PostgreSQL primary (durable, shared_buffers 1 GB) and a streaming replica the validators read cache misses from; load generator {} keep-alive connections{}. Every process shares this machine's cores: a fleet here measures the balancer's and the fleet's mechanics (retries, fallbacks, propagation), not N machines' capacity.\n",
        if cfg!(debug_assertions) {
            "DEBUG (figures meaningless)"
        } else {
            "release"
        },
        cfg.validators.len(),
        cfg.balancer_name,
        cfg.connections,
        if cfg.quick { "; QUICK run (short phases)" } else { "" },
    );
    let _ = writeln!(md, "| Measurement | Target | Measured | |");
    let _ = writeln!(md, "|---|---|---|---|");
    for r in rows {
        let verdict = match r.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "",
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {verdict} |",
            r.what, r.target, r.measured
        );
    }
    std::fs::write(&cfg.out, md).with_context(|| format!("writing {}", cfg.out.display()))?;
    Ok(())
}
