//! Webhook events' SQL: the transactional outbox of event webhooks and its delivery log.
//!
//! [`enqueue`] runs inside `WriteTx::commit`, so an event exists exactly when the change that
//! caused it committed. The control-plane's worker then [`claim_due`]s events (a lease: status
//! `delivering` until `next_attempt_at`), sends them and [`record_attempt`]s the outcome under
//! the claim's `lease_id`. A worker that dies between the send and the record leaves the lease to
//! run out, and the event is claimed and sent again: deliveries are at least once, and exactly
//! once unless a process dies mid-delivery (receivers can tell repeats by the event id, Keygen's
//! `idempotencyToken`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::write::WriteTx;

use super::webhook_endpoints::is_known_event;

/// The NOTIFY channel that wakes delivery workers when events commit.
pub const CHANNEL: &str = "keyward_webhooks";
/// How much of a receiver's answer the log keeps.
pub const MAX_LOGGED_BODY: usize = 4 * 1024;
const MAX_LOGGED_ERROR: usize = 1024;
/// Attempts kept in `attempt_log` (the newest).
const MAX_LOGGED_ATTEMPTS: i64 = 25;
/// The event [`send_test`] queues. Not one of the subscribable events: a test reaches only the
/// endpoint it was sent to.
pub const TEST_EVENT: &str = "webhook.test";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Delivering,
    Delivered,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Delivering => "delivering",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
        }
    }

    fn parse(s: &str) -> StoreResult<Status> {
        Ok(match s {
            "queued" => Status::Queued,
            "delivering" => Status::Delivering,
            "delivered" => Status::Delivered,
            "failed" => Status::Failed,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown webhook event status {other:?}"
                )))
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookEvent {
    pub id: Uuid,
    pub account_id: Uuid,
    pub endpoint_id: Uuid,
    pub event: String,
    pub payload: Value,
    pub status: Status,
    pub attempts: i32,
    /// Queued: when the next attempt is due. Delivering: when the claim's lease runs out.
    pub next_attempt_at: DateTime<Utc>,
    pub last_response_code: Option<i32>,
    /// The start of the receiver's last answer (at most 4 KiB).
    pub last_response_body: Option<String>,
    pub last_error: Option<String>,
    /// The latest attempts, oldest first: `{at, code, error, ms}`.
    pub attempt_log: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "e.id, e.account_id, e.endpoint_id, e.event, e.payload, e.status, \
                       e.attempts, e.next_attempt_at, e.last_response_code, e.last_response_body, \
                       e.last_error, e.attempt_log, e.created_at, e.updated_at, e.delivered_at";

fn from_row(r: &Row) -> StoreResult<WebhookEvent> {
    Ok(WebhookEvent {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        endpoint_id: r.try_get("endpoint_id")?,
        event: r.try_get("event")?,
        payload: r.try_get("payload")?,
        status: Status::parse(r.try_get("status")?)?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        last_response_code: r.try_get("last_response_code")?,
        last_response_body: r.try_get("last_response_body")?,
        last_error: r.try_get("last_error")?,
        attempt_log: r.try_get("attempt_log")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        delivered_at: r.try_get("delivered_at")?,
    })
}

/// An event recorded by `WriteTx::event`, written at commit.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub event: String,
    /// The app (product) of the resource, for product-scoped endpoints.
    pub app_id: Option<Uuid>,
    pub payload: Value,
}

/// The app (product) a payload's resource belongs to: a product's own id, else the id of its
/// `product` relationship (Keygen documents, with or without the `data` envelope), else a native
/// resource's `app_id`.
pub fn app_of(payload: &Value) -> Option<Uuid> {
    let data = payload.get("data").unwrap_or(payload);
    let id = |v: &Value| v.as_str().and_then(|s| s.parse::<Uuid>().ok());
    if data.get("type").and_then(Value::as_str) == Some("products") {
        return data.get("id").and_then(id);
    }
    data.pointer("/relationships/product/data/id")
        .and_then(id)
        .or_else(|| data.get("app_id").and_then(id))
}

