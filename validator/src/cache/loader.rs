//! License cache misses, coalesced into batch queries ("smart batching", as a DataLoader does).
//!
//! At most `in_flight` lookup statements are at PostgreSQL at a time. A miss that finds one free
//! is sent at once, alone; misses that arrive while all are busy queue, and the next free one
//! takes every queued miss (up to [`MAX_BATCH`]) in a single statement. So an idle validator adds
//! no delay, and a busy one pays PostgreSQL's per-statement cost (a backend wake-up, a protocol
//! round trip, executor start-up: most of a point lookup's cost on loopback) once per batch
//! instead of once per key.

use std::sync::Arc;

use keyward_shared::license_facts::LicenseFacts;
use keyward_shared::{store, StoreError};
use tokio::sync::{mpsc, oneshot, Semaphore};
use uuid::Uuid;

use super::CacheError;
use crate::metrics::Metrics;
use crate::replica::Reads;

/// The most keys one statement looks up (a row is ≈ 150 bytes on the wire).
pub const MAX_BATCH: usize = 256;

/// Misses waiting for a free statement slot before senders wait too.
const QUEUE: usize = 8 * MAX_BATCH;

type Answer = Result<Option<LicenseFacts>, CacheError>;

struct Lookup {
    app: Uuid,
    key: Box<str>,
    reply: oneshot::Sender<Answer>,
}

pub struct Loader {
    queue: mpsc::Sender<Lookup>,
}

impl Loader {
    /// Starts the dispatcher on the current runtime; it ends when the loader is dropped.
    pub fn new(reads: Arc<Reads>, in_flight: usize, metrics: Arc<Metrics>) -> Loader {
        let (queue, rx) = mpsc::channel(QUEUE);
        let slots = Arc::new(Semaphore::new(in_flight.max(1)));
        tokio::spawn(dispatch(rx, reads, slots, metrics));
        Loader { queue }
    }

    /// The license with this key in this app, read with whatever other misses are waiting.
    pub async fn load(&self, app: Uuid, key: &str) -> Answer {
        // PostgreSQL text cannot hold NUL, so no license has such a key; sent along, it would
        // fail the whole batch, the other requests' lookups with it.
        if key.contains('\0') {
            return Ok(None);
        }
        let (reply, answer) = oneshot::channel();
        let lookup = Lookup {
            app,
            key: key.into(),
            reply,
        };
        // Both fail only when the dispatcher is gone, i.e. the runtime is shutting down.
        self.queue
            .send(lookup)
            .await
            .map_err(|_| CacheError::Unavailable)?;
        answer.await.map_err(|_| CacheError::Unavailable)?
    }
}

