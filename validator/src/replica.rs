//! Read replicas (`--replica-url`): where cache misses read, never staler than the invalidations
//! this validator has already applied.
//!
//! Without a replica every read goes to the primary's pool, as before ([`Reads::read`] checks
//! one empty vector first). With replicas, a miss reads from one (round-robin) only when:
//! - its replay LSN, polled every [`POLL`], is at or past `required`: the primary's WAL insert
//!   position read by the listener *after* receiving a batch of notifications and *before*
//!   applying it (a notification is delivered after its transaction's commit record was
//!   inserted, so that position is at or past the commit; `pg_current_wal_lsn()` is not, under
//!   `synchronous_commit = off` the commit may not be written yet). A miss that starts after an
//!   invalidation was applied thus sees the invalidating commit; one that started before is
//!   dropped from the cache by the generation guards, exactly as without replicas;
//! - no local write (an activation, a session, …: [`Health::local_write`]) is pending: after
//!   one, reads go to the primary until the poller has read the primary's insert position again
//!   (read-your-writes for this validator's own changes);
//! - it answered a poll within `--replica-max-lag-ms` (down or stuck replicas are skipped).
//!
//! Otherwise, or when the replica fails the read, the primary answers (counted as a fallback).
//! LISTEN and every write stay on the primary pool, which this module never hands out for them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use keyward_shared::{db, StoreError};
use tokio::sync::watch;

use crate::health::Health;
use crate::metrics::Metrics;

/// How often replicas' replay positions are read.
const POLL: Duration = Duration::from_millis(25);
const POLL_TIMEOUT: Duration = Duration::from_millis(500);
/// `required` while the primary's position is unknown (the listener lost it): primary only.
const UNKNOWN: u64 = u64::MAX;

/// The primary's WAL insert position, as a number. A position just past a page header (24
/// bytes, on the default 8 kB WAL pages) is moved back to the page boundary: no record ends
/// inside a header, and a replica's replay position (a record's end) stops at the boundary.
pub const PRIMARY_LSN_SQL: &str = "(pg_current_wal_insert_lsn() - '0/0')::bigint";

pub fn record_end(insert_lsn: i64) -> u64 {
    let lsn = insert_lsn.max(0) as u64;
    if lsn % 8192 == 24 {
        lsn - 24
    } else {
        lsn
    }
}

struct Replica {
    name: String,
    pool: Pool,
    replayed: AtomicU64,
    /// Milliseconds since `Reads::origin` of the last answered poll; 0: never or down.
    seen_ms: AtomicU64,
    /// Since when (ms) its replay has been behind `required`; 0: caught up.
    behind_since_ms: AtomicU64,
}

pub struct Reads {
    primary: Pool,
    replicas: Vec<Replica>,
    required: AtomicU64,
    /// `Health::local_writes` up to which the primary position has been read since.
    resolved_writes: AtomicU64,
    next: AtomicUsize,
    max_lag_ms: u64,
    origin: Instant,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
}