/// Writes one row per (event, enabled endpoint of the account that wants it), then NOTIFYs the
/// workers when a row was written or `wake` is set. One statement: in `WriteTx::commit`, the rows
/// commit with the change or not at all; outside a transaction (the validators' validation
/// events, which change nothing), they are written as they come.
pub async fn enqueue<C: GenericClient + Sync>(
    tx: &C,
    account: Uuid,
    events: &[PendingEvent],
    wake: bool,
) -> StoreResult<()> {
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    let apps: Vec<Option<Uuid>> = events.iter().map(|e| e.app_id).collect();
    let payloads: Vec<&Value> = events.iter().map(|e| &e.payload).collect();
    tx.query(
        "WITH ev AS (
             SELECT * FROM unnest($2::text[], $3::uuid[], $4::jsonb[])
                    WITH ORDINALITY AS e(event, app_id, payload, n)
         ), ins AS (
             INSERT INTO webhook_events (id, account_id, endpoint_id, event, payload)
             SELECT gen_random_uuid(), $1, w.id, ev.event, ev.payload
               FROM ev JOIN webhook_endpoints w
                 ON w.account_id = $1 AND w.enabled
                AND (w.app_id IS NULL OR w.app_id = ev.app_id)
                AND (ev.event = ANY (w.subscriptions) OR '*' = ANY (w.subscriptions))
              ORDER BY ev.n, w.created_at
             RETURNING 1
         )
         SELECT pg_notify($5, '')
           FROM (SELECT 1 FROM ins UNION ALL SELECT 1 WHERE $6) AS any_row
          LIMIT 1",
        &[&account, &names, &apps, &payloads, &CHANNEL, &wake],
    )
    .await?;
    Ok(())
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub endpoint_id: Option<Uuid>,
    pub event: Option<String>,
    pub status: Option<Status>,
    /// 1 to 100 (default 25).
    pub limit: Option<i64>,
    /// Keyset cursor returned as `next_cursor` by the previous page.
    pub cursor: Option<String>,
}

pub struct Page {
    pub items: Vec<WebhookEvent>,
    pub next_cursor: Option<String>,
}

/// The account's events, newest first.
pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account: Uuid,
    q: &ListQuery,
) -> StoreResult<Page> {
    let limit = super::page_size(q.limit, 25, 100);
    if let Some(e) = q.event.as_deref() {
        if !is_known_event(e) && e != TEST_EVENT {
            return Err(StoreError::Invalid(
                "event: unknown event name (see the subscriptions of webhook endpoints, or \
                 webhook.test)"
                    .into(),
            ));
        }
    }
    let (after_at, after_id) = q
        .cursor
        .as_deref()
        .map(super::decode_cursor)
        .transpose()?
        .unzip();
    let rows = c
        .query(
            &format!(
                "SELECT {COLUMNS} FROM webhook_events e
                  WHERE e.account_id = $1
                    AND ($2::uuid IS NULL OR e.endpoint_id = $2)
                    AND ($3::text IS NULL OR e.event = $3)
                    AND ($4::text IS NULL OR e.status = $4)
                    AND ($5::timestamptz IS NULL OR (e.created_at, e.id) < ($5, $6::uuid))
                  ORDER BY e.created_at DESC, e.id DESC LIMIT $7"
            ),
            &[
                &account,
                &q.endpoint_id,
                &q.event,
                &q.status.map(Status::as_str),
                &after_at,
                &after_id,
                &(limit + 1),
            ],
        )
        .await?;
    let mut items = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items
            .last()
            .map(|e| super::encode_cursor(e.created_at, e.id))
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// A page of the account's events (of one event name when given), newest first, with the
/// total: the page-number listing Keygen's API uses.
pub async fn list_page<C: GenericClient + Sync>(
    c: &C,
    account: Uuid,
    event: Option<&str>,
    page: super::Offset,
) -> StoreResult<(Vec<WebhookEvent>, i64)> {
    let filter = "e.account_id = $1 AND ($2::text IS NULL OR e.event = $2)";
    let total: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM webhook_events e WHERE {filter}"),
            &[&account, &event],
        )
        .await?
        .try_get(0)?;
    let rows = c
        .query(
            &format!(
                "SELECT {COLUMNS} FROM webhook_events e WHERE {filter}
                  ORDER BY e.created_at DESC, e.id DESC LIMIT $3 OFFSET $4"
            ),
            &[&account, &event, &page.limit, &page.offset],
        )
        .await?;
    let items = rows.iter().map(from_row).collect::<StoreResult<_>>()?;
    Ok((items, total))
}

