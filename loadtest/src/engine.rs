//! The load engine: `connections` HTTP/1.1 keep-alive connections spread over `threads` generator
//! threads, each a single-threaded runtime of its own (no work stealing, no cross-thread wake-ups;
//! NOTES: a pinned core runs best with one), each connection with its own virtual client and
//! statistics, merged at the end. Closed loop sends the next request when the previous answer
//! arrived (maximum throughput); open loop sends on a fixed schedule and measures latency from the
//! intended send time (no coordinated omission). The threads' CPU time is measured, so every
//! report says whether the generator, not the server, may have set the pace.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::Uri;

use crate::cpu::GeneratorUse;
use crate::http1::{Connection, Failure};
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
    /// Generator threads (default: one per CPU this process may run on).
    pub threads: Option<usize>,
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
    /// The generator threads' CPU over the run (`None` where it cannot be measured).
    pub generator: Option<GeneratorUse>,
}

/// One thread per CPU the process may use (`taskset` narrows it).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
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
    let threads = cfg
        .threads
        .unwrap_or_else(default_threads)
        .clamp(1, connections);
    let gate = Gate::new(connections);
    let timeline = Arc::new(Timeline::default());
    let mut workers = Vec::with_capacity(threads);
    for t in 0..threads {
        let conns: Vec<Conn> = (t..connections)
            .step_by(threads)
            .map(|i| Conn {
                authority: target.authority.clone(),
                client: scenario.client(i as u64 + 1, &target.authority),
                stop: stop.clone(),
                budget: budget.clone(),
                max: cfg.max_requests,
                timeout: cfg.timeout,
                rate: match cfg.mode {
                    Mode::Closed => None,
                    Mode::Open { rate } => Some((rate, connections, i)),
                },
                schedule: None,
                pacer: None,
                live: live.clone(),
                unreported: 0,
                timeline: timeline.clone(),
                stats: Stats::default(),
            })
            .collect();
        let (done, finished) = tokio::sync::oneshot::channel();
        let gate = gate.clone();
        let open_loop = matches!(cfg.mode, Mode::Open { .. });
        std::thread::Builder::new()
            .name(format!("loadgen-{t}"))
            .spawn(move || {
                let _ = done.send(generate(conns, gate, open_loop));
            })?;
        workers.push(finished);
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
    let mut cpu = Some(Duration::ZERO);
    for w in workers {
        let (s, used) = w.await??;
        stats.merge(&s);
        cpu = cpu.zip(used).map(|(a, b)| a + b);
    }
    stats.timeline = timeline.seconds();
    let elapsed = start.elapsed();
    stopper.abort();
    Ok(Outcome {
        stats,
        elapsed,
        generator: cpu.map(|cpu| GeneratorUse {
            threads,
            cpu,
            elapsed,
        }),
    })
}

/// One generator thread: its connections on a runtime of its own; their merged statistics and
/// the thread's CPU time from the common start to the end.
fn generate(
    conns: Vec<Conn>,
    gate: Gate,
    open_loop: bool,
) -> anyhow::Result<(Stats, Option<Duration>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let pacer = if open_loop {
            Some(Arc::new(Pacer::start()?))
        } else {
            None
        };
        let started = {
            let gate = gate.clone();
            async move {
                gate.started().await;
                crate::cpu::thread_time()
            }
        };
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|mut c| {
                c.pacer = pacer.clone();
                tokio::spawn(c.run(gate.clone()))
            })
            .collect();
        drop(gate);
        let cpu0 = started.await;
        let mut stats = Stats::default();
        for t in tasks {
            stats.merge(&t.await?);
        }
        let used = cpu0
            .zip(crate::cpu::thread_time())
            .map(|(a, b)| b.saturating_sub(a));
        Ok((stats, used))
    })
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

    /// Returns once the clock has started (without taking part in the barrier).
    async fn started(mut self) -> Instant {
        match self.start.wait_for(Option::is_some).await {
            Ok(start) => (*start).unwrap_or_else(Instant::now),
            // The run was dropped; nothing will be measured.
            Err(_) => Instant::now(),
        }
    }

    /// A connection's side: waits for the start time.
    async fn pass(self) -> Instant {
        self.arrived.wait().await;
        self.started().await
    }
}

/// Progress counts are handed to the shared counters in batches (one cache line shared by every
/// generator thread, written per request, costs more than the request's bookkeeping).
const LIVE_BATCH: u64 = 64;

struct Conn {
    authority: String,
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
    unreported: u64,
    timeline: Arc<Timeline>,
    stats: Stats,
}

impl Conn {
    fn fail(&mut self, kind: ErrorKind) {
        self.stats.error(kind);
        self.live.errors.fetch_add(1, Ordering::Relaxed);
    }

    fn done(&mut self) {
        self.unreported += 1;
        if self.unreported >= LIVE_BATCH {
            self.live.done.fetch_add(self.unreported, Ordering::Relaxed);
            self.unreported = 0;
        }
    }

    async fn run(mut self, gate: Gate) -> Stats {
        let mut gate = Some(gate);
        let mut sent: u64 = 0;
        'reconnect: while !self.stop.load(Ordering::Relaxed) {
            let connected = Connection::open(&self.authority, self.timeout).await;
            if let Some(gate) = gate.take() {
                let start = gate.pass().await;
                self.stats.start_clock(start, self.timeline.clone());
                self.schedule = self
                    .rate
                    .map(|(rate, connections, i)| Schedule::new(start, rate, connections, i));
            }
            let mut conn = match connected {
                Ok(c) => c,
                Err(_) => {
                    self.fail(ErrorKind::Connect);
                    // A refused connection returns at once; don't spin on it.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
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
                let (step, request) = self.client.next_request();
                let answer = match tokio::time::timeout(self.timeout, conn.exchange(request)).await
                {
                    Ok(Ok(answer)) => answer,
                    Ok(Err(Failure::Protocol | Failure::Connect)) => {
                        self.fail(ErrorKind::Protocol);
                        continue 'reconnect;
                    }
                    Err(_) => {
                        self.fail(ErrorKind::Timeout);
                        continue 'reconnect;
                    }
                };
                self.stats.record(step, started, started.elapsed());
                let close = answer.close;
                if !(200..300).contains(&answer.status) {
                    let status = answer.status;
                    self.fail(ErrorKind::Status(status));
                } else {
                    match self.client.check(&answer) {
                        Ok(verified) => self.stats.verified += u64::from(verified),
                        Err(kind) => self.fail(kind),
                    }
                }
                self.done();
                if close {
                    continue 'reconnect;
                }
            }
        }
        self.live.done.fetch_add(self.unreported, Ordering::Relaxed);
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
            threads: Some(2),
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
        // Both generator threads' CPU was measured.
        let g = out.generator.unwrap();
        assert_eq!(g.threads, 2);
        assert!(g.cpu > Duration::ZERO && g.share() > 0.0, "{g:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_that_closes_after_each_answer_is_reconnected_without_errors() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from_static(b"{}")),
                        ))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .keep_alive(false)
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        let target = Target::parse(&format!("http://{addr}")).unwrap();
        let c = cfg(Mode::Closed, Duration::from_secs(30), Some(200));
        let out = run(&target, &validate_scenario(), &c, Arc::new(Live::default()))
            .await
            .unwrap();
        assert_eq!(out.stats.total().len(), 200);
        assert!(out.stats.errors.is_empty(), "{:?}", out.stats.errors);
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
