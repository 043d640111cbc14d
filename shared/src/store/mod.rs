//! The SQL of every resource, used by both services. Reads take any client; writes that can
//! change a validator's answer take a [`crate::write::WriteTx`].

/// A license's effective limits, for queries of `licenses l JOIN policies p ON p.id =
/// l.policy_id`: its own overrides, else its policy's. A node-locked policy's `max_machines` is
/// 1; a floating one's NULL means any number (0 here).
macro_rules! limits {
    () => {
        "coalesce(l.hwid_limit, p.max_machines, 0) AS hwid_limit,
         coalesce(l.ip_limit, p.ip_limit) AS ip_limit"
    };
}

pub mod account_users;
pub mod accounts;
pub mod api_keys;
pub mod apps;
pub mod audit;
pub mod blacklist;
pub mod client_logs;
pub mod entitlements;
pub mod key_pool;
pub mod key_providers;
pub mod key_system;
pub mod keyless;
pub mod license_bulk;
pub mod license_details;
pub mod license_exports;
pub mod license_stats;
pub mod license_uses;
pub mod licenses;
pub mod machines;
pub mod policies;
pub mod sessions;
pub mod signing_keys;
pub mod stats;
pub mod subscriptions;
pub mod tokens;
pub mod transactions;
pub mod usage;
pub mod users;
pub mod validation_buckets;
pub mod variables;
pub mod webhook_endpoints;
pub mod webhook_events;
pub mod webhooks;

/// Clamps a requested page size into `1..=max`, defaulting when absent.
pub fn page_size(requested: Option<i64>, default: i64, max: i64) -> i64 {
    requested.unwrap_or(default).clamp(1, max)
}

/// Page-number pagination, as the KeyAuth-style dashboards use it (`page` from 1).
#[derive(Debug, Clone, Copy)]
pub struct Offset {
    pub limit: i64,
    pub offset: i64,
}

impl Offset {
    pub fn new(page: Option<i64>, limit: Option<i64>, default: i64, max: i64) -> Offset {
        let limit = page_size(limit, default, max);
        let page = page.unwrap_or(1).clamp(1, 1_000_000);
        Offset {
            limit,
            offset: (page - 1) * limit,
        }
    }
}

/// The keyset cursor of a list ordered by (created, id) descending: what `next_cursor` says.
pub(crate) fn encode_cursor(created_at: chrono::DateTime<chrono::Utc>, id: uuid::Uuid) -> String {
    format!("{}_{}", created_at.timestamp_micros(), id)
}

/// A cursor back into (created, id); a malformed one is the caller's mistake.
pub(crate) fn decode_cursor(
    s: &str,
) -> crate::error::StoreResult<(chrono::DateTime<chrono::Utc>, uuid::Uuid)> {
    let bad = || crate::error::StoreError::Invalid("cursor is malformed".into());
    let (micros, id) = s.split_once('_').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = chrono::DateTime::<chrono::Utc>::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

/// Escapes a user-supplied fragment for `ILIKE '%…%'`.
pub(crate) fn contains_pattern(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}