impl Reads {
    /// `replicas`: one pool per replica URL (empty: every read on the primary).
    pub fn new(
        primary: Pool,
        replicas: Vec<(String, Pool)>,
        max_lag: Duration,
        health: Arc<Health>,
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
                    behind_since_ms: AtomicU64::new(0),
                })
                .collect(),
            // Nothing may be read from a replica before the listener's first position.
            required: AtomicU64::new(UNKNOWN),
            resolved_writes: AtomicU64::new(0),
            next: AtomicUsize::new(0),
            max_lag_ms: max_lag.as_millis() as u64,
            origin: Instant::now(),
            health,
            metrics,
        }
    }

    pub fn enabled(&self) -> bool {
        !self.replicas.is_empty()
    }

    /// The listener read the primary at `insert_lsn` after receiving invalidations and before
    /// applying them (or before a flush): later misses must see at least that.
    pub fn require(&self, insert_lsn: i64) {
        let lsn = record_end(insert_lsn);
        // After an unknown position (only a reconnect's flush resolves it) every earlier
        // position is ≤ this one.
        let _ = self
            .required
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |cur| {
                Some(if cur == UNKNOWN { lsn } else { cur.max(lsn) })
            });
    }

    /// The listener could not read the primary's position: primary only until it can.
    pub fn forget_position(&self) {
        self.required.store(UNKNOWN, Ordering::SeqCst);
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64 + 1
    }

    /// A replica fresh enough for a miss, round-robin among those that are.
    fn pick(&self) -> Option<&Replica> {
        let required = self.required.load(Ordering::SeqCst);
        if required == UNKNOWN
            || self.health.local_writes() > self.resolved_writes.load(Ordering::SeqCst)
        {
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
            if r.replayed.load(Ordering::SeqCst) >= required {
                return Some(r);
            }
        }
        self.metrics
            .replica_fallback(if any_up { "behind" } else { "down" });
        None
    }

    /// Runs a read on a fresh replica, or on the primary (see the module docs).
    /// (`f` may run twice: on a replica that fails, then on the primary.)
    pub async fn read<T, Fut>(
        &self,
        f: impl Fn(deadpool_postgres::Client) -> Fut,
    ) -> Result<T, StoreError>
    where
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        if self.replicas.is_empty() {
            return f(db::checkout(&self.primary).await?).await;
        }
        if let Some(r) = self.pick() {
            let answer = match db::checkout(&r.pool).await {
                Ok(c) => f(c).await,
                Err(e) => Err(e),
            };
            match answer {
                Ok(v) => {
                    self.metrics.miss_read("replica");
                    return Ok(v);
                }
                Err(e) => {
                    // Down, or a query cancelled by recovery: the primary answers instead.
                    if e.is_unavailable() {
                        r.seen_ms.store(0, Ordering::SeqCst);
                    }
                    tracing::warn!(replica = %r.name, error = %e, "replica read failed; reading the primary");
                    self.metrics.replica_fallback("error");
                }
            }
        }
        self.metrics.miss_read("primary");
        f(db::checkout(&self.primary).await?).await
    }

    /// Polls replicas' replay positions and resolves local writes until shutdown.
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
            let writes = self.health.local_writes();
            if writes > self.resolved_writes.load(Ordering::SeqCst) {
                // Read after the write's commit (the counter is bumped after it), so this
                // position covers it.
                match self.primary_position().await {
                    Ok(lsn) => {
                        self.require(lsn);
                        self.resolved_writes.fetch_max(writes, Ordering::SeqCst);
                    }
                    Err(e) => tracing::debug!(error = %e, "cannot read the primary's position"),
                }
            }
            futures_util::future::join_all(self.replicas.iter().map(|r| self.poll_one(r))).await;
            let now = self.now_ms();
            let lag = self
                .replicas
                .iter()
                .map(|r| match r.behind_since_ms.load(Ordering::SeqCst) {
                    0 => 0,
                    since => now.saturating_sub(since),
                })
                .max()
                .unwrap_or(0);
            self.metrics.replica_lag_ms.set(lag as i64);
        }
    }

    async fn primary_position(&self) -> Result<i64, StoreError> {
        let c = db::checkout(&self.primary).await?;
        let row = c
            .query_one(&format!("SELECT {PRIMARY_LSN_SQL}"), &[])
            .await?;
        Ok(row.try_get(0)?)
    }

    async fn poll_one(&self, r: &Replica) {
        let polled = tokio::time::timeout(POLL_TIMEOUT, async {
            let c = db::checkout(&r.pool).await?;
            let row = c
                .query_one("SELECT (pg_last_wal_replay_lsn() - '0/0')::bigint", &[])
                .await?;
            Ok::<_, StoreError>(row.try_get::<_, Option<i64>>(0)?)
        })
        .await;
        let now = self.now_ms();
        match polled {
            Ok(Ok(Some(lsn))) => {
                let lsn = lsn.max(0) as u64;
                r.replayed.store(lsn, Ordering::SeqCst);
                if r.seen_ms.swap(now, Ordering::SeqCst) == 0 {
                    tracing::info!(replica = %r.name, "replica available for cache misses");
                }
                let required = self.required.load(Ordering::SeqCst);
                if lsn >= required {
                    r.behind_since_ms.store(0, Ordering::SeqCst);
                } else {
                    let _ = r.behind_since_ms.compare_exchange(
                        0,
                        now,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                }
            }
            other => {
                if r.seen_ms.swap(0, Ordering::SeqCst) != 0 {
                    let why = match other {
                        Ok(Ok(None)) => "not a replica (no replay position)".to_string(),
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".to_string(),
                    };
                    tracing::warn!(replica = %r.name, error = why, "replica skipped; misses read the primary");
                }
            }
        }
    }
}
