//! CyberLicense's per-license usage statistics, written behind: a validation is aggregated into
//! memory (counts per day, distinct IPs/HWIDs, newest requests: `store::license_stats::write`),
//! and a task of its own writes the aggregate every flush interval, paced like the usage
//! counters, and at shutdown. Never a row write per validation.
//!
//! Bounded: beyond [`MAX_ENTRIES`] entries (licenses, days, distinct values, requests) what would
//! need a new one is dropped and counted (`license_stats_dropped`); repeated validations of a
//! buffered license cost no room, so only a flood of distinct licenses or values while the
//! database is unreachable reaches it. A failed write is logged, counted and dropped: statistics
//! never block a verdict and are not worth holding memory for.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::pace::Pace;
use deadpool_postgres::Pool;
use keyward_shared::store::license_stats::write::{self, Aggregate, UseEvent};
use keyward_shared::StoreError;

use crate::metrics::Metrics;

/// Shards of the buffer, by license: validations of different licenses rarely share a lock.
const SHARDS: usize = 16;
/// Entries buffered at most (≈ 150 bytes each with their strings).
const MAX_ENTRIES: usize = 100_000;

pub struct LicenseStats {
    shards: Box<[Mutex<Aggregate>]>,
    metrics: Arc<Metrics>,
    /// Hurried at shutdown: a flush under way writes its remaining statements without pausing.
    pace: Pace,
}

impl LicenseStats {
    pub fn new(metrics: Arc<Metrics>) -> LicenseStats {
        LicenseStats {
            shards: (0..SHARDS).map(|_| Mutex::new(empty())).collect(),
            metrics,
            pace: Pace::default(),
        }
    }

    /// Records one validation of an existing license (no I/O: a map update under a shard's lock).
    pub fn record(&self, event: UseEvent) {
        let shard = event.license_id.as_u64_pair().1 as usize % SHARDS;
        let (kept, grown) = {
            let mut aggregate = lock(&self.shards[shard]);
            let before = aggregate.entries();
            let kept = aggregate.add(event);
            (kept, aggregate.entries() - before)
        };
        if grown > 0 {
            self.metrics.license_stats_backlog.inc_by(grown as i64);
        }
        if !kept {
            self.metrics.license_stats_dropped.inc();
        }
    }

    /// Writes everything buffered, its statements spread evenly over `spread` (zero at
    /// shutdown) so that the cache misses sharing PostgreSQL never wait behind a burst of them.
    /// Returns the rows written; on a failure the rest of this flush is dropped.
    pub async fn flush(&self, pool: &Pool, spread: Duration) -> Result<u64, StoreError> {
        let taken: Vec<Aggregate> = self
            .shards
            .iter()
            .map(|s| std::mem::replace(&mut *lock(s), empty()))
            .filter(|a| !a.is_empty())
            .collect();
        if taken.is_empty() {
            return Ok(0);
        }
        let entries: usize = taken.iter().map(Aggregate::entries).sum();
        // Off the async workers: merging and sorting tens of thousands of entries takes
        // milliseconds the requests queued on a worker would wait.
        let rows = tokio::task::spawn_blocking(move || {
            let mut all = Aggregate::default();
            for a in taken {
                all.merge(a);
            }
            all.into_rows()
        })
        .await;
        let result = match rows {
            Ok(rows) => self.write(pool, &rows, spread).await,
            // Only if the runtime is shutting down; the statistics go with it.
            Err(e) => {
                tracing::warn!(error = %e, "usage statistics could not be collected");
                Ok(0)
            }
        };
        self.metrics.license_stats_backlog.dec_by(entries as i64);
        if result.is_err() {
            self.metrics.license_stats_write_failures.inc();
        }
        result
    }

    async fn write(
        &self,
        pool: &Pool,
        rows: &write::Rows,
        spread: Duration,
    ) -> Result<u64, StoreError> {
        let parts = rows.parts();
        let gap = spread / u32::try_from(parts.len()).unwrap_or(u32::MAX);
        let started = tokio::time::Instant::now();
        let mut written = 0;
        for (i, part) in parts.into_iter().enumerate() {
            if i > 0 {
                self.pace.pause_until(started + gap * i as u32).await;
            }
            let client = keyward_shared::db::checkout(pool).await?;
            written += write::write_part(&**client, part).await?;
        }
        Ok(written)
    }

    /// Ends the pacing of flushes (shutdown).
    pub fn hurry(&self) {
        self.pace.hurry();
    }
}

fn empty() -> Aggregate {
    Aggregate::with_limit(MAX_ENTRIES / SHARDS)
}

/// A shard's lock; a panic elsewhere while holding it leaves counts that are still counts.
fn lock(shard: &Mutex<Aggregate>) -> MutexGuard<'_, Aggregate> {
    match shard.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
