//! Read replicas (`--replica-url`) for the native API's read-only GET handlers
//! ([`crate::AppState::read_client`]).
//!
//! A read is served by a replica (round-robin among those that qualify) only when:
//! - it has replayed `required`: the primary's WAL insert position read right after every
//!   request of this process that may have written ([`track`]: every request that did not go
//!   through `read_client`), before its response left. A read that starts after a write's
//!   answer thus sees it (read-your-writes for this process's own writes);
//! - it is at most `--replica-max-lag-ms` stale: every [`POLL`], the primary's insert position is
//!   sampled, then each replica's replay position; a replica is as fresh as the newest sample it
//!   has replayed. Writes of other processes (validators, other control-plane instances) have no
//!   ordering with this process's reads on the primary either beyond commit time; on a replica
//!   they are visible within that bound (plus a poll);
//! - it answered the last poll within that bound (down or stuck replicas are skipped).
//!
//! Otherwise, or when the replica cannot hand out a connection, the primary answers (counted as a
//! fallback). A read already running on a replica is not retried on the primary: the pool hands
//! out a connection, not a query.
//!
//! Reads are thus "at least as fresh as this process's own writes and the replica's lag bound".
//! Auth, every write handler, the compat facades, exports and the background workers use the
//! primary pool (`AppState::client`), which this module never replaces.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use deadpool_postgres::Pool;
use keyward_shared::{db, StoreError};
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::AppState;

/// How often the primary's and the replicas' positions are read.
const POLL: Duration = Duration::from_millis(25);
const POLL_TIMEOUT: Duration = Duration::from_millis(500);
/// A replica whose pool cannot hand out a connection by then is skipped for this read.
const CHECKOUT_TIMEOUT: Duration = Duration::from_millis(500);
/// `required` while the position after a write is unknown (it could not be read): primary only
/// until a later sample of the primary resolves it.
const UNKNOWN: u64 = u64::MAX;

/// The primary's WAL insert position, as a number (after a commit returned, it is at or past the
/// commit record on every connection; `pg_current_wal_lsn()` may not be, under
/// `synchronous_commit = off`).
const PRIMARY_LSN_SQL: &str = "SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint";
const REPLAY_LSN_SQL: &str = "SELECT (pg_last_wal_replay_lsn() - '0/0')::bigint";

/// A position just past a page header is moved back to the page boundary: no record ends inside
/// a header, and a replica's replay position (a record's end) stops at the boundary. (8 kB WAL
/// pages: 24-byte short headers; 40-byte long ones at the start of a 16 MB segment.)
fn record_end(insert_lsn: i64) -> u64 {
    let lsn = insert_lsn.max(0) as u64;
    if lsn % (16 << 20) == 40 {
        lsn - 40
    } else if lsn % 8192 == 24 {
        lsn - 24
    } else {
        lsn
    }
}

tokio::task_local! {
    /// Set by `read_client` for the request running in this task: it did not write.
    static READ_ONLY: Cell<bool>;
}

struct Replica {
    name: String,
    pool: Pool,
    replayed: AtomicU64,
    /// Milliseconds since `Reads::origin` of the last answered poll; 0: never or down.
    seen_ms: AtomicU64,
    /// When (ms) the newest primary sample it has replayed was taken; 0: none.
    fresh_ms: AtomicU64,
}

pub struct Reads {
    primary: Pool,
    replicas: Vec<Replica>,
    required: AtomicU64,
    /// Bumped when `required` becomes [`UNKNOWN`]: a sample started before must not resolve it.
    forgets: AtomicU64,
    /// Recent (ms, position) samples of the primary, oldest first, spanning the lag bound.
    samples: Mutex<VecDeque<(u64, u64)>>,
    next: AtomicUsize,
    max_lag_ms: u64,
    origin: Instant,
    metrics: Arc<Metrics>,
}

