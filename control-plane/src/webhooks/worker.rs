//! The delivery loop: claim due events (a lease each), deliver them side by side, record every
//! attempt under its lease, then sleep until the next event falls due, a wake-up from the
//! listener, or the poll interval. Several control-planes may run it at once: claims skip each
//! other's rows.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::future::join_all;
use keyward_shared::outbound::Outbound;
use keyward_shared::store::webhook_events::{self, Attempt, Claimed, Outcome};
use keyward_shared::{db, StoreError};
use tokio::sync::{watch, Notify};

use super::delivery::{self, Sent};
use crate::config::WebhookOptions;
use crate::AppState;

/// Events claimed (and delivered concurrently) per round; each holds a pooled connection only
/// while it records.
const BATCH: i64 = 8;
/// Shortest sleep when an event is due but another worker holds it.
const MIN_WAIT: Duration = Duration::from_millis(20);
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(10);
/// How long signing keys may stay unread (a rotation is picked up within this).
const SIGNERS_MAX_AGE: Duration = Duration::from_secs(60);

pub struct Worker {
    state: AppState,
    outbound: Outbound,
    allow_http: bool,
    backoff_base: Duration,
    backoff_max: Duration,
    max_attempts: u32,
    poll: Duration,
    /// A claim outlives the slowest delivery and its record, so a live worker never loses one.
    lease: Duration,
}

impl Worker {
    pub fn new(state: AppState, outbound: Outbound, opts: &WebhookOptions) -> Worker {
        let timeout = Duration::from_millis(opts.timeout_ms.max(1));
        Worker {
            state,
            outbound,
            allow_http: opts.allow_http,
            backoff_base: Duration::from_millis(opts.backoff_base_ms),
            backoff_max: Duration::from_secs(opts.backoff_max_secs),
            max_attempts: opts.max_attempts.max(1),
            poll: Duration::from_millis(opts.poll_ms.max(10)),
            lease: timeout * 2 + Duration::from_secs(10),
        }
    }

    pub async fn run(self, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
        let mut errors = 0u32;
        loop {
            if *stop.borrow() {
                return;
            }
            // Not raced against `stop`: deliveries under way finish and record.
            let wait = match self.round().await {
                Ok(None) => {
                    errors = 0;
                    continue;
                }
                Ok(Some(wait)) => {
                    errors = 0;
                    wait
                }
                Err(e) => {
                    errors = errors.saturating_add(1);
                    let wait = (Duration::from_millis(100) * 2u32.pow(errors.min(7)))
                        .min(MAX_ERROR_BACKOFF);
                    tracing::warn!(error = %e, retry_in = ?wait, "webhook worker cannot claim");
                    wait
                }
            };
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Claims and delivers one batch. `None`: events were claimed, look again at once;
    /// `Some(wait)`: nothing was due, sleep at most that long.
    async fn round(&self) -> Result<Option<Duration>, StoreError> {
        let _ = self
            .state
            .signers()
            .reload(self.state.pool(), SIGNERS_MAX_AGE)
            .await
            .map_err(|e| tracing::warn!(error = %e, "cannot reload signing keys"));
        let claimed = {
            let client = db::checkout(self.state.pool()).await?;
            webhook_events::claim_due(&**client, BATCH, self.lease).await?
        };
        if !claimed.is_empty() {
            join_all(claimed.iter().map(|c| self.deliver(c))).await;
            return Ok(None);
        }
        let client = db::checkout(self.state.pool()).await?;
        let wait = match webhook_events::next_due(&**client).await? {
            Some(at) => (at - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .clamp(MIN_WAIT, self.poll),
            None => self.poll,
        };
        Ok(Some(wait))
    }

    async fn deliver(&self, c: &Claimed) {
        let sent = if c.enabled {
            delivery::send(&self.state, &self.outbound, self.allow_http, c).await
        } else {
            Sent {
                status: None,
                body: None,
                error: Some("the endpoint is disabled".into()),
                took: Duration::ZERO,
            }
        };
        let outcome = self.outcome(c, &sent);
        let attempt = Attempt {
            outcome,
            response_code: sent.status,
            response_body: sent.body.as_deref(),
            error: sent.error.as_deref(),
            duration: sent.took,
        };
        tracing::info!(
            event = %c.event.id, name = %c.event.event, endpoint = %c.event.endpoint_id,
            attempt = c.event.attempts + 1, status = ?sent.status, error = ?sent.error,
            outcome = ?outcome, "webhook delivery attempt"
        );
        // The record is what makes the delivery count once: retried a few times, since a lost
        // record means the event is sent again when its lease runs out.
        for wait in [0u64, 200, 1000] {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            let recorded = match db::checkout(self.state.pool()).await {
                Ok(client) => webhook_events::record_attempt(&**client, c, &attempt).await,
                Err(e) => Err(e),
            };
            match recorded {
                Ok(true) => return,
                Ok(false) => {
                    tracing::info!(event = %c.event.id, "webhook event changed during its delivery; its newer state stands");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, event = %c.event.id, "cannot record a webhook attempt")
                }
            }
        }
    }

    fn outcome(&self, c: &Claimed, sent: &Sent) -> Outcome {
        if sent.delivered() {
            return Outcome::Delivered;
        }
        if !c.enabled {
            return Outcome::GiveUp;
        }
        let attempt = u32::try_from(c.event.attempts.saturating_add(1)).unwrap_or(u32::MAX);
        if attempt >= self.max_attempts {
            Outcome::GiveUp
        } else {
            Outcome::RetryAfter(webhook_events::retry_delay(
                attempt,
                self.backoff_base,
                self.backoff_max,
            ))
        }
    }
}
