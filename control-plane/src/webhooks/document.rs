//! Keygen's `webhook-events` resource: the body of every delivery, and what a Keygen-shaped
//! listing of events shows. The event's payload travels as JSON text in `attributes.payload`, as
//! Keygen sends it; the event id doubles as `idempotencyToken`, the same on every attempt, so a
//! receiver can drop a repeat.

use chrono::{DateTime, Utc};
use keyward_shared::keygen_doc::{time, Links};
use keyward_shared::store::webhook_events::{Status, WebhookEvent};
use serde_json::{json, Value};

/// Keygen's status names.
fn status(s: Status) -> &'static str {
    match s {
        Status::Queued => "QUEUED",
        Status::Delivering => "DELIVERING",
        Status::Delivered => "DELIVERED",
        Status::Failed => "FAILED",
    }
}

/// The resource object of an event sent to (or listed for) `endpoint_url`. `status` and
/// `updated` are given by the caller: a delivery shows itself as `DELIVERING` at send time.
pub fn resource(
    e: &WebhookEvent,
    endpoint_url: &str,
    api_version: &str,
    shown_status: Status,
    updated: DateTime<Utc>,
) -> Value {
    let links = Links::new(e.account_id);
    json!({
        "id": e.id.to_string(),
        "type": "webhook-events",
        "attributes": {
            "endpoint": endpoint_url,
            // Keygen sends the payload as a JSON string; serialising a Value cannot fail.
            "payload": serde_json::to_string(&e.payload).unwrap_or_default(),
            "event": e.event,
            "status": status(shown_status),
            "lastResponseCode": e.last_response_code,
            "lastResponseBody": e.last_response_body,
            "idempotencyToken": e.id.to_string(),
            "apiVersion": api_version,
            "created": time(e.created_at),
            "updated": time(updated),
        },
        "relationships": {
            "account": links.account(),
        },
        "links": {"self": links.of("webhook-events", e.id)},
    })
}

/// The body POSTed to the endpoint.
pub fn delivery(
    e: &WebhookEvent,
    endpoint_url: &str,
    api_version: &str,
    now: DateTime<Utc>,
) -> Value {
    json!({"data": resource(e, endpoint_url, api_version, Status::Delivering, now)})
}
