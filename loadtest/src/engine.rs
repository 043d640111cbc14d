//! The load engine: `connections` HTTP/1.1 keep-alive connections on the multi-threaded runtime,
//! each with its own virtual client and statistics, merged at the end. Closed loop sends the next
//! request when the previous answer arrived (maximum throughput); open loop sends on a fixed
//! schedule and measures latency from the intended send time (no coordinated omission).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::pacer::Pacer;
use crate::scenario::Scenario;
use crate::stats::{ErrorKind, Schedule, Stats, Timeline};

#[derive(Clone)]
pub struct Target {
    pub authority: String,
}

impl Target {
    pub fn parse(base: &str) -> anyhow::Result<Target> {
        let uri: Uri = base.parse()?;
        if uri.scheme_str() != Some("http") {
            anyhow::bail!("only http:// targets are supported (put TLS in front separately)");
        }
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow::anyhow!("the URL needs host:port"))?
            .to_string();
        Ok(Target { authority })
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Mode {
    Closed,
    /// Requests per second in total.
    Open {
        rate: f64,
    },
}

#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub connections: usize,
    pub duration: Duration,
    pub max_requests: Option<u64>,
    pub mode: Mode,
    pub timeout: Duration,
    /// Ends the run early when set (background load of the invalidation probe).
    pub stop: Option<Arc<AtomicBool>>,
}

/// Counters the progress display reads while the run goes on.
#[derive(Default)]
pub struct Live {
    pub done: AtomicU64,
    pub errors: AtomicU64,
}

pub struct Outcome {
    pub stats: Stats,
    pub elapsed: Duration,
}