pub async fn get<C: GenericClient + Sync>(
    c: &C,
    account: Uuid,
    id: Uuid,
) -> StoreResult<WebhookEvent> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM webhook_events e WHERE e.id = $1 AND e.account_id = $2"
            ),
            &[&id, &account],
        )
        .await?
        .ok_or(StoreError::NotFound("webhook event"))?;
    from_row(&row)
}

/// Removes an event from the log (and from the queue, if it was still waiting).
pub async fn delete(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    let n = wtx
        .tx()
        .execute(
            "DELETE FROM webhook_events WHERE id = $1 AND account_id = $2",
            &[&id, &wtx.account_id()],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound("webhook event"));
    }
    wtx.audit(
        "webhook_event.delete",
        "webhook_event",
        Some(id.to_string()),
        json!({}),
    );
    Ok(())
}

/// Queues the event for delivery now (whatever its outcome so far), and wakes the workers at
/// commit. Its attempts keep counting: an event that had used up its attempts gets one more
/// before it is `failed` again. Refused while a worker holds it.
pub async fn retry(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<WebhookEvent> {
    let account = wtx.account_id();
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "UPDATE webhook_events e
                    SET status = 'queued', next_attempt_at = now(), lease_id = NULL,
                        updated_at = now()
                  WHERE e.id = $1 AND e.account_id = $2 AND e.status <> 'delivering'
                 RETURNING {COLUMNS}"
            ),
            &[&id, &account],
        )
        .await?;
    let Some(row) = row else {
        // Either not this account's (404) or being delivered right now (409).
        get(wtx.tx(), account, id).await?;
        return Err(StoreError::Conflict(
            "the event is being delivered; retry it once this attempt is recorded".into(),
        ));
    };
    let e = from_row(&row)?;
    wtx.audit(
        "webhook_event.retry",
        "webhook_event",
        Some(e.id.to_string()),
        json!({"event": e.event}),
    );
    wtx.wake_webhooks();
    Ok(e)
}

/// Queues a [`TEST_EVENT`] for one endpoint, whatever it subscribes to, and wakes the workers at
/// commit: it is delivered, retried and logged like any event, so the log shows what the
/// receiver answered. Refused for a disabled endpoint, which the worker would not call.
pub async fn send_test(wtx: &mut WriteTx<'_>, endpoint_id: Uuid) -> StoreResult<WebhookEvent> {
    let account = wtx.account_id();
    // FOR SHARE: the endpoint cannot be disabled or deleted between this check and the insert.
    let enabled: bool = wtx
        .tx()
        .query_opt(
            "SELECT enabled FROM webhook_endpoints WHERE id = $1 AND account_id = $2 FOR SHARE",
            &[&endpoint_id, &account],
        )
        .await?
        .ok_or(StoreError::NotFound("webhook endpoint"))?
        .try_get(0)?;
    if !enabled {
        return Err(StoreError::Conflict(
            "the endpoint is disabled: enable it to send a test event".into(),
        ));
    }
    let payload = json!({"data": {
        "type": "webhook-endpoints",
        "id": endpoint_id.to_string(),
        "attributes": {"test": true, "message": "A test event sent from Keyward."},
    }});
    let row = wtx
        .tx()
        .query_one(
            &format!(
                "INSERT INTO webhook_events AS e (id, account_id, endpoint_id, event, payload)
                 VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::new_v4(),
                &account,
                &endpoint_id,
                &TEST_EVENT,
                &payload,
            ],
        )
        .await?;
    let e = from_row(&row)?;
    wtx.audit(
        "webhook_endpoint.test",
        "webhook_endpoint",
        Some(endpoint_id.to_string()),
        json!({"event_id": e.id}),
    );
    wtx.wake_webhooks();
    Ok(e)
}

