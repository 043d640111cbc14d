//! Cache invalidations: what a committed write changed, sent to every validator with `pg_notify`.
//!
//! One channel, typed JSON payloads naming what changed (kind + ids). A transaction's
//! invalidations are packed into as few notifications as fit under PostgreSQL's 8000-byte payload
//! limit; each carries the transaction's cache generation so a validator can detect a lost one.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const CHANNEL: &str = "keyward_invalidations";
/// Below NOTIFY's 8000-byte limit with room for the envelope.
pub const MAX_PAYLOAD: usize = 7000;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Invalidation {
    /// One license, addressed the way validators cache it.
    License { app: Uuid, key: String },
    /// App settings (or the app itself) changed: drop the app and everything cached under it.
    App { app: Uuid },
    /// One of the app's policies changed: the licenses that follow it hold its limits.
    Policy { app: Uuid },
    /// The app's blacklist changed.
    Blacklist { app: Uuid },
    /// One end user (their subscriptions, variables, HWID, ban) changed.
    User { app: Uuid, username: String },
    /// The app's global variables changed.
    Vars { app: Uuid },
    /// One client-API session changed (logged in, logged out, deleted).
    Session { app: Uuid, id: String },
    /// One HWID's keyless entry of the app changed.
    Keyless { app: Uuid, hwid: String },
    /// Drop everything.
    All,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// Cache generation committed by the transaction that sent this.
    pub g: i64,
    pub i: Vec<Invalidation>,
}

/// Splits invalidations into payloads that each fit in one NOTIFY.
pub fn encode(generation: i64, items: &[Invalidation]) -> Vec<String> {
    encode_items(items)
        .iter()
        .map(|i| envelope(generation, i))
        .collect()
}

/// The payloads without their generation: the JSON array of each one's `i`. The write path
/// wraps them in SQL (see [`envelope`]), in the statement that takes the generation, so that no
/// client round trip falls between taking it and committing.
pub fn encode_items(items: &[Invalidation]) -> Vec<String> {
    let mut out = Vec::new();
    let mut batch: Vec<Invalidation> = Vec::new();
    let mut size = 0;
    for item in items {
        let item_len = serde_json::to_string(item)
            .map(|s| s.len())
            .unwrap_or(MAX_PAYLOAD);
        if !batch.is_empty() && size + item_len + 1 > MAX_PAYLOAD - 40 {
            out.push(render(std::mem::take(&mut batch)));
            size = 0;
        }
        if item_len > MAX_PAYLOAD - 40 {
            // A single oversized entry (a pathological key) degrades to a full flush.
            out.push(render(vec![Invalidation::All]));
            continue;
        }
        size += item_len + 1;
        batch.push(item.clone());
    }
    if !batch.is_empty() || out.is_empty() {
        out.push(render(batch));
    }
    out
}

/// `{"g":<generation>,"i":<items>}`, the [`Payload`] layout; the write path builds the same
/// string in SQL.
fn envelope(generation: i64, items: &str) -> String {
    format!("{{\"g\":{generation},\"i\":{items}}}")
}

fn render(items: Vec<Invalidation>) -> String {
    serde_json::to_string(&items).unwrap_or_else(|_| r#"[{"k":"all"}]"#.to_string())
}

/// Parses a payload; an unreadable one is answered with a full flush by the caller.
pub fn decode(payload: &str) -> Option<Payload> {
    serde_json::from_str(payload).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_split() {
        let app = Uuid::new_v4();
        let items: Vec<Invalidation> = (0..500)
            .map(|i| Invalidation::License {
                app,
                key: format!("KEY-{i:05}-XXXXXXXXXXXXXXXXXXXX"),
            })
            .collect();
        let payloads = encode(7, &items);
        assert!(payloads.len() > 1);
        let mut back = Vec::new();
        for p in &payloads {
            assert!(p.len() < 8000, "{}", p.len());
            let d = decode(p).unwrap();
            assert_eq!(d.g, 7);
            back.extend(d.i);
        }
        assert_eq!(back, items);
    }

    #[test]
    fn empty_still_announces_generation() {
        let p = encode(3, &[]);
        assert_eq!(decode(&p[0]).unwrap(), Payload { g: 3, i: vec![] });
    }

    #[test]
    fn oversized_entry_becomes_flush() {
        let p = encode(
            1,
            &[Invalidation::License {
                app: Uuid::nil(),
                key: "k".repeat(9000),
            }],
        );
        assert_eq!(decode(&p[0]).unwrap().i, vec![Invalidation::All]);
    }
}
