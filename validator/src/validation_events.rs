//! Keygen's `license.validation.succeeded|failed` webhook events from the validators. A
//! validation changes nothing, so its events cannot ride a write's transaction: they are
//! buffered in memory and written behind (every flush interval, one statement per account), and
//! only for accounts with an endpoint that listens — which a validator learns once per
//! [`SUBSCRIBERS_TTL`], so the hot path pays a map lookup. Best effort by nature: events still
//! buffered when a validator dies are lost, which the delivery log shows as never sent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use deadpool_postgres::Pool;
use keyward_shared::store::webhook_endpoints;
use keyward_shared::store::webhook_events::{self, PendingEvent};
use keyward_shared::StoreError;
use serde_json::Value;
use uuid::Uuid;

/// How long a validator trusts what it read of an account's endpoints.
pub const SUBSCRIBERS_TTL: Duration = Duration::from_secs(5);
/// Events held at most between flushes; beyond, new ones are dropped (and counted).
const MAX_BUFFERED: usize = 10_000;

const SUCCEEDED: &str = "license.validation.succeeded";
const FAILED: &str = "license.validation.failed";

#[derive(Default)]
pub struct ValidationEvents {
    /// Account → (an endpoint listens for validations, when that was read).
    listening: DashMap<Uuid, (bool, Instant)>,
    buffer: Mutex<Vec<(Uuid, PendingEvent)>>,
    dropped: std::sync::atomic::AtomicU64,
}

impl ValidationEvents {
    /// Whether an endpoint of the account listens for validation events (read from the store at
    /// most once per [`SUBSCRIBERS_TTL`]; an unreachable store answers no).
    async fn listening(&self, pool: &Pool, account: Uuid) -> bool {
        if let Some(entry) = self.listening.get(&account) {
            if entry.1.elapsed() < SUBSCRIBERS_TTL {
                return entry.0;
            }
        }
        let read = async {
            let client = keyward_shared::db::checkout(pool).await?;
            let subscribers = webhook_endpoints::subscribers(&**client, account).await?;
            Ok::<_, StoreError>(subscribers.iter().any(|s| {
                s.subscriptions
                    .iter()
                    .any(|e| e == "*" || e == SUCCEEDED || e == FAILED)
            }))
        };
        let listens = read.await.unwrap_or(false);
        self.listening.insert(account, (listens, Instant::now()));
        listens
    }

    /// Records a validation's event when the account listens: `document` is the validation
    /// answer (`{data, meta}`), sent as the event's payload.
    pub async fn record(
        &self,
        pool: &Pool,
        account: Uuid,
        app: Uuid,
        valid: bool,
        document: &Value,
    ) {
        if !self.listening(pool, account).await {
            return;
        }
        let event = PendingEvent {
            event: if valid { SUCCEEDED } else { FAILED }.to_owned(),
            app_id: Some(app),
            payload: document.clone(),
        };
        let mut buffer = match self.buffer.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        if buffer.len() >= MAX_BUFFERED {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        buffer.push((account, event));
    }

    /// Writes what is buffered, one statement per account.
    pub async fn flush(&self, pool: &Pool) -> Result<(), StoreError> {
        let pending = {
            let mut buffer = match self.buffer.lock() {
                Ok(b) => b,
                Err(poisoned) => poisoned.into_inner(),
            };
            std::mem::take(&mut *buffer)
        };
        let dropped = self.dropped.swap(0, std::sync::atomic::Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(dropped, "validation events dropped: the buffer was full");
        }
        if pending.is_empty() {
            return Ok(());
        }
        let mut by_account: HashMap<Uuid, Vec<PendingEvent>> = HashMap::new();
        for (account, event) in pending {
            by_account.entry(account).or_default().push(event);
        }
        let client = keyward_shared::db::checkout(pool).await?;
        for (account, events) in by_account {
            webhook_events::enqueue(&**client, account, &events, false).await?;
        }
        Ok(())
    }
}