/// A claimed event with what its delivery needs of its endpoint.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub event: WebhookEvent,
    /// Presented by [`record_attempt`]: only the current claim may record.
    pub lease_id: Uuid,
    pub url: String,
    pub app_id: Option<Uuid>,
    pub api_version: String,
    pub enabled: bool,
}

/// Claims up to `limit` due events (queued and due, or delivering with an expired lease): each
/// becomes `delivering` with a fresh `lease_id` until now + `lease`. `SKIP LOCKED` lets several
/// workers claim side by side without waiting on each other or claiming the same row.
pub async fn claim_due<C: GenericClient + Sync>(
    c: &C,
    limit: i64,
    lease: Duration,
) -> StoreResult<Vec<Claimed>> {
    let rows = c
        .query(
            &format!(
                "WITH due AS (
                     SELECT id FROM webhook_events
                      WHERE status IN ('queued', 'delivering') AND next_attempt_at <= now()
                      ORDER BY next_attempt_at
                      LIMIT $1
                        FOR UPDATE SKIP LOCKED
                 )
                 UPDATE webhook_events e
                    SET status = 'delivering', lease_id = gen_random_uuid(),
                        next_attempt_at = now() + make_interval(secs => $2), updated_at = now()
                   FROM due, webhook_endpoints w
                  WHERE e.id = due.id AND w.id = e.endpoint_id
                 RETURNING {COLUMNS}, e.lease_id, w.url AS endpoint_url,
                           w.app_id AS endpoint_app_id, w.api_version, w.enabled"
            ),
            &[&limit, &lease.as_secs_f64()],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Claimed {
                event: from_row(r)?,
                lease_id: r.try_get("lease_id")?,
                url: r.try_get("endpoint_url")?,
                app_id: r.try_get("endpoint_app_id")?,
                api_version: r.try_get("api_version")?,
                enabled: r.try_get("enabled")?,
            })
        })
        .collect()
}

/// When the next event falls due (a queued one's attempt or a lease's end), if any.
pub async fn next_due<C: GenericClient + Sync>(c: &C) -> StoreResult<Option<DateTime<Utc>>> {
    Ok(c.query_one(
        "SELECT min(next_attempt_at) FROM webhook_events
          WHERE status IN ('queued', 'delivering')",
        &[],
    )
    .await?
    .try_get(0)?)
}

/// How long to wait after the `attempt`-th failed attempt (1 for the first): `base` doubled per
/// earlier failure, at most `max`, plus up to a quarter of that at random, so a receiver that was
/// down is not hit by every waiting event in the same instant when it comes back. Below the cap
/// each delay is longer than any the previous attempt could get.
pub fn retry_delay(attempt: u32, base: Duration, max: Duration) -> Duration {
    let factor = 2f64.powi(attempt.saturating_sub(1).min(64) as i32);
    let d = Duration::try_from_secs_f64(base.as_secs_f64() * factor).map_or(max, |d| d.min(max));
    d.saturating_add(d.mul_f64(rand::random::<f64>() / 4.0))
}

/// What became of one attempt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    Delivered,
    /// Failed; try again after this delay.
    RetryAfter(Duration),
    /// Failed, and no attempt is left (or the endpoint cannot be served).
    GiveUp,
}

