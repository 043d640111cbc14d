//! Event webhooks on the control-plane: the delivery worker that drains the outbox
//! (`webhook_events`, written by `WriteTx::commit`), and the helpers the routes emit events with.
//!
//! - `listener.rs` — a dedicated connection that LISTENs for commits of new events and wakes the
//!   worker;
//! - `worker.rs` — claims due events, delivers them, records each attempt, sleeps until the next
//!   is due (or a bounded poll interval, the safety net for a lost notification);
//! - `delivery.rs` — one delivery: the Keygen document, its signature, the POST, the outcome;
//! - `document.rs` — Keygen's `webhook-events` resource;
//! - `emit.rs` — events of the native routes' writes.

mod delivery;
pub(crate) mod document;
pub(crate) mod emit;
mod listener;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use keyward_shared::db;
use keyward_shared::outbound::{Outbound, OutboundConfig};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::config::WebhookOptions;
use crate::AppState;

/// What the worker keeps of a receiver's answer: the log stores 4 KiB, a little more is read so
/// the cut happens on our side, at a character boundary.
const MAX_RESPONSE_BYTES: usize = 8 * 1024;

/// The worker's parts, built (and checked) before the control-plane starts serving.
pub(crate) struct Prepared {
    outbound: Outbound,
    pg: tokio_postgres::Config,
    opts: WebhookOptions,
}

impl Prepared {
    pub(crate) fn new(database_url: &str, opts: &WebhookOptions) -> anyhow::Result<Prepared> {
        let outbound = Outbound::new(OutboundConfig {
            timeout: Duration::from_millis(opts.timeout_ms.max(1)),
            max_response_bytes: MAX_RESPONSE_BYTES,
            allow_private: opts.allow_private,
            // A 2xx with a big body is still a delivery.
            truncate_response: true,
        })?;
        let pg = db::pg_config(database_url, listener::APPLICATION_NAME)?;
        Ok(Prepared {
            outbound,
            pg,
            opts: opts.clone(),
        })
    }

    /// Starts the listener and the worker.
    pub(crate) fn start(self, state: AppState) -> Webhooks {
        let wake = Arc::new(Notify::new());
        let (stop, stop_rx) = watch::channel(false);
        let listener = tokio::spawn(listener::run(self.pg, wake.clone(), stop_rx.clone()));
        let worker = worker::Worker::new(state, self.outbound, &self.opts);
        let worker = tokio::spawn(worker.run(wake, stop_rx));
        Webhooks {
            stop,
            worker,
            listener,
            // In-flight deliveries finish (each within the request timeout) and record.
            grace: Duration::from_millis(self.opts.timeout_ms) + Duration::from_secs(5),
        }
    }
}

/// The running worker and its listener.
pub(crate) struct Webhooks {
    stop: watch::Sender<bool>,
    worker: JoinHandle<()>,
    listener: JoinHandle<()>,
    grace: Duration,
}

impl Webhooks {
    /// Stops claiming, lets the deliveries under way finish and record, then returns. A delivery
    /// still running after the grace is abandoned: its lease runs out and it is sent again later.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let mut worker = self.worker;
        if tokio::time::timeout(self.grace, &mut worker).await.is_err() {
            tracing::warn!("webhook deliveries still running at shutdown were abandoned");
            worker.abort();
        }
        self.listener.abort();
    }
}
