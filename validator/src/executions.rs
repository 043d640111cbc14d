//! Execution counts (Panda's `push-execution-count`) written behind: a push adds one to its app's
//! counter in memory; the usage task writes the sums every flush interval and at shutdown
//! (`store::usage::record_executions`, one statement for every app with pushes), so a script
//! pushing on every run costs no database write of its own.

use std::sync::atomic::{AtomicI64, Ordering};

use dashmap::DashMap;
use deadpool_postgres::Pool;
use keyward_shared::store;
use keyward_shared::StoreError;
use uuid::Uuid;

/// Apps per statement: a flush after a burst over many apps stays a few short statements.
const CHUNK: usize = 500;

#[derive(Default)]
pub struct Executions {
    pending: DashMap<Uuid, i64>,
    /// Pushes counted and not yet written (pending or in a flush under way).
    backlog: AtomicI64,
}

impl Executions {
    pub fn record(&self, app: Uuid) {
        // Counted before it is visible to a flush, so the backlog never reads low.
        self.backlog.fetch_add(1, Ordering::AcqRel);
        *self.pending.entry(app).or_insert(0) += 1;
    }

    /// Pushes not yet written: what `/metrics` reports and what a shutdown leaves at zero.
    pub fn backlog(&self) -> i64 {
        self.backlog.load(Ordering::Acquire)
    }

    /// Writes every pending count; a chunk that fails is kept, with the rest, for the next flush.
    pub async fn flush(&self, pool: &Pool) -> Result<u64, StoreError> {
        let keys: Vec<Uuid> = self.pending.iter().map(|e| *e.key()).collect();
        if keys.is_empty() {
            return Ok(0);
        }
        let mut batch: Vec<(Uuid, i64)> = keys
            .into_iter()
            .filter_map(|k| self.pending.remove(&k))
            .collect();
        // Id order: validators flushing the same apps lock their rows in the same order.
        batch.sort_unstable_by_key(|(id, _)| *id);
        let mut written = 0;
        for (i, chunk) in batch.chunks(CHUNK).enumerate() {
            match write(pool, chunk).await {
                Ok(n) => {
                    written += n;
                    let done: i64 = chunk.iter().map(|c| c.1).sum();
                    self.backlog.fetch_sub(done, Ordering::AcqRel);
                }
                Err(e) => {
                    for &(app, n) in &batch[i * CHUNK..] {
                        *self.pending.entry(app).or_insert(0) += n;
                    }
                    return Err(e);
                }
            }
        }
        Ok(written)
    }
}

async fn write(pool: &Pool, chunk: &[(Uuid, i64)]) -> Result<u64, StoreError> {
    let apps: Vec<Uuid> = chunk.iter().map(|c| c.0).collect();
    let counts: Vec<i64> = chunk.iter().map(|c| c.1).collect();
    let client = keyward_shared::db::checkout(pool).await?;
    store::usage::record_executions(&**client, &apps, &counts).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_shared::db;
    use keyward_shared::testing::{tenant, TestDb};

    async fn count(c: &tokio_postgres::Client, app: Uuid) -> i64 {
        c.query_opt(
            "SELECT execution_count FROM app_usage WHERE app_id = $1",
            &[&app],
        )
        .await
        .unwrap()
        .map_or(0, |r| r.get(0))
    }

    #[tokio::test]
    async fn pushes_are_summed_written_once_and_kept_when_the_write_fails() {
        let db = TestDb::new().await;
        let mut c = db.client().await;
        let (a, b) = (tenant(&mut c, false).await, tenant(&mut c, false).await);
        let ex = Executions::default();
        for _ in 0..3 {
            ex.record(a.app.id);
        }
        ex.record(b.app.id);
        assert_eq!(ex.backlog(), 4);

        // Nothing listens on port 1.
        let nowhere = db::pool(
            db::pg_config("postgres://keyward@127.0.0.1:1/none", "executions-test").unwrap(),
            1,
        );
        assert!(ex.flush(&nowhere).await.is_err());
        assert_eq!(ex.backlog(), 4, "kept for the next flush");
        ex.record(a.app.id);

        let pool = db::pool(db::pg_config(&db.url, "executions-test").unwrap(), 1);
        assert_eq!(ex.flush(&pool).await.unwrap(), 2, "one row per app");
        assert_eq!(ex.backlog(), 0);
        assert_eq!(
            (count(&c, a.app.id).await, count(&c, b.app.id).await),
            (4, 1)
        );
        assert_eq!(ex.flush(&pool).await.unwrap(), 0, "nothing left");
        ex.record(b.app.id);
        ex.flush(&pool).await.unwrap();
        assert_eq!(count(&c, b.app.id).await, 2, "added to the stored count");
    }
}
