//! Usage counters written behind: validations bump an in-memory counter per license; a task
//! writes the batch every few seconds and at shutdown. They never influence a verdict.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use deadpool_postgres::Pool;
use keyward_shared::store;
use uuid::Uuid;

use crate::pace::Pace;

/// Licenses per `UPDATE`: ≈ 0.6 ms of PostgreSQL's time each, short enough that the cache misses
/// sharing its cores hardly notice one (500 kept the cold-key p99 about 1 ms higher).
const CHUNK: usize = 100;

type Pending = DashMap<Uuid, (i64, DateTime<Utc>)>;

pub struct Usage {
    /// Shared with the blocking thread that drains it.
    pending: Arc<Pending>,
    /// Licenses drained by a flush and not yet written (see [`Usage::backlog`]).
    unwritten: Arc<AtomicUsize>,
    /// Licenses per statement ([`CHUNK`]; smaller in tests).
    chunk: usize,
    /// Hurried at shutdown: a flush under way writes its remaining chunks without pausing.
    pace: Pace,
}

impl Default for Usage {
    fn default() -> Usage {
        Usage::with_chunk(CHUNK)
    }
}

impl Usage {
    fn with_chunk(chunk: usize) -> Usage {
        Usage {
            pending: Arc::new(DashMap::new()),
            unwritten: Arc::new(AtomicUsize::new(0)),
            chunk: chunk.max(1),
            pace: Pace::default(),
        }
    }

    pub fn record(&self, license: Uuid, at: DateTime<Utc>) {
        self.merge(license, 1, at);
    }

    /// Licenses whose counts have not reached the database yet, pending or in a flush under
    /// way. Never low while counts are in transit (it may read high for a moment), so zero means
    /// written: what a benchmark waits for before measuring the next phase, and what an operator
    /// watches for a write-behind falling behind.
    pub fn backlog(&self) -> usize {
        self.pending.len() + self.unwritten.load(Ordering::Acquire)
    }

