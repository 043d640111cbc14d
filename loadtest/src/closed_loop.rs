use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Clone)]
pub struct Target {
    authority: String,
    uri: Uri,
    body: Bytes,
}

impl Target {
    pub fn post_json(base: &str, path: &str, body: String) -> anyhow::Result<Target> {
        let uri: Uri = format!("{}{}", base.trim_end_matches('/'), path).parse()?;
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow::anyhow!("URL needs host:port"))?
            .to_string();
        if uri.scheme_str() != Some("http") {
            anyhow::bail!("only http:// targets are supported");
        }
        Ok(Target {
            authority,
            uri,
            body: Bytes::from(body),
        })
    }
}

pub struct Report {
    pub elapsed: Duration,
    pub hist: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
}

impl Report {
    fn throughput(&self) -> f64 {
        self.hist.len() as f64 / self.elapsed.as_secs_f64()
    }

    pub fn human(&self) -> String {
        let q = |p: f64| self.hist.value_at_quantile(p) as f64 / 1000.0;
        format!(
            "requests: {} in {:.2}s = {:.0} req/s\nlatency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}\nerrors: {:?}",
            self.hist.len(),
            self.elapsed.as_secs_f64(),
            self.throughput(),
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            self.hist.max() as f64 / 1000.0,
            self.errors
        )
    }

    pub fn json(&self) -> serde_json::Value {
        let us = |p: f64| self.hist.value_at_quantile(p);
        serde_json::json!({
            "requests": self.hist.len(),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "throughput_rps": self.throughput(),
            "latency_us": {"p50": us(0.5), "p90": us(0.9), "p99": us(0.99), "p999": us(0.999), "max": self.hist.max()},
            "errors": self.errors,
        })
    }
}

/// Runs `connections` keep-alive connections, each sending its next request as soon as the
/// previous response is read, for `duration` or `max_requests` in total.
pub async fn run(
    target: Target,
    connections: usize,
    duration: Duration,
    max_requests: Option<u64>,
) -> anyhow::Result<Report> {
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections.max(1) {
        let (target, stop, sent) = (target.clone(), stop.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            connection(target, stop, sent, max_requests).await
        }));
    }
    let deadline = tokio::time::sleep(duration);
    tokio::pin!(deadline);
    let all = futures_join(tasks);
    tokio::pin!(all);
    let results = tokio::select! {
        r = &mut all => r,
        _ = &mut deadline => { stop.store(true, Ordering::Relaxed); all.await }
    };
    let elapsed = start.elapsed();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut errors = BTreeMap::new();
    for r in results {
        let (h, e) = r?;
        hist.add(h)?;
        for (k, v) in e {
            *errors.entry(k).or_insert(0) += v;
        }
    }
    Ok(Report {
        elapsed,
        hist,
        errors,
    })
}

async fn futures_join<T>(
    tasks: Vec<tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await);
    }
    out
}

type ConnResult = (Histogram<u64>, BTreeMap<String, u64>);

async fn connection(
    target: Target,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    max: Option<u64>,
) -> ConnResult {
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| unreachable!());
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    'reconnect: while !stop.load(Ordering::Relaxed) {
        let stream = match TcpStream::connect(&target.authority).await {
            Ok(s) => s,
            Err(_) => {
                *errors.entry("connect".into()).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut sender, conn)) = http1::handshake(TokioIo::new(stream)).await else {
            *errors.entry("protocol".into()).or_default() += 1;
            continue;
        };
        tokio::spawn(conn);
        while !stop.load(Ordering::Relaxed) {
            if max.is_some_and(|m| sent.fetch_add(1, Ordering::Relaxed) >= m) {
                stop.store(true, Ordering::Relaxed);
                break 'reconnect;
            }
            let req = Request::builder()
                .method(Method::POST)
                .uri(target.uri.path())
                .header("host", &target.authority)
                .header("content-type", "application/json")
                .body(Full::new(target.body.clone()));
            let Ok(req) = req else { break 'reconnect };
            let t0 = Instant::now();
            match sender.send_request(req).await {
                Ok(resp) => {
                    let status = resp.status();
                    if resp.into_body().collect().await.is_err() {
                        *errors.entry("protocol".into()).or_default() += 1;
                        continue 'reconnect;
                    }
                    let _ = hist.record(t0.elapsed().as_micros().max(1) as u64);
                    if !status.is_success() {
                        *errors
                            .entry(format!("status_{}", status.as_u16()))
                            .or_default() += 1;
                    }
                }
                Err(_) => {
                    *errors.entry("protocol".into()).or_default() += 1;
                    continue 'reconnect;
                }
            }
        }
    }
    (hist, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_every_request_against_the_baseline_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(crate::baseline::serve_on(
            listener,
            crate::baseline::body_of_size(64),
        ));
        let target =
            Target::post_json(&format!("http://{addr}"), "/v1/validate", "{}".into()).unwrap();
        let report = run(target, 4, Duration::from_secs(30), Some(500))
            .await
            .unwrap();
        assert_eq!(report.hist.len(), 500);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let json = report.json();
        assert_eq!(json["requests"], 500);
        assert!(
            json["latency_us"]["p99"].as_u64().unwrap()
                >= json["latency_us"]["p50"].as_u64().unwrap()
        );
    }

    #[tokio::test]
    async fn counts_connection_errors_and_stops_on_time() {
        // Nothing listens on this port once the listener is dropped.
        let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let target = Target::post_json(&format!("http://{addr}"), "/", "{}".into()).unwrap();
        let report = run(target, 2, Duration::from_millis(300), None)
            .await
            .unwrap();
        assert_eq!(report.hist.len(), 0);
        assert!(report.errors.get("connect").copied().unwrap_or(0) > 0);
    }
}
