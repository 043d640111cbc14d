//! Panda's shapes. Key sets are exact (structs, no optional extras but the ones §1.4 asks for),
//! and every time is `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`, the only form strict clients parse.

use chrono::{DateTime, Duration, Utc};
use keyward_shared::model::License;
use keyward_shared::store::keyless::KeylessEntry;
use serde::Serialize;

/// What a key that never expires shows: Panda has no such key, and its clients need a date.
pub const NEVER: &str = "9999-12-31T23:59:59.999Z";

/// `2024-12-31T00:00:00.000Z`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A key's expiry as Panda shows it: its date; for a key whose validity starts at its first use
/// and has no provisional date, the expiry it would get if used now; else [`NEVER`].
pub fn expires_at(l: &License) -> String {
    match (l.expires_at, l.duration_secs) {
        (Some(at), _) => timestamp(at),
        (None, Some(d)) => timestamp(Utc::now() + Duration::seconds(d)),
        (None, None) => NEVER.to_string(),
    }
}

/// The key's integer id, as text (Panda's ids are strings).
fn id(l: &License) -> String {
    l.traits.num_id.to_string()
}

fn note(l: &License) -> String {
    l.note.clone().unwrap_or_default()
}

/// An item of `generatedKeys`: Panda's four keys, plus the days-key pair only when the request
/// set `expiresByDaysKey=true` (the strict Java model has exactly four).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeneratedItem {
    expires_at: String,
    note: String,
    value: String,
    is_premium: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_by_days_key: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    days_key: Option<i64>,
}

impl GeneratedItem {
    pub fn new(l: &License, days_key: Option<i64>) -> GeneratedItem {
        GeneratedItem {
            expires_at: expires_at(l),
            note: note(l),
            value: l.key.clone(),
            is_premium: l.traits.premium,
            expires_by_days_key: days_key.map(|_| true),
            days_key,
        }
    }
}

/// `key/fetch`'s `key`: a redeemed key.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedeemedKey {
    id: String,
    value: String,
    note: String,
    hwid: String,
    expires_at: String,
    is_premium: bool,
}

impl RedeemedKey {
    pub fn new(l: &License) -> RedeemedKey {
        RedeemedKey {
            id: id(l),
            value: l.key.clone(),
            note: note(l),
            // Panda binds one HWID; the first bound stands for the key.
            hwid: l.hwids.first().map(|h| h.hwid.clone()).unwrap_or_default(),
            expires_at: expires_at(l),
            is_premium: l.traits.premium,
        }
    }
}

/// `generated-key/fetch`'s `generatedKey`: an unredeemed key.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeneratedKey {
    id: String,
    value: String,
    note: String,
    expires_at: String,
    is_premium: bool,
}

impl GeneratedKey {
    pub fn new(l: &License) -> GeneratedKey {
        GeneratedKey {
            id: id(l),
            value: l.key.clone(),
            note: note(l),
            expires_at: expires_at(l),
            is_premium: l.traits.premium,
        }
    }
}

/// `keyless/fetch`'s `keyless`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Keyless {
    id: String,
    hwid: String,
    expires_at: String,
    is_premium: bool,
}

impl Keyless {
    pub fn new(e: &KeylessEntry) -> Keyless {
        Keyless {
            id: e.id.to_string(),
            hwid: e.hwid.clone(),
            expires_at: timestamp(e.expires_at),
            is_premium: e.premium,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_have_three_fraction_digits_and_z() {
        let t = Utc.with_ymd_and_hms(2024, 12, 31, 0, 0, 0).unwrap();
        assert_eq!(timestamp(t), "2024-12-31T00:00:00.000Z");
        let t = t + Duration::microseconds(123_456);
        assert_eq!(timestamp(t), "2024-12-31T00:00:00.123Z");
    }
}