#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    pub outcome: Outcome,
    pub response_code: Option<u16>,
    pub response_body: Option<&'a str>,
    pub error: Option<&'a str>,
    pub duration: Duration,
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncated(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Records an attempt of a claim. False when the claim is no longer current (its lease ran out
/// and another worker claimed the event, or the event was deleted or retried meanwhile): the
/// newer state stands.
pub async fn record_attempt<C: GenericClient + Sync>(
    c: &C,
    claimed: &Claimed,
    a: &Attempt<'_>,
) -> StoreResult<bool> {
    let (status, delay) = match a.outcome {
        Outcome::Delivered => (Status::Delivered, Duration::ZERO),
        Outcome::RetryAfter(d) => (Status::Queued, d),
        Outcome::GiveUp => (Status::Failed, Duration::ZERO),
    };
    let code = a.response_code.map(i32::from);
    let body = a.response_body.map(|b| truncated(b, MAX_LOGGED_BODY));
    let error = a.error.map(|e| truncated(e, MAX_LOGGED_ERROR));
    let ms = i64::try_from(a.duration.as_millis()).unwrap_or(i64::MAX);
    let n = c
        .execute(
            "UPDATE webhook_events SET
                 attempts = attempts + 1,
                 status = $3,
                 next_attempt_at = CASE WHEN $3 = 'queued'
                                        THEN now() + make_interval(secs => $4)
                                        ELSE now() END,
                 lease_id = NULL,
                 last_response_code = $5,
                 last_response_body = $6,
                 last_error = $7,
                 delivered_at = CASE WHEN $3 = 'delivered' THEN now() ELSE delivered_at END,
                 attempt_log = (
                     SELECT coalesce(jsonb_agg(x ORDER BY i), '[]'::jsonb) FROM (
                         SELECT x, i FROM jsonb_array_elements(
                                    attempt_log || jsonb_build_array(jsonb_build_object(
                                        'at', now(), 'code', $5::int, 'error', $7::text, 'ms', $8::bigint)))
                                WITH ORDINALITY AS t(x, i)
                          ORDER BY i DESC LIMIT $9) AS kept),
                 updated_at = now()
             WHERE id = $1 AND lease_id = $2",
            &[
                &claimed.event.id,
                &claimed.lease_id,
                &status.as_str(),
                &delay.as_secs_f64(),
                &code,
                &body,
                &error,
                &ms,
                &MAX_LOGGED_ATTEMPTS,
            ],
        )
        .await?;
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_of_payloads() {
        let app = Uuid::new_v4();
        let keygen = json!({"data": {"type": "licenses", "relationships": {"product": {"data": {"type": "products", "id": app.to_string()}}}}});
        assert_eq!(app_of(&keygen), Some(app));
        assert_eq!(app_of(&keygen["data"]), Some(app));
        let product = json!({"data": {"type": "products", "id": app.to_string()}});
        assert_eq!(app_of(&product), Some(app));
        assert_eq!(app_of(&json!({"app_id": app.to_string()})), Some(app));
        assert_eq!(app_of(&json!({"data": {"type": "users", "id": "x"}})), None);
        assert_eq!(app_of(&json!("text")), None);
    }

    #[test]
    fn retry_delays_grow_to_the_cap() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(3600);
        let mut ceiling = Duration::ZERO;
        for attempt in 1..=12 {
            let d = retry_delay(attempt, base, max);
            let floor = (base * 2u32.pow(attempt - 1)).min(max);
            assert!(d >= floor && d <= floor + floor / 4, "{attempt}: {d:?}");
            assert!(d >= ceiling.min(max), "{attempt}: {d:?} < {ceiling:?}");
            ceiling = floor + floor / 4;
        }
        assert!(retry_delay(u32::MAX, base, max) <= max + max / 4);
        assert_eq!(retry_delay(3, Duration::ZERO, max), Duration::ZERO);
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncated("abc", 10), "abc");
        assert_eq!(truncated("ééé", 3), "é");
        assert_eq!(truncated("abcdef", 4), "abcd");
    }

    #[test]
    fn cursors_round_trip() {
        let at = DateTime::<Utc>::from_timestamp_micros(1_700_000_000_123_456).unwrap_or_default();
        let id = Uuid::new_v4();
        let c = crate::store::encode_cursor(at, id);
        assert_eq!(crate::store::decode_cursor(&c).ok(), Some((at, id)));
        assert!(crate::store::decode_cursor("x_y").is_err());
    }
}
