//! Validations per app, UTC minute and outcome, for the Overview's chart
//! (`store::validation_buckets`): every verdict for a known app adds one to an in-memory count
//! (one map entry per app, minute and outcome: no I/O on the request path), and the usage
//! write-behind writes them every flush interval, paced, and at shutdown.
//!
//! Bounded: beyond [`MAX_ENTRIES`] buckets a validation that would need a new one is dropped
//! and counted (`validation_counts_dropped`). Repeated outcomes of an app in a minute cost no
//! room, so only a flood of apps or a long database outage reaches it. A failed write keeps its
//! counts for the next flush (counted in `validation_counts_write_failures`).

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use deadpool_postgres::Pool;
use keyward_shared::model::App;
use keyward_shared::store::validation_buckets::{self, Count};
use keyward_shared::verdict::Code;
use keyward_shared::StoreError;
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::pace::Pace;

/// Buckets buffered at most (≈ 100 bytes each).
const MAX_ENTRIES: usize = 100_000;
/// Buckets per statement.
const CHUNK: usize = 1_000;

/// App, minute (seconds since the epoch ÷ 60) and outcome (a verdict code as it answers it).
type Key = (Uuid, i64, &'static str);
/// The app's account, and the validations counted.
type Value = (Uuid, i64);
/// Counted under the shard's read lock: validations of one app (the common case) share a bucket
/// and must not queue for its write lock.
type Pending = DashMap<Key, (Uuid, AtomicI64)>;

pub struct ValidationCounts {
    /// Shared with the blocking thread that drains it.
    pending: Arc<Pending>,
    /// Buckets in `pending` (what the bound is checked against without locking every shard).
    entries: Arc<AtomicUsize>,
    limit: usize,
    chunk: usize,
    metrics: Arc<Metrics>,
    /// Hurried at shutdown: a flush under way writes its remaining statements without pausing.
    pace: Pace,
}

impl ValidationCounts {
    pub fn new(metrics: Arc<Metrics>) -> ValidationCounts {
        ValidationCounts::with_limits(metrics, MAX_ENTRIES, CHUNK)
    }

    fn with_limits(metrics: Arc<Metrics>, limit: usize, chunk: usize) -> ValidationCounts {
        ValidationCounts {
            pending: Arc::new(DashMap::new()),
            entries: Arc::new(AtomicUsize::new(0)),
            limit,
            chunk: chunk.max(1),
            metrics,
            pace: Pace::default(),
        }
    }

    /// One verdict of the core's rules for `app`.
    pub fn verdict(&self, app: &App, code: Code, at: DateTime<Utc>) {
        self.record(app.account_id, app.id, at, code.as_str());
    }

    /// One validation of `app` with `outcome`, a verdict code as its facade spells it
    /// (upper-case; written in lower case).
    pub fn record(&self, account: Uuid, app: Uuid, at: DateTime<Utc>, outcome: &'static str) {
        self.add((app, at.timestamp().div_euclid(60), outcome), account, 1);
    }

    fn add(&self, key: Key, account: Uuid, n: i64) {
        if let Some(bucket) = self.pending.get(&key) {
            bucket.1.fetch_add(n, Ordering::Relaxed);
            return;
        }
        match self.pending.entry(key) {
            Entry::Occupied(e) => {
                e.get().1.fetch_add(n, Ordering::Relaxed);
            }
            Entry::Vacant(e) => {
                if self.entries.fetch_add(1, Ordering::AcqRel) >= self.limit {
                    self.entries.fetch_sub(1, Ordering::AcqRel);
                    self.metrics.validation_counts_dropped.inc_by(n as u64);
                    return;
                }
                e.insert((account, AtomicI64::new(n)));
                self.metrics.validation_counts_backlog.inc();
            }
        }
    }

    /// Buckets not yet written.
    #[cfg(test)]
    fn backlog(&self) -> usize {
        self.entries.load(Ordering::Acquire)
    }

    /// Writes everything buffered in key order (so validators writing the same buckets lock
    /// them in the same order), [`CHUNK`] buckets per statement spread evenly over `spread`
    /// (zero at shutdown). Returns the buckets written; on a failure the unwritten counts are
    /// kept for the next flush.
    pub async fn flush(&self, pool: &Pool, spread: Duration) -> Result<u64, StoreError> {
        let (pending, entries) = (self.pending.clone(), self.entries.clone());
        // Off the async workers: a full buffer takes milliseconds to drain and sort.
        let batch =
            match tokio::task::spawn_blocking(move || drain_sorted(&pending, &entries)).await {
                Ok(batch) => batch,
                // Only if the runtime is shutting down; whatever was drained is lost with it.
                Err(e) => {
                    tracing::warn!(error = %e, "validation counts could not be collected");
                    return Ok(0);
                }
            };
        if batch.is_empty() {
            return Ok(0);
        }
        self.metrics
            .validation_counts_backlog
            .dec_by(batch.len() as i64);
        let chunks = batch.len().div_ceil(self.chunk);
        let gap = spread / u32::try_from(chunks).unwrap_or(u32::MAX);
        let started = tokio::time::Instant::now();
        let mut written = 0;
        for (i, chunk) in batch.chunks(self.chunk).enumerate() {
            if i > 0 {
                self.pace.pause_until(started + gap * i as u32).await;
            }
            match write(pool, chunk).await {
                Ok(n) => written += n,
                Err(e) => {
                    self.metrics.validation_counts_write_failures.inc();
                    for &(key, (account, n)) in &batch[i * self.chunk..] {
                        self.add(key, account, n);
                    }
                    return Err(e);
                }
            }
        }
        Ok(written)
    }

    /// Ends the pacing of flushes (shutdown).
    pub fn hurry(&self) {
        self.pace.hurry();
    }
}

async fn write(pool: &Pool, chunk: &[(Key, Value)]) -> Result<u64, StoreError> {
    let counts: Vec<Count> = chunk
        .iter()
        .map(|&((app, minute, outcome), (account, n))| Count {
            account_id: account,
            app_id: app,
            minute: DateTime::from_timestamp(minute.saturating_mul(60), 0).unwrap_or_default(),
            outcome: outcome.to_ascii_lowercase(),
            n,
        })
        .collect();
    let client = keyward_shared::db::checkout(pool).await?;
    validation_buckets::record(&*client, &counts).await
}

/// Everything pending, in key order (see [`ValidationCounts::flush`]).
fn drain_sorted(pending: &Pending, entries: &AtomicUsize) -> Vec<(Key, Value)> {
    let keys: Vec<Key> = pending.iter().map(|e| *e.key()).collect();
    // The removal waits for counts under way on the bucket; later ones start a new one.
    let mut batch: Vec<(Key, Value)> = keys
        .into_iter()
        .filter_map(|k| pending.remove(&k))
        .map(|(k, (account, n))| (k, (account, n.into_inner())))
        .collect();
    entries.fetch_sub(batch.len(), Ordering::AcqRel);
    if !batch.is_empty() {
        // A burst of distinct apps must not keep its table's capacity for good.
        pending.shrink_to_fit();
        batch.sort_unstable_by_key(|&(key, _)| key);
    }
    batch
}

#[cfg(test)]
mod tests {
    use keyward_shared::db;
    use keyward_shared::testing::{tenant, TestDb};

    use super::*;

    async fn buckets(c: &tokio_postgres::Client, app: Uuid) -> Vec<(String, i64)> {
        c.query(
            "SELECT outcome, n FROM validation_buckets WHERE app_id = $1 ORDER BY outcome",
            &[&app],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    }

    #[test]
    fn full_buffers_drop_new_buckets_but_still_count_known_ones() {
        let metrics = Arc::new(Metrics::new());
        let counts = ValidationCounts::with_limits(metrics.clone(), 2, 10);
        let (account, app) = (Uuid::new_v4(), Uuid::new_v4());
        let now = Utc::now();
        counts.record(account, app, now, "VALID");
        counts.record(account, app, now, "BANNED");
        counts.record(account, app, now, "EXPIRED");
        counts.record(account, app, now, "VALID");
        assert_eq!(counts.backlog(), 2);
        assert_eq!(metrics.validation_counts_dropped.get(), 1);
        assert_eq!(metrics.validation_counts_backlog.get(), 2);
        let drained = drain_sorted(&counts.pending, &counts.entries);
        let valid = drained.iter().find(|(k, _)| k.2 == "VALID").unwrap();
        assert_eq!(valid.1 .1, 2);
        assert_eq!(counts.backlog(), 0);
    }

    #[tokio::test]
    async fn a_failed_flush_keeps_its_counts_and_the_next_writes_them_in_chunks() {
        let db = TestDb::new().await;
        let mut c = db.client().await;
        let t = tenant(&mut c, false).await;
        let metrics = Arc::new(Metrics::new());
        let counts = ValidationCounts::with_limits(metrics.clone(), 100, 1);
        let now = Utc::now();
        for code in [Code::Valid, Code::Valid, Code::Banned, Code::HwidMismatch] {
            counts.verdict(&t.app, code, now);
        }
        // Nothing listens on port 1.
        let nowhere = db::pool(
            db::pg_config("postgres://keyward@127.0.0.1:1/none", "counts-test").unwrap(),
            1,
        );
        assert!(counts.flush(&nowhere, Duration::ZERO).await.is_err());
        assert_eq!(metrics.validation_counts_write_failures.get(), 1);
        assert_eq!(counts.backlog(), 3, "kept for the next flush");
        assert!(buckets(&c, t.app.id).await.is_empty());

        counts.verdict(&t.app, Code::Valid, now);
        let pool = db::pool(db::pg_config(&db.url, "counts-test").unwrap(), 1);
        assert_eq!(counts.flush(&pool, Duration::ZERO).await.unwrap(), 3);
        assert_eq!(
            buckets(&c, t.app.id).await,
            vec![
                ("banned".to_string(), 1),
                ("hwid_mismatch".to_string(), 1),
                ("valid".to_string(), 3),
            ]
        );
        assert_eq!(counts.backlog(), 0);
        assert_eq!(metrics.validation_counts_backlog.get(), 0);
    }
}