    /// Writes everything pending, in chunks of [`CHUNK`] licenses in id order, each chunk its own
    /// statement. The chunks are spread evenly over `spread` (zero at shutdown): one 50 000-row
    /// `UPDATE` keeps a PostgreSQL backend busy for ≈ 300 ms, and the misses queued behind it
    /// were most of the cold-key tail. Id order makes validators flushing the same licenses lock
    /// them in the same order, so they cannot deadlock. A chunk that fails is merged back with
    /// everything after it, for the next attempt.
    pub async fn flush(
        &self,
        pool: &Pool,
        spread: Duration,
    ) -> Result<u64, keyward_shared::StoreError> {
        // Off the async workers: draining and sorting 80 000 licenses took 9 ms, during which
        // the requests queued on that worker waited.
        let (pending, unwritten) = (self.pending.clone(), self.unwritten.clone());
        let batch =
            match tokio::task::spawn_blocking(move || drain_sorted(&pending, &unwritten)).await {
                Ok(batch) => batch,
                // Only if the runtime is shutting down; whatever was drained is lost with it.
                Err(e) => {
                    tracing::warn!(error = %e, "usage counters could not be collected");
                    return Ok(0);
                }
            };
        if batch.is_empty() {
            return Ok(0);
        }
        let chunks = batch.len().div_ceil(self.chunk);
        let gap = spread / u32::try_from(chunks).unwrap_or(u32::MAX);
        let started = tokio::time::Instant::now();
        let mut written = 0;
        for (i, chunk) in batch.chunks(self.chunk).enumerate() {
            if i > 0 {
                self.pace.pause_until(started + gap * i as u32).await;
            }
            match self.write(pool, chunk).await {
                Ok(n) => {
                    written += n;
                    self.unwritten.fetch_sub(chunk.len(), Ordering::AcqRel);
                }
                Err(e) => {
                    let rest = &batch[i * self.chunk..];
                    for &(id, n, t) in rest {
                        self.merge(id, n, t);
                    }
                    self.unwritten.fetch_sub(rest.len(), Ordering::AcqRel);
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

    async fn write(
        &self,
        pool: &Pool,
        chunk: &[(Uuid, i64, DateTime<Utc>)],
    ) -> Result<u64, keyward_shared::StoreError> {
        let ids: Vec<Uuid> = chunk.iter().map(|c| c.0).collect();
        let counts: Vec<i64> = chunk.iter().map(|c| c.1).collect();
        let last: Vec<DateTime<Utc>> = chunk.iter().map(|c| c.2).collect();
        let client = keyward_shared::db::checkout(pool).await?;
        store::usage::record_validations(&*client, &ids, &counts, &last).await
    }

    fn merge(&self, license: Uuid, n: i64, at: DateTime<Utc>) {
        let mut e = self.pending.entry(license).or_insert((0, at));
        e.0 += n;
        if at > e.1 {
            e.1 = at;
        }
    }
}

/// Everything pending, in id order (see [`Usage::flush`]), counted in `unwritten` before it
/// leaves `pending`, so that the backlog never reads low while it moves.
fn drain_sorted(pending: &Pending, unwritten: &AtomicUsize) -> Vec<(Uuid, i64, DateTime<Utc>)> {
    let keys: Vec<Uuid> = pending.iter().map(|e| *e.key()).collect();
    unwritten.fetch_add(keys.len(), Ordering::AcqRel);
    let listed = keys.len();
    let mut batch: Vec<(Uuid, i64, DateTime<Utc>)> = keys
        .into_iter()
        .filter_map(|k| pending.remove(&k).map(|(id, (n, t))| (id, n, t)))
        .collect();
    unwritten.fetch_sub(listed - batch.len(), Ordering::AcqRel);
    if !batch.is_empty() {
        // A burst of distinct licenses must not keep its table's capacity for good.
        pending.shrink_to_fit();
        batch.sort_unstable_by_key(|(id, _, _)| *id);
    }
    batch
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use keyward_shared::db;
    use keyward_shared::store::licenses::GenerateSpec;
    use keyward_shared::testing::{eventually, generate, tenant, TestDb};

    use super::*;

    /// `n` licenses of a fresh tenant.
    async fn licenses(c: &mut tokio_postgres::Client, n: i64) -> Vec<Uuid> {
        let t = tenant(c, false).await;
        let spec = GenerateSpec {
            count: Some(n),
            ..Default::default()
        };
        generate(c, &t, spec).await.iter().map(|l| l.id).collect()
    }

    async fn counts(c: &tokio_postgres::Client, ids: &[Uuid]) -> Vec<i64> {
        let mut out = Vec::new();
        for id in ids {
            let row = c
                .query_one(
                    "SELECT validation_count FROM license_usage WHERE license_id = $1",
                    &[id],
                )
                .await
                .unwrap();
            out.push(row.get(0));
        }
        out
    }

    #[tokio::test]
    async fn a_paced_flush_writes_chunk_by_chunk_and_hurries_at_shutdown() {
        let db = TestDb::new().await;
        let mut c = db.client().await;
        let ids = licenses(&mut c, 5).await;
        let pool = db::pool(db::pg_config(&db.url, "usage-test").unwrap(), 2);
        let usage = Arc::new(Usage::with_chunk(2));
        let now = Utc::now();
        for id in &ids {
            usage.record(*id, now);
        }
        usage.record(ids[0], now);
        assert_eq!(usage.backlog(), 5);

        // Three chunks spread over ten minutes: the first goes at once, the next not for minutes.
        let flush = tokio::spawn({
            let (usage, pool) = (usage.clone(), pool.clone());
            async move { usage.flush(&pool, Duration::from_secs(600)).await }
        });
        let (client, license_ids) = (&c, &ids);
        let (written, _) = eventually(
            Duration::from_secs(10),
            "the first chunk",
            move || async move {
                let n: i64 = client
                    .query_one(
                        "SELECT count(*) FROM license_usage
                          WHERE license_id = ANY($1) AND validation_count > 0",
                        &[license_ids],
                    )
                    .await
                    .unwrap()
                    .get(0);
                (n > 0).then_some(n)
            },
        )
        .await;
        assert_eq!(written, 2, "one chunk of two, the rest paced");
        let usage_ref = &usage;
        eventually(
            Duration::from_secs(10),
            "backlog of 3",
            move || async move { (usage_ref.backlog() == 3).then_some(()) },
        )
        .await;

        usage.hurry();
        let done = tokio::time::timeout(Duration::from_secs(10), flush)
            .await
            .expect("hurried flush finishes")
            .unwrap()
            .unwrap();
        assert_eq!(done, 5);
        assert_eq!(usage.backlog(), 0);
        let mut expected = vec![1; 5];
        expected[0] = 2;
        assert_eq!(counts(&c, &ids).await, expected);
    }

    #[tokio::test]
    async fn a_failed_flush_keeps_its_counts_for_the_next() {
        let db = TestDb::new().await;
        let mut c = db.client().await;
        let ids = licenses(&mut c, 3).await;
        let usage = Usage::with_chunk(2);
        for id in &ids {
            usage.record(*id, Utc::now());
        }
        // Nothing listens on port 1.
        let nowhere = db::pool(
            db::pg_config("postgres://keyward@127.0.0.1:1/none", "usage-test").unwrap(),
            1,
        );
        assert!(usage.flush(&nowhere, Duration::ZERO).await.is_err());
        assert_eq!(counts(&c, &ids).await, vec![0, 0, 0]);
        assert_eq!(usage.backlog(), 3, "merged back, still owed");

        usage.record(ids[2], Utc::now());
        let pool = db::pool(db::pg_config(&db.url, "usage-test").unwrap(), 1);
        assert_eq!(usage.flush(&pool, Duration::ZERO).await.unwrap(), 3);
        assert_eq!(counts(&c, &ids).await, vec![1, 1, 2]);
        assert_eq!(usage.backlog(), 0);
    }
}