pub async fn run(
    target: &Target,
    scenario: &Scenario,
    cfg: &LoadConfig,
    live: Arc<Live>,
) -> anyhow::Result<Outcome> {
    let stop = cfg.stop.clone().unwrap_or_default();
    let budget = Arc::new(AtomicU64::new(0));
    let connections = cfg.connections.max(1);
    let gate = Gate::new(connections);
    let pacer = match cfg.mode {
        Mode::Open { .. } => Some(Arc::new(Pacer::start()?)),
        Mode::Closed => None,
    };
    let timeline = Arc::new(Timeline::default());
    let mut tasks = Vec::with_capacity(connections);
    for i in 0..connections {
        let conn = Conn {
            target: target.clone(),
            client: scenario.client(i as u64 + 1),
            stop: stop.clone(),
            budget: budget.clone(),
            max: cfg.max_requests,
            timeout: cfg.timeout,
            rate: match cfg.mode {
                Mode::Closed => None,
                Mode::Open { rate } => Some((rate, connections, i)),
            },
            schedule: None,
            pacer: pacer.clone(),
            live: live.clone(),
            timeline: timeline.clone(),
            stats: Stats::default(),
        };
        tasks.push(tokio::spawn(conn.run(gate.clone())));
    }
    // The clock starts once every connection is open: connecting is not part of the run, and an
    // open-loop schedule started earlier would charge the handshakes to the first requests.
    let start = gate.open().await;
    let stopper = {
        let stop = stop.clone();
        let duration = cfg.duration;
        tokio::spawn(async move {
            tokio::time::sleep_until((start + duration).into()).await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let mut stats = Stats::default();
    for t in tasks {
        stats.merge(&t.await?);
    }
    stats.timeline = timeline.seconds();
    let elapsed = start.elapsed();
    stopper.abort();
    Ok(Outcome { stats, elapsed })
}

/// Holds every connection after its first connection attempt until all have made theirs, then
/// gives them one common start time.
#[derive(Clone)]
struct Gate {
    arrived: Arc<tokio::sync::Barrier>,
    start: tokio::sync::watch::Receiver<Option<Instant>>,
    set_start: Arc<tokio::sync::watch::Sender<Option<Instant>>>,
}

impl Gate {
    fn new(connections: usize) -> Gate {
        let (set_start, start) = tokio::sync::watch::channel(None);
        Gate {
            // The connections and the run itself.
            arrived: Arc::new(tokio::sync::Barrier::new(connections + 1)),
            start,
            set_start: Arc::new(set_start),
        }
    }

    /// The run's side: waits for every connection, then starts the clock.
    async fn open(&self) -> Instant {
        self.arrived.wait().await;
        let start = Instant::now();
        self.set_start.send_replace(Some(start));
        start
    }

    /// A connection's side: waits for the start time.
    async fn pass(mut self) -> Instant {
        self.arrived.wait().await;
        match self.start.wait_for(Option::is_some).await {
            Ok(start) => (*start).unwrap_or_else(Instant::now),
            // The run was dropped; nothing will be measured.
            Err(_) => Instant::now(),
        }
    }
}

struct Conn {
    target: Target,
    client: crate::scenario::Client,
    stop: Arc<AtomicBool>,
    budget: Arc<AtomicU64>,
    max: Option<u64>,
    timeout: Duration,
    /// Open loop: the total rate, the number of connections and this one's index.
    rate: Option<(f64, usize, usize)>,
    schedule: Option<Schedule>,
    pacer: Option<Arc<Pacer>>,
    live: Arc<Live>,
    timeline: Arc<Timeline>,
    stats: Stats,
}

impl Conn {
    fn fail(&mut self, kind: ErrorKind) {
        self.stats.error(kind);
        self.live.errors.fetch_add(1, Ordering::Relaxed);
    }

    async fn connect(&mut self) -> Option<http1::SendRequest<Full<Bytes>>> {
        let connect = TcpStream::connect(&self.target.authority);
        let stream = match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(s)) => s,
            Ok(Err(_)) | Err(_) => {
                self.fail(ErrorKind::Connect);
                return None;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok((sender, conn)) = http1::handshake(TokioIo::new(stream)).await else {
            self.fail(ErrorKind::Protocol);
            return None;
        };
        tokio::spawn(conn);
        Some(sender)
    }

    async fn run(mut self, gate: Gate) -> Stats {
        let mut gate = Some(gate);
        let mut sent: u64 = 0;
        'reconnect: while !self.stop.load(Ordering::Relaxed) {
            let connected = self.connect().await;
            if let Some(gate) = gate.take() {
                let start = gate.pass().await;
                self.stats.start_clock(start, self.timeline.clone());
                self.schedule = self
                    .rate
                    .map(|(rate, connections, i)| Schedule::new(start, rate, connections, i));
            }
            let Some(mut sender) = connected else {
                // A refused connection returns at once; don't spin on it.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            while !self.stop.load(Ordering::Relaxed) {
                if let Some(max) = self.max {
                    if self.budget.fetch_add(1, Ordering::Relaxed) >= max {
                        self.stop.store(true, Ordering::Relaxed);
                        break 'reconnect;
                    }
                }
                let started = match self.schedule {
                    Some(s) => {
                        let due = s.due(sent);
                        if let Some(pacer) = &self.pacer {
                            pacer.wait_until(due).await;
                        }
                        // Late: timed from the due time (the wait is the server's doing). Early
                        // (the pacer's shared expiry): timed from the actual send.
                        due.min(Instant::now())
                    }
                    None => Instant::now(),
                };
                sent += 1;
                let step = self.client.next_step();
                let mut req = Request::builder()
                    .method(Method::POST)
                    .uri(&*step.path)
                    .header("host", &self.target.authority)
                    .header("content-type", step.content_type);
                if let Some(addr) = &step.forwarded_for {
                    req = req.header("x-forwarded-for", addr);
                }
                let req = req.body(Full::new(step.body));
                let Ok(req) = req else {
                    self.fail(ErrorKind::Protocol);
                    continue;
                };
                let exchange = async {
                    let resp = sender.send_request(req).await?;
                    let (parts, body) = resp.into_parts();
                    let body = body.collect().await?.to_bytes();
                    Ok::<_, hyper::Error>((parts, body))
                };
                match tokio::time::timeout(self.timeout, exchange).await {
                    Ok(Ok((parts, body))) => {
                        self.stats.record(step.name, started, started.elapsed());
                        self.live.done.fetch_add(1, Ordering::Relaxed);
                        if !parts.status.is_success() {
                            self.fail(ErrorKind::Status(parts.status.as_u16()));
                        } else if let Err(kind) = self.client.check(&parts.headers, &body) {
                            self.fail(kind);
                        }
                    }
                    Ok(Err(_)) => {
                        self.fail(ErrorKind::Protocol);
                        continue 'reconnect;
                    }
                    Err(_) => {
                        self.fail(ErrorKind::Timeout);
                        continue 'reconnect;
                    }
                }
            }
        }
        self.stats.stop_clock();
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    fn validate_scenario() -> Scenario {
        Scenario::Validate {
            app: "00000000-0000-0000-0000-000000000000".into(),
            keys: Arc::new(vec!["K".into()]),
            hwid: None,
        }
    }

    async fn baseline() -> Target {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(crate::baseline::serve_on(
            listener,
            crate::baseline::body_of_size(64),
        ));
        Target::parse(&format!("http://{addr}")).unwrap()
    }

    fn cfg(mode: Mode, duration: Duration, max: Option<u64>) -> LoadConfig {
        LoadConfig {
            connections: 4,
            duration,
            max_requests: max,
            mode,
            timeout: Duration::from_secs(5),
            stop: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closed_loop_counts_every_request_against_the_baseline_server() {
        let target = baseline().await;
        let c = cfg(Mode::Closed, Duration::from_secs(30), Some(500));
        let live = Arc::new(Live::default());
        let out = run(&target, &validate_scenario(), &c, live.clone())
            .await
            .unwrap();
        assert_eq!(out.stats.total().len(), 500);
        assert_eq!(live.done.load(Ordering::Relaxed), 500);
        assert!(out.stats.errors.is_empty(), "{:?}", out.stats.errors);
        // Every connection handed its last second over to the run's timeline.
        let in_timeline: u64 = out.stats.timeline.iter().map(|s| s.latency.len()).sum();
        assert_eq!(in_timeline, 500);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_loop_sends_at_the_requested_rate() {
        let target = baseline().await;
        let c = cfg(
            Mode::Open { rate: 400.0 },
            Duration::from_millis(1000),
            None,
        );
        let out = run(&target, &validate_scenario(), &c, Arc::new(Live::default()))
            .await
            .unwrap();
        // 400 req/s for one second; the schedule, not the server, sets the count.
        let n = out.stats.total().len();
        assert!((380..=410).contains(&n), "{n} requests");
        assert!(out.stats.errors.is_empty(), "{:?}", out.stats.errors);
    }

    #[tokio::test]
    async fn connection_errors_are_counted_and_the_run_stops_on_time() {
        let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let target = Target::parse(&format!("http://{addr}")).unwrap();
        let c = cfg(Mode::Closed, Duration::from_millis(300), None);
        let out = run(&target, &validate_scenario(), &c, Arc::new(Live::default()))
            .await
            .unwrap();
        assert_eq!(out.stats.total().len(), 0);
        assert!(out.stats.errors.get("connect").copied().unwrap_or(0) > 0);
    }
}
