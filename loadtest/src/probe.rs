//! `invalidation`: how long a ban takes to reach every validator. Each round bans a key through
//! the control-plane and, from the moment its 200 arrives, polls every validator until its answer
//! says `BANNED`; then the same for the unban. Optionally under background load on all of them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::engine::{self, Live, LoadConfig, Mode, Target};
use crate::scenario::Scenario;
use crate::stats::histogram;

pub struct Probe<'a> {
    pub control_plane: &'a str,
    pub api_key: &'a str,
    pub app: &'a str,
    pub key: &'a str,
    pub validators: &'a [String],
    pub rounds: usize,
    /// Background closed-loop connections per validator (0: none).
    pub background: usize,
    /// Keys the background load validates.
    pub background_keys: Arc<Vec<String>>,
    pub deadline: Duration,
}

async fn validate_code(http: &reqwest::Client, url: &str, app: &str, key: &str) -> Option<String> {
    let r = http
        .post(format!("{}/v1/validate", url.trim_end_matches('/')))
        .json(&json!({"app": app, "key": key}))
        .send()
        .await
        .ok()?;
    let v: Value = r.json().await.ok()?;
    v["code"].as_str().map(str::to_string)
}

/// Polls until the validator's code satisfies `done`; the time since `since`.
async fn seen(
    http: &reqwest::Client,
    url: &str,
    app: &str,
    key: &str,
    since: Instant,
    deadline: Duration,
    done: impl Fn(&str) -> bool,
) -> Option<Duration> {
    while since.elapsed() < deadline {
        if validate_code(http, url, app, key)
            .await
            .is_some_and(|c| done(&c))
        {
            return Some(since.elapsed());
        }
    }
    None
}

pub async fn run(p: &Probe<'_>) -> anyhow::Result<Value> {
    let http = reqwest::Client::new();
    let cp = p.control_plane.trim_end_matches('/');
    let found: Value = http
        .get(format!("{cp}/v1/licenses"))
        .query(&[("app_id", p.app), ("search", p.key)])
        .bearer_auth(p.api_key)
        .send()
        .await
        .context("finding the license")?
        .json()
        .await?;
    let Some(id) = found["items"]
        .as_array()
        .and_then(|a| a.iter().find(|l| l["key"] == p.key))
        .and_then(|l| l["id"].as_str())
        .map(str::to_string)
    else {
        bail!("no license {} in app {}", p.key, p.app);
    };

    let stop = Arc::new(AtomicBool::new(false));
    let mut background = Vec::new();
    if p.background > 0 {
        let scenario = Scenario::Validate {
            app: p.app.to_string(),
            keys: p.background_keys.clone(),
            hwid: None,
        };
        for v in p.validators {
            let target = Target::parse(v)?;
            let cfg = LoadConfig {
                connections: p.background,
                duration: Duration::from_secs(24 * 3600),
                max_requests: None,
                mode: Mode::Closed,
                timeout: Duration::from_secs(5),
                threads: Some(1),
                stop: Some(stop.clone()),
            };
            let scenario = scenario.clone();
            background.push(tokio::spawn(async move {
                engine::run(&target, &scenario, &cfg, Arc::new(Live::default())).await
            }));
        }
    }

    let mut hists: Vec<Histogram<u64>> = p.validators.iter().map(|_| histogram()).collect();
    let mut missed = vec![0u64; p.validators.len()];
    let result = async {
        for _ in 0..p.rounds.max(1) {
            for (action, banned) in [("ban", true), ("unban", false)] {
                let r = http
                    .post(format!("{cp}/v1/licenses/{id}/{action}"))
                    .bearer_auth(p.api_key)
                    .json(&json!({}))
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!(
                        "{action}: {} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    );
                }
                let since = Instant::now();
                let polls = p.validators.iter().map(|v| {
                    seen(&http, v, p.app, p.key, since, p.deadline, move |code| {
                        (code == "BANNED") == banned
                    })
                });
                let times = futures_util::future::join_all(polls).await;
                for (i, t) in times.into_iter().enumerate() {
                    match t {
                        Some(t) => {
                            let _ = hists[i].record((t.as_micros() as u64).max(1));
                        }
                        None => missed[i] += 1,
                    }
                }
            }
        }
        Ok(())
    }
    .await;
    stop.store(true, Ordering::Relaxed);
    for b in background {
        let _ = b.await;
    }
    result?;
    let per_validator: Vec<Value> = p
        .validators
        .iter()
        .zip(&hists)
        .zip(&missed)
        .map(|((v, h), m)| {
            json!({
                "validator": v,
                "changes": h.len(),
                "missed": m,
                "p50_ms": h.value_at_quantile(0.5) as f64 / 1000.0,
                "p99_ms": h.value_at_quantile(0.99) as f64 / 1000.0,
                "max_ms": h.max() as f64 / 1000.0,
            })
        })
        .collect();
    Ok(
        json!({"rounds": p.rounds, "background_connections": p.background, "validators": per_validator}),
    )
}