async fn dispatch(
    mut rx: mpsc::Receiver<Lookup>,
    reads: Arc<Reads>,
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
) {
    loop {
        // Take the slot first: while every slot is busy, misses pile up for the next batch.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::new();
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        // A request whose client went away needs no answer.
        batch.retain(|l| !l.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        metrics.license_lookups.inc();
        let reads = reads.clone();
        tokio::spawn(async move {
            let found = lookup(&reads, &batch_keys(&batch)).await;
            answer(batch, found);
            drop(slot);
        });
    }
}

fn batch_keys(batch: &[Lookup]) -> Vec<(Uuid, &str)> {
    batch.iter().map(|l| (l.app, &*l.key)).collect()
}

async fn lookup(
    reads: &Reads,
    keys: &[(Uuid, &str)],
) -> Result<Vec<Option<LicenseFacts>>, StoreError> {
    reads
        .read(|c| async move { store::licenses::facts_by_keys(&*c, keys).await })
        .await
}

fn answer(batch: Vec<Lookup>, found: Result<Vec<Option<LicenseFacts>>, StoreError>) {
    match found {
        Ok(found) => {
            for (lookup, facts) in batch.into_iter().zip(found) {
                let _ = lookup.reply.send(Ok(facts));
            }
        }
        Err(e) => {
            let error = CacheError::from(&e);
            for lookup in batch {
                let _ = lookup.reply.send(Err(error.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use keyward_shared::store::licenses::GenerateSpec;
    use keyward_shared::testing::{eventually, generate, tenant, TestDb};

    use super::*;
    use keyward_shared::db;

    fn primary_only(pool: deadpool_postgres::Pool) -> Arc<Reads> {
        Arc::new(Reads::new(
            pool,
            Vec::new(),
            Duration::from_secs(1),
            Arc::new(crate::health::Health::new(Duration::from_secs(1))),
            Arc::new(Metrics::new()),
        ))
    }

    #[tokio::test]
    async fn misses_waiting_for_a_busy_lookup_go_together_in_the_next() {
        let db = TestDb::new().await;
        let mut c = db.client().await;
        let t = tenant(&mut c, false).await;
        let spec = GenerateSpec {
            count: Some(40),
            ..Default::default()
        };
        let made = generate(&mut c, &t, spec).await;
        let pool = db::pool(crate::query_pool_config(&db.url).unwrap(), 1);
        let metrics = Arc::new(Metrics::new());
        let loader = Arc::new(Loader::new(primary_only(pool.clone()), 1, metrics.clone()));

        // The only connection is taken, so the first lookup stalls at the pool, holding the
        // only slot, while the rest queue behind it.
        let taken = pool.get().await.unwrap();
        let load = |key: String| {
            let loader = loader.clone();
            let app = t.app.id;
            tokio::spawn(async move { loader.load(app, &key).await })
        };
        let first = load(made[0].key.clone());
        eventually(Duration::from_secs(10), "the first lookup sent", || async {
            (metrics.license_lookups.get() == 1).then_some(())
        })
        .await;
        let mut rest: Vec<_> = made[1..].iter().map(|l| load(l.key.clone())).collect();
        rest.push(load("NO-SUCH-KEY".into()));
        // Answered without a query, so it cannot fail the batch it would have joined.
        let nul = load(format!("{}\0", made[1].key));
        let queued = rest.len();
        eventually(Duration::from_secs(10), "the others queued", || async {
            (QUEUE - loader.queue.capacity() == queued).then_some(())
        })
        .await;
        drop(taken);

        assert_eq!(first.await.unwrap().unwrap().unwrap().id, made[0].id);
        assert!(nul.await.unwrap().unwrap().is_none());
        let answers: Vec<_> = futures_util::future::join_all(rest).await;
        for (answer, license) in answers.iter().zip(&made[1..]) {
            let facts = answer.as_ref().unwrap().as_ref().unwrap().as_ref().unwrap();
            assert_eq!(facts.id, license.id);
        }
        assert!(answers[queued - 1]
            .as_ref()
            .unwrap()
            .as_ref()
            .unwrap()
            .is_none());
        assert_eq!(
            metrics.license_lookups.get(),
            2,
            "one lookup for the first miss, one for the {queued} that waited"
        );

        // Both ran one prepared statement on the one connection, planned once, generically.
        let client = pool.get().await.unwrap();
        let plans = client
            .query_one(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements
                  WHERE statement LIKE '%unnest%' AND statement NOT LIKE '%pg_prepared%'",
                &[],
            )
            .await
            .unwrap();
        assert_eq!((plans.get::<_, i64>(0), plans.get::<_, i64>(1)), (2, 0));
    }

    #[tokio::test]
    async fn every_waiting_miss_learns_that_the_store_is_down() {
        // Nothing listens on port 1.
        let nowhere = db::pool(
            db::pg_config("postgres://keyward@127.0.0.1:1/none", "loader-test").unwrap(),
            1,
        );
        let loader = Arc::new(Loader::new(
            primary_only(nowhere),
            1,
            Arc::new(Metrics::new()),
        ));
        let answers = futures_util::future::join_all((0..5).map(|i| {
            let loader = loader.clone();
            async move { loader.load(Uuid::new_v4(), &format!("K-{i}")).await }
        }))
        .await;
        for answer in answers {
            assert!(matches!(answer, Err(CacheError::Unavailable)), "{answer:?}");
        }
    }
}