impl Reads {
    /// `replicas`: one pool per replica URL (empty: every read on the primary).
    pub fn new(
        primary: Pool,
        replicas: Vec<(String, Pool)>,
        max_lag: Duration,
        metrics: Arc<Metrics>,
    ) -> Reads {
        Reads {
            primary,
            replicas: replicas
                .into_iter()
                .map(|(name, pool)| Replica {
                    name,
                    pool,
                    replayed: AtomicU64::new(0),
                    seen_ms: AtomicU64::new(0),
                    fresh_ms: AtomicU64::new(0),
                })
                .collect(),
            // This process has written nothing yet; freshness is the lag bound's job.
            required: AtomicU64::new(0),
            forgets: AtomicU64::new(0),
            samples: Mutex::new(VecDeque::new()),
            next: AtomicUsize::new(0),
            max_lag_ms: (max_lag.as_millis() as u64).max(1),
            origin: Instant::now(),
            metrics,
        }
    }

    pub fn enabled(&self) -> bool {
        !self.replicas.is_empty()
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64 + 1
    }

    fn require(&self, insert_lsn: i64) {
        let lsn = record_end(insert_lsn);
        let _ = self
            .required
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |cur| {
                Some(if cur == UNKNOWN { lsn } else { cur.max(lsn) })
            });
    }

    /// A replica fit for a read, round-robin among those that are.
    fn pick(&self) -> Option<&Replica> {
        let required = self.required.load(Ordering::SeqCst);
        if required == UNKNOWN {
            self.metrics.replica_fallback("behind");
            return None;
        }
        let now = self.now_ms();
        let n = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut any_up = false;
        for i in 0..n {
            let r = &self.replicas[(start + i) % n];
            let seen = r.seen_ms.load(Ordering::SeqCst);
            if seen == 0 || now.saturating_sub(seen) > self.max_lag_ms {
                continue;
            }
            any_up = true;
            let fresh = r.fresh_ms.load(Ordering::SeqCst);
            if fresh != 0
                && now.saturating_sub(fresh) <= self.max_lag_ms
                && r.replayed.load(Ordering::SeqCst) >= required
            {
                return Some(r);
            }
        }
        self.metrics
            .replica_fallback(if any_up { "behind" } else { "down" });
        None
    }

    /// A connection for a read-only request (see the module docs).
    pub async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        // Whatever answers, this request reads only: no position to read after it.
        let _ = READ_ONLY.try_with(|c| c.set(true));
        if self.replicas.is_empty() {
            return db::checkout(&self.primary).await;
        }
        if let Some(r) = self.pick() {
            match tokio::time::timeout(CHECKOUT_TIMEOUT, db::checkout(&r.pool)).await {
                Ok(Ok(c)) => {
                    self.metrics.read("replica");
                    return Ok(c);
                }
                Ok(Err(e)) => {
                    r.seen_ms.store(0, Ordering::SeqCst);
                    tracing::warn!(replica = %r.name, error = %e, "replica unavailable; reading the primary");
                    self.metrics.replica_fallback("error");
                }
                Err(_) => {
                    tracing::warn!(replica = %r.name, "replica checkout timed out; reading the primary");
                    self.metrics.replica_fallback("error");
                }
            }
        }
        self.metrics.read("primary");
        db::checkout(&self.primary).await
    }

    /// After a request that may have written: its commits are at or before the primary's
    /// current insert position, which later reads must see.
    async fn after_write(&self) {
        match self.primary_position().await {
            Ok(lsn) => self.require(lsn),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the primary's position after a write; reads use the primary");
                self.required.store(UNKNOWN, Ordering::SeqCst);
                self.forgets.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    async fn primary_position(&self) -> Result<i64, StoreError> {
        let c = db::checkout(&self.primary).await?;
        Ok(c.query_one(PRIMARY_LSN_SQL, &[]).await?.try_get(0)?)
    }

    /// Samples the primary and the replicas until shutdown.
    pub async fn poll(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        if self.replicas.is_empty() {
            return;
        }
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let forgets = self.forgets.load(Ordering::SeqCst);
            // Taken before the replicas are read, so a replica at or past it held everything
            // committed when it was taken.
            let taken = self.now_ms();
            match tokio::time::timeout(POLL_TIMEOUT, self.primary_position()).await {
                Ok(Ok(lsn)) => {
                    // Later than any failed after-write read that did not bump `forgets`
                    // since: it covers that write.
                    if self.forgets.load(Ordering::SeqCst) == forgets {
                        let _ = self.required.compare_exchange(
                            UNKNOWN,
                            record_end(lsn),
                            Ordering::SeqCst,
                            Ordering::SeqCst,
                        );
                    }
                    let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
                    samples.push_back((taken, record_end(lsn)));
                    // Keep one sample older than the bound: the oldest a fresh replica may need.
                    while samples.len() > 2
                        && samples
                            .get(1)
                            .is_some_and(|s| taken.saturating_sub(s.0) > self.max_lag_ms)
                    {
                        samples.pop_front();
                    }
                }
                other => {
                    let why = match other {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".to_string(),
                    };
                    tracing::debug!(error = why, "cannot sample the primary's position");
                }
            }
            futures_util::future::join_all(self.replicas.iter().map(|r| self.poll_one(r))).await;
            let now = self.now_ms();
            let lag = self
                .replicas
                .iter()
                .map(|r| match r.fresh_ms.load(Ordering::SeqCst) {
                    0 => now,
                    fresh => now.saturating_sub(fresh),
                })
                .max()
                .unwrap_or(0);
            self.metrics.replica_lag_ms.set(lag as i64);
        }
    }

    async fn poll_one(&self, r: &Replica) {
        let polled = tokio::time::timeout(POLL_TIMEOUT, async {
            let c = db::checkout(&r.pool).await?;
            let row = c.query_one(REPLAY_LSN_SQL, &[]).await?;
            Ok::<_, StoreError>(row.try_get::<_, Option<i64>>(0)?)
        })
        .await;
        let now = self.now_ms();
        match polled {
            Ok(Ok(Some(lsn))) => {
                let lsn = lsn.max(0) as u64;
                r.replayed.store(lsn, Ordering::SeqCst);
                let fresh = {
                    let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
                    samples
                        .iter()
                        .rev()
                        .find(|(_, at)| *at <= lsn)
                        .map(|(taken, _)| *taken)
                };
                if let Some(fresh) = fresh {
                    r.fresh_ms.fetch_max(fresh, Ordering::SeqCst);
                }
                if r.seen_ms.swap(now, Ordering::SeqCst) == 0 {
                    tracing::info!(replica = %r.name, "replica available for reads");
                }
            }
            other => {
                if r.seen_ms.swap(0, Ordering::SeqCst) != 0 {
                    let why = match other {
                        Ok(Ok(None)) => "not a replica (no replay position)".to_string(),
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".to_string(),
                    };
                    tracing::warn!(replica = %r.name, error = why, "replica skipped; reads use the primary");
                }
            }
        }
    }
}

/// Around every request: one that did not take `read_client` may have written, so the primary's
/// position is read before its answer leaves (nothing to do without replicas).
pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let reads = state.reads();
    // Probes, metrics and the API document never write: no position to read after them.
    let ops = req.method() == axum::http::Method::GET
        && matches!(
            req.uri().path(),
            "/healthz" | "/readyz" | "/metrics" | "/openapi.json"
        );
    if !reads.enabled() || ops {
        return next.run(req).await;
    }
    let (resp, read_only) = READ_ONLY
        .scope(Cell::new(false), async move {
            let resp = next.run(req).await;
            (resp, READ_ONLY.with(Cell::get))
        })
        .await;
    if !read_only {
        reads.after_write().await;
    }
    resp
}
