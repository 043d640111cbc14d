//! Usage counters written behind: validations bump an in-memory counter per license; a task
//! writes the batch every few seconds and at shutdown. They never influence a verdict.

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use deadpool_postgres::Pool;
use keyward_shared::store;
use uuid::Uuid;

#[derive(Default)]
pub struct Usage {
    pending: DashMap<Uuid, (i64, DateTime<Utc>)>,
}

impl Usage {
    pub fn record(&self, license: Uuid, at: DateTime<Utc>) {
        let mut e = self.pending.entry(license).or_insert((0, at));
        e.0 += 1;
        if at > e.1 {
            e.1 = at;
        }
    }

    /// Writes everything pending; on failure the batch is merged back for the next attempt.
    pub async fn flush(&self, pool: &Pool) -> Result<u64, keyward_shared::StoreError> {
        let keys: Vec<Uuid> = self.pending.iter().map(|e| *e.key()).collect();
        let mut ids = Vec::with_capacity(keys.len());
        let mut counts = Vec::with_capacity(keys.len());
        let mut last = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some((id, (n, t))) = self.pending.remove(&k) {
                ids.push(id);
                counts.push(n);
                last.push(t);
            }
        }
        if ids.is_empty() {
            return Ok(0);
        }
        // A burst of distinct licenses must not keep its table's capacity for good.
        self.pending.shrink_to_fit();
        let result = async {
            let client = keyward_shared::db::checkout(pool).await?;
            store::usage::record_validations(&**client, &ids, &counts, &last).await
        }
        .await;
        if result.is_err() {
            for ((id, n), t) in ids.into_iter().zip(counts).zip(last) {
                let mut e = self.pending.entry(id).or_insert((0, t));
                e.0 += n;
                if t > e.1 {
                    e.1 = t;
                }
            }
        }
        result
    }
}
