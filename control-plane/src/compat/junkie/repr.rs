//! Junkie's `Key` object (spec §2.1): every schema field, from a core license and the names of
//! the account's services and providers.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use keyward_shared::model::{License, LicenseStatus};
use keyward_shared::store::{accounts, apps, key_providers, key_system};
use serde_json::{json, Value};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::JkResult;

/// What a `Key` shows besides the license: the account's integer id, and its services' and
/// providers' integer ids and names (one read each per request, not one per key).
pub struct Names {
    account_num: i64,
    services: HashMap<Uuid, (i64, String)>,
    providers: HashMap<i64, String>,
}

impl Names {
    pub async fn load<C: GenericClient + Sync>(c: &C, account: Uuid) -> JkResult<Names> {
        Ok(Names {
            account_num: accounts::num_id(c, account).await?,
            services: apps::list(c, account)
                .await?
                .into_iter()
                .map(|a| (a.id, (a.key_system.num_id, a.name)))
                .collect(),
            providers: key_providers::list(c, account)
                .await?
                .into_iter()
                .map(|p| (p.id, p.name))
                .collect(),
        })
    }

    pub fn key(&self, l: &License) -> Value {
        let service = self.services.get(&l.app_id);
        let provider = l.traits.provider_id;
        json!({
            "id": l.traits.num_id,
            "key_value": l.key,
            "user_id": self.account_num,
            "service_id": service.map(|s| s.0),
            // Non-nullable in Junkie's schema; 0 for a key no provider handed out (one made
            // through another API), as no provider has id 0.
            "provider_id": provider.unwrap_or(0),
            "folder_id": null,
            "expires_at": l.expires_at.map(time),
            "used_at": l.used_at.map(time),
            "is_premium": l.traits.premium,
            "is_invalidated": l.status != LicenseStatus::Active,
            "one_time_use": l.traits.one_time_use,
            "expiry_on_first_use": key_system::expires_on_first_use(l),
            "no_hwid": !l.traits.hwid_check,
            "validity_minutes": key_system::validity_secs(l).map(|s| s / 60),
            "key_name": l.note,
            // 0 (unlimited) is shown as Junkie's null.
            "hwid_limit": (l.hwid_limit > 0).then_some(l.hwid_limit),
            "discord_id": l.traits.discord_id,
            "created_at": time(l.created_at),
            "service_name": service.map(|s| s.1.as_str()),
            "provider_name": provider.and_then(|p| self.providers.get(&p)),
            "folder_name": null,
            "hwids": l.hwids.iter().map(|h| json!({
                "hwid": h.hwid,
                "executor_user_id": null,
                "bound_at": time(h.bound_at),
                "bound_by": bound_by(&h.bound_by),
            })).collect::<Vec<_>>(),
            "keys_hwid": l.hwids.iter().map(|h| h.hwid.as_str()).collect::<Vec<_>>(),
        })
    }

    pub fn keys(&self, ls: &[License]) -> Vec<Value> {
        ls.iter().map(|l| self.key(l)).collect()
    }
}

/// ISO-8601 UTC with milliseconds, as JavaScript's `toISOString` writes it.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Who bound a HWID, in Junkie's words (the core's first-use binding is Junkie's verify).
fn bound_by(core: &str) -> &str {
    match core {
        "validate" => "verify",
        "api" | "admin" | "manual" | "verify" => core,
        _ => "admin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_have_milliseconds_and_z() {
        let t = DateTime::parse_from_rfc3339("2030-01-02T03:04:05Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(time(t), "2030-01-02T03:04:05.000Z");
    }

    #[test]
    fn bound_by_speaks_junkie() {
        assert_eq!(bound_by("validate"), "verify");
        assert_eq!(bound_by("api"), "api");
        assert_eq!(bound_by("manual"), "manual");
        assert_eq!(bound_by("admin"), "admin");
    }
}
