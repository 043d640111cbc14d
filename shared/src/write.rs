//! The one write path: every write that can change a validator's answer goes through [`WriteTx`],
//! which commits the change, its audit rows and its `pg_notify` invalidations in one transaction.
//!
//! Store functions that write take `&mut WriteTx`, so there is no way to write those tables
//! without also invalidating.
//!
//! It is also the outbox of event webhooks: events recorded with [`WriteTx::event`] are written
//! for the account's subscribed endpoints by the same commit, so an event exists exactly when its
//! change committed, and survives whatever happens to the process before its delivery.

use serde_json::Value;
use tokio_postgres::{Client, Transaction};
use uuid::Uuid;

use crate::error::StoreResult;
use crate::invalidation::{self, Invalidation};
use crate::store::webhook_endpoints::{self, Subscriber};
use crate::store::webhook_events::{self, PendingEvent};

/// Who is writing, for the audit log and tenant scoping.
#[derive(Debug, Clone)]
pub struct Actor {
    pub account_id: Uuid,
    /// e.g. `admin:alice`, `api_key:kw_AbCd`, `validator`.
    pub label: String,
    /// Where the request came from, recorded with every audit entry it writes.
    pub origin: Origin,
}

/// The client address and user agent of the request behind a write (none for background work).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub ip: Option<std::net::IpAddr>,
    /// At most 512 characters (longer ones are cut at a character boundary).
    pub user_agent: Option<String>,
}

impl Origin {
    pub fn new(ip: Option<std::net::IpAddr>, user_agent: Option<&str>) -> Origin {
        let user_agent = user_agent.map(|ua| {
            let mut end = ua.len().min(512);
            while !ua.is_char_boundary(end) {
                end -= 1;
            }
            ua[..end].to_string()
        });
        Origin { ip, user_agent }
    }
}

struct PendingAudit {
    action: String,
    target_type: &'static str,
    target_id: Option<String>,
    details: Value,
}

pub struct WriteTx<'a> {
    tx: Transaction<'a>,
    actor: Actor,
    invalidations: Vec<Invalidation>,
    audits: Vec<PendingAudit>,
    events: Vec<PendingEvent>,
    /// Wake the delivery workers at commit even if no event was written (a retried event).
    wake_webhooks: bool,
    /// The account's enabled endpoints, read by the first [`WriteTx::subscribed`].
    subscribers: Option<Vec<Subscriber>>,
}

impl<'a> WriteTx<'a> {
    pub async fn begin(client: &'a mut Client, actor: Actor) -> StoreResult<WriteTx<'a>> {
        Ok(WriteTx {
            tx: client.transaction().await?,
            actor,
            invalidations: Vec::new(),
            audits: Vec::new(),
            events: Vec::new(),
            wake_webhooks: false,
            subscribers: None,
        })
    }

    /// The transaction, for the statements of the write itself.
    pub fn tx(&self) -> &Transaction<'a> {
        &self.tx
    }

    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    pub fn account_id(&self) -> Uuid {
        self.actor.account_id
    }

    pub fn invalidate(&mut self, inv: Invalidation) {
        if !self.invalidations.contains(&inv) {
            self.invalidations.push(inv);
        }
    }

    pub fn audit(
        &mut self,
        action: impl Into<String>,
        target_type: &'static str,
        target_id: Option<String>,
        details: Value,
    ) {
        self.audits.push(PendingAudit {
            action: action.into(),
            target_type,
            target_id,
            details,
        });
    }

    /// Records a webhook event of this change: at commit, one `webhook_events` row is written for
    /// every enabled endpoint of the account that subscribes to `event` (or `*`) and whose
    /// product scope, if it has one, is the app of the payload's resource (see
    /// [`webhook_events::app_of`]: a Keygen document's product, a native resource's `app_id`).
    /// `payload` is delivered as Keygen does, as the JSON text of the event's `payload`
    /// attribute; give it the resource's Keygen document (`{"data": …}`) where there is one.
    /// Events of a rolled-back transaction are never written. Without endpoints this costs one
    /// indexed statement at commit; [`WriteTx::subscribed`] avoids building the payload at all.
    pub fn event(&mut self, event: &str, payload: Value) {
        let app = webhook_events::app_of(&payload);
        self.event_in_app(event, app, payload);
    }

    /// [`WriteTx::event`] with the resource's app (product) given rather than read from the
    /// payload (`None`: only endpoints without a product scope receive it).
    pub fn event_in_app(&mut self, event: &str, app: Option<Uuid>, payload: Value) {
        debug_assert!(
            webhook_endpoints::is_known_event(event),
            "unknown webhook event {event}"
        );
        self.events.push(PendingEvent {
            event: event.to_string(),
            app_id: app,
            payload,
        });
    }

    /// Whether any enabled endpoint of the account subscribes to `event` (whatever its product
    /// scope), so an emitter can skip reading and rendering a payload nobody listens for (the
    /// common case). The endpoints are read once per transaction; the commit matches scopes and
    /// subscriptions again, so an endpoint created meanwhile at worst misses this event.
    pub async fn subscribed(&mut self, event: &str) -> StoreResult<bool> {
        let subscribers = match &self.subscribers {
            Some(s) => s,
            None => {
                let s = webhook_endpoints::subscribers(&self.tx, self.actor.account_id).await?;
                self.subscribers.insert(s)
            }
        };
        Ok(subscribers.iter().any(|s| s.subscribes_to(event)))
    }

    /// Wakes the delivery workers at commit (for events queued again without a new row).
    pub fn wake_webhooks(&mut self) {
        self.wake_webhooks = true;
    }

    /// Writes the audit rows and the webhook events, bumps the cache generation and notifies,
    /// then commits. Nothing is delivered to listeners unless the commit succeeds.
    pub async fn commit(self) -> StoreResult<()> {
        let WriteTx {
            tx,
            actor,
            invalidations,
            audits,
            events,
            wake_webhooks,
            subscribers: _,
        } = self;
        for a in &audits {
            tx.execute(
                "INSERT INTO audit_log (account_id, actor, action, target_type, target_id, details,
                                        ip, user_agent)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &actor.account_id,
                    &actor.label,
                    &a.action,
                    &a.target_type,
                    &a.target_id,
                    &a.details,
                    &actor.origin.ip,
                    &actor.origin.user_agent,
                ],
            )
            .await?;
        }
        if !events.is_empty() || wake_webhooks {
            webhook_events::enqueue(&tx, actor.account_id, &events, wake_webhooks).await?;
        }
        if !invalidations.is_empty() {
            // One statement, the last before the commit: the generation row's lock serialises
            // generations in commit order, so every invalidating write waits for it, and it is
            // held from here to the end of the commit. Taking the generation and notifying in
            // separate statements held it across one more client round trip per notification (a
            // burst of first uses commits one at a time behind it).
            tx.execute(
                "WITH g AS (UPDATE cache_epoch SET generation = generation + 1 RETURNING generation)
                 SELECT pg_notify($1, '{\"g\":' || g.generation || ',\"i\":' || items || '}')
                   FROM g, unnest($2::text[]) AS items",
                &[
                    &invalidation::CHANNEL,
                    &invalidation::encode_items(&invalidations),
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
