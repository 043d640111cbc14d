//! Policies: the license template of the core (Keygen's policy; KeyAuth's level and app
//! settings, Panda's days-keys, Junkie's validity and HWID settings and CyberLicense's license
//! types map onto it). This module holds the concept and its rules; `store::policies` the SQL.
//!
//! The enumerations are the union of what the seed systems distinguish, spelled in lower snake
//! case; a facade translates its own spelling (Keygen: `RESTRICT_ACCESS` ↔ `restrict_access`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::model::{check_metadata, present};

/// A closed set of names stored as text: `as_str`, `parse`, `ALL`, and serde as that text
/// (an unknown name is refused with the list of the known ones).
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        // Stored as text; a name the column's CHECK would refuse is a read error, not a panic.
        impl postgres_types::ToSql for $name {
            fn to_sql(
                &self,
                ty: &postgres_types::Type,
                out: &mut bytes::BytesMut,
            ) -> Result<postgres_types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
                self.as_str().to_sql(ty, out)
            }

            fn accepts(ty: &postgres_types::Type) -> bool {
                <&str as postgres_types::ToSql>::accepts(ty)
            }

            postgres_types::to_sql_checked!();
        }

        impl<'a> postgres_types::FromSql<'a> for $name {
            fn from_sql(
                ty: &postgres_types::Type,
                raw: &'a [u8],
            ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
                let s = <&str as postgres_types::FromSql>::from_sql(ty, raw)?;
                $name::parse(s).ok_or_else(|| format!("unknown {} {s:?}", stringify!($name)).into())
            }

            fn accepts(ty: &postgres_types::Type) -> bool {
                <&str as postgres_types::FromSql>::accepts(ty)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<str>::deserialize(d)?;
                $name::parse(&s).ok_or_else(|| {
                    serde::de::Error::unknown_variant(&s, &[$($text),+])
                })
            }
        }
    };
}

text_enum!(
    /// When a license's clock starts.
    ExpirationBasis {
        FromCreation = "from_creation",
        FromFirstValidation = "from_first_validation",
        FromFirstActivation = "from_first_activation",
        FromFirstDownload = "from_first_download",
        FromFirstUse = "from_first_use",
    }
);

text_enum!(
    /// What an expired license still allows (Keygen's four strategies).
    ExpirationStrategy {
        /// Invalid, but the license can still authenticate (e.g. to check out an old release).
        RestrictAccess = "restrict_access",
        /// Invalid and refused even as a credential.
        RevokeAccess = "revoke_access",
        /// Valid, reported as expired.
        MaintainAccess = "maintain_access",
        /// Valid, reported as expired, and new machines may still be activated.
        AllowAccess = "allow_access",
    }
);

text_enum!(
    RenewalBasis {
        FromExpiry = "from_expiry",
        FromNow = "from_now",
        FromNowIfExpired = "from_now_if_expired",
    }
);

text_enum!(
    /// Which credentials a license's own client may use (Keygen's `authenticationStrategy`).
    AuthenticationStrategy {
        Token = "token",
        License = "license",
        Mixed = "mixed",
        None = "none",
    }
);

text_enum!(
    OverageStrategy {
        AlwaysAllow = "always_allow_overage",
        Allow1_25x = "allow_1_25x_overage",
        Allow1_5x = "allow_1_5x_overage",
        Allow2x = "allow_2x_overage",
        NoOverage = "no_overage",
    }
);

text_enum!(
    /// Where a machine's fingerprint must be unique.
    MachineUniqueness {
        PerAccount = "unique_per_account",
        PerProduct = "unique_per_product",
        PerPolicy = "unique_per_policy",
        PerLicense = "unique_per_license",
    }
);

text_enum!(
    /// How many of several fingerprints in one validation must match a machine.
    MachineMatching {
        Any = "match_any",
        Two = "match_two",
        Most = "match_most",
        All = "match_all",
    }
);

text_enum!(
    HeartbeatCull {
        DeactivateDead = "deactivate_dead",
        KeepDead = "keep_dead",
    }
);

text_enum!(
    /// Whether, and for how long after its death, a machine may come back with a ping.
    HeartbeatResurrection {
        NoRevive = "no_revive",
        AlwaysRevive = "always_revive",
        OneMinute = "1_minute_revive",
        TwoMinutes = "2_minute_revive",
        FiveMinutes = "5_minute_revive",
        TenMinutes = "10_minute_revive",
        FifteenMinutes = "15_minute_revive",
    }
);

text_enum!(
    HeartbeatBasis {
        FromCreation = "from_creation",
        FromFirstPing = "from_first_ping",
    }
);

text_enum!(
    CheckInInterval {
        Day = "day",
        Week = "week",
        Month = "month",
        Year = "year",
    }
);

text_enum!(
    /// A scope a validation may be required to carry.
    Scope {
        Product = "product",
        Policy = "policy",
        Machine = "machine",
        Fingerprint = "fingerprint",
        Components = "components",
        User = "user",
        Checksum = "checksum",
        Version = "version",
        Environment = "environment",
    }
);

/// The longest duration a policy may give (longer would overflow date arithmetic downstream).
pub const MAX_DURATION_SECS: i64 = 100 * 366 * 86_400;
pub const MIN_DURATION_SECS: i64 = 60;
pub const MIN_HEARTBEAT_SECS: i32 = 60;
pub const MAX_HEARTBEAT_SECS: i32 = 366 * 86_400;
pub const DEFAULT_HEARTBEAT_SECS: i32 = 600;
pub const MAX_IP_LIMIT: i32 = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    pub id: Uuid,
    pub account_id: Uuid,
    pub app_id: Uuid,
    pub name: String,
    /// The app's default policy: licenses made without naming a policy follow it (one per app,
    /// made with the app, never deleted).
    pub is_default: bool,
    /// How long a license of this policy lasts; `None`: it does not expire.
    pub duration_secs: Option<i64>,
    pub expiration_basis: ExpirationBasis,
    pub expiration_strategy: ExpirationStrategy,
    pub renewal_basis: RenewalBasis,
    pub authentication_strategy: AuthenticationStrategy,
    /// Node-locked (false) means exactly one machine.
    pub floating: bool,
    /// Machine limits are enforced by validation, not only at activation.
    pub strict: bool,
    pub max_machines: Option<i32>,
    pub max_cores: Option<i32>,
    pub max_memory: Option<i64>,
    pub max_disk: Option<i64>,
    pub max_processes: Option<i32>,
    pub max_users: Option<i32>,
    pub max_uses: Option<i32>,
    /// Distinct client addresses a license may be used from (0: any).
    pub ip_limit: i32,
    pub overage_strategy: OverageStrategy,
    pub machine_uniqueness_strategy: MachineUniqueness,
    pub machine_matching_strategy: MachineMatching,
    pub require_heartbeat: bool,
    pub heartbeat_duration_secs: i32,
    pub heartbeat_cull_strategy: HeartbeatCull,
    pub heartbeat_resurrection_strategy: HeartbeatResurrection,
    pub heartbeat_basis: HeartbeatBasis,
    pub require_check_in: bool,
    pub check_in_interval: Option<CheckInInterval>,
    pub check_in_interval_count: Option<i32>,
    pub required_scopes: Vec<Scope>,
    /// The key can be redeemed once only.
    pub one_time_use: bool,
    /// Only admins may create licenses of this policy.
    pub protected: bool,
    /// Licenses take their keys from the policy's pool of pre-made keys (Keygen's `usePool`).
    pub use_pool: bool,
    pub metadata: Map<String, Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Policy {
    /// A new policy of `app` with every setting at its default (Keygen's defaults).
    pub fn new(account_id: Uuid, app_id: Uuid, name: String) -> Policy {
        let now = Utc::now();
        Policy {
            id: Uuid::new_v4(),
            account_id,
            app_id,
            name,
            is_default: false,
            duration_secs: None,
            expiration_basis: ExpirationBasis::FromCreation,
            expiration_strategy: ExpirationStrategy::RestrictAccess,
            renewal_basis: RenewalBasis::FromExpiry,
            authentication_strategy: AuthenticationStrategy::Token,
            floating: false,
            strict: false,
            max_machines: Some(1),
            max_cores: None,
            max_memory: None,
            max_disk: None,
            max_processes: None,
            max_users: None,
            max_uses: None,
            ip_limit: 0,
            overage_strategy: OverageStrategy::NoOverage,
            machine_uniqueness_strategy: MachineUniqueness::PerLicense,
            machine_matching_strategy: MachineMatching::Any,
            require_heartbeat: false,
            heartbeat_duration_secs: DEFAULT_HEARTBEAT_SECS,
            heartbeat_cull_strategy: HeartbeatCull::DeactivateDead,
            heartbeat_resurrection_strategy: HeartbeatResurrection::NoRevive,
            heartbeat_basis: HeartbeatBasis::FromFirstPing,
            require_check_in: false,
            check_in_interval: None,
            check_in_interval_count: None,
            required_scopes: Vec::new(),
            one_time_use: false,
            protected: false,
            use_pool: false,
            metadata: Map::new(),
            created_at: now,
            updated_at: now,
        }
    }

    /// Applies `patch` and checks the result as a whole (a patch may be fine alone and wrong
    /// with the settings it lands on, e.g. a 1.5× overage on a node-locked policy).
    pub fn apply(&mut self, patch: &PolicyPatch) -> Result<(), String> {
        macro_rules! set {
            ($($field:ident),+) => { $(if let Some(v) = &patch.$field { self.$field = v.clone(); })+ };
        }
        if let Some(name) = &patch.name {
            self.name = name.trim().to_string();
        }
        set!(
            duration_secs,
            expiration_basis,
            expiration_strategy,
            renewal_basis,
            authentication_strategy,
            floating,
            strict,
            max_machines,
            max_cores,
            max_memory,
            max_disk,
            max_processes,
            max_users,
            max_uses,
            ip_limit,
            overage_strategy,
            machine_uniqueness_strategy,
            machine_matching_strategy,
            require_heartbeat,
            heartbeat_duration_secs,
            heartbeat_cull_strategy,
            heartbeat_resurrection_strategy,
            heartbeat_basis,
            require_check_in,
            check_in_interval,
            check_in_interval_count,
            one_time_use,
            protected,
            use_pool,
            metadata
        );
        if let Some(scopes) = &patch.required_scopes {
            let mut unique = Vec::with_capacity(scopes.len());
            for s in scopes {
                if !unique.contains(s) {
                    unique.push(*s);
                }
            }
            self.required_scopes = unique;
        }
        // A node-locked policy has exactly one machine, whatever it was set to before.
        if !self.floating && patch.max_machines.is_none() {
            self.max_machines = Some(1);
        }
        self.check()
    }

    /// The rules a stored policy always satisfies; the message names the offending field.
    pub fn check(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.chars().count() > 100 {
            return Err("name must be 1 to 100 characters".into());
        }
        if let Some(d) = self.duration_secs {
            if !(MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&d) {
                return Err(format!(
                    "duration_secs must be between {MIN_DURATION_SECS} and {MAX_DURATION_SECS} (100 years), or null for no expiry"
                ));
            }
        }
        if !self.floating && self.max_machines != Some(1) {
            return Err("max_machines must be 1 for a node-locked policy (floating: false)".into());
        }
        let positive = [
            ("max_machines", self.max_machines.map(i64::from)),
            ("max_cores", self.max_cores.map(i64::from)),
            ("max_memory", self.max_memory),
            ("max_disk", self.max_disk),
            ("max_processes", self.max_processes.map(i64::from)),
            ("max_users", self.max_users.map(i64::from)),
        ];
        for (field, value) in positive {
            if value.is_some_and(|v| v < 1) {
                return Err(format!("{field} must be at least 1, or null for no limit"));
            }
        }
        if self.max_uses.is_some_and(|v| v < 0) {
            return Err("max_uses must be at least 0, or null for no limit".into());
        }
        if !(0..=MAX_IP_LIMIT).contains(&self.ip_limit) {
            return Err(format!(
                "ip_limit must be between 0 (any) and {MAX_IP_LIMIT}"
            ));
        }
        self.check_overage(&positive)?;
        if !(MIN_HEARTBEAT_SECS..=MAX_HEARTBEAT_SECS).contains(&self.heartbeat_duration_secs) {
            return Err(format!(
                "heartbeat_duration_secs must be between {MIN_HEARTBEAT_SECS} and {MAX_HEARTBEAT_SECS}"
            ));
        }
        if let Some(n) = self.check_in_interval_count {
            if !(1..=365).contains(&n) {
                return Err("check_in_interval_count must be between 1 and 365".into());
            }
        }
        if self.require_check_in
            && (self.check_in_interval.is_none() || self.check_in_interval_count.is_none())
        {
            return Err(
                "require_check_in needs check_in_interval and check_in_interval_count".into(),
            );
        }
        check_metadata(&self.metadata)
    }

    /// Fractional overages need a floating policy and limits they divide evenly (Keygen's rule:
    /// 1.25× of 4 machines is 5, of 3 it would not be a whole machine).
    fn check_overage(&self, limits: &[(&str, Option<i64>)]) -> Result<(), String> {
        let divisor = match self.overage_strategy {
            OverageStrategy::Allow1_25x => 4,
            OverageStrategy::Allow1_5x => 2,
            _ => return Ok(()),
        };
        if !self.floating {
            return Err(format!(
                "overage_strategy {} needs a floating policy",
                self.overage_strategy.as_str()
            ));
        }
        for (field, value) in limits {
            if value.is_some_and(|v| v % divisor != 0) {
                return Err(format!(
                    "{field} must be divisible by {divisor} for overage_strategy {}",
                    self.overage_strategy.as_str()
                ));
            }
        }
        Ok(())
    }
}

/// Fields an admin may set on create or update; absent fields keep their value (or default),
/// `null` clears a nullable one.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub duration_secs: Option<Option<i64>>,
    pub expiration_basis: Option<ExpirationBasis>,
    pub expiration_strategy: Option<ExpirationStrategy>,
    pub renewal_basis: Option<RenewalBasis>,
    pub authentication_strategy: Option<AuthenticationStrategy>,
    pub floating: Option<bool>,
    pub strict: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub max_machines: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    pub max_cores: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    pub max_memory: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub max_disk: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    pub max_processes: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    pub max_users: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    pub max_uses: Option<Option<i32>>,
    pub ip_limit: Option<i32>,
    pub overage_strategy: Option<OverageStrategy>,
    pub machine_uniqueness_strategy: Option<MachineUniqueness>,
    pub machine_matching_strategy: Option<MachineMatching>,
    pub require_heartbeat: Option<bool>,
    pub heartbeat_duration_secs: Option<i32>,
    pub heartbeat_cull_strategy: Option<HeartbeatCull>,
    pub heartbeat_resurrection_strategy: Option<HeartbeatResurrection>,
    pub heartbeat_basis: Option<HeartbeatBasis>,
    pub require_check_in: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub check_in_interval: Option<Option<CheckInInterval>>,
    #[serde(default, deserialize_with = "present")]
    pub check_in_interval_count: Option<Option<i32>>,
    pub required_scopes: Option<Vec<Scope>>,
    pub one_time_use: Option<bool>,
    pub protected: Option<bool>,
    pub use_pool: Option<bool>,
    pub metadata: Option<Map<String, Value>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(v: Value) -> PolicyPatch {
        match serde_json::from_value(v) {
            Ok(p) => p,
            Err(e) => panic!("patch: {e}"),
        }
    }

    fn policy() -> Policy {
        Policy::new(Uuid::new_v4(), Uuid::new_v4(), "Pro".into())
    }

    #[test]
    fn defaults_are_keygens() {
        let p = policy();
        assert!(p.check().is_ok());
        assert_eq!(p.max_machines, Some(1));
        assert_eq!(p.authentication_strategy.as_str(), "token");
        assert_eq!(p.expiration_strategy.as_str(), "restrict_access");
        assert_eq!(p.heartbeat_duration_secs, 600);
    }

    #[test]
    fn enums_round_trip_and_refuse_unknown_names() {
        for s in OverageStrategy::ALL {
            assert_eq!(OverageStrategy::parse(s.as_str()), Some(*s));
        }
        let err = serde_json::from_value::<PolicyPatch>(serde_json::json!({
            "expiration_strategy": "RESTRICT"
        }))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("restrict_access"), "{err}");
    }

    #[test]
    fn node_locked_means_one_machine() {
        let mut p = policy();
        let e = p.apply(&patch(serde_json::json!({"max_machines": 3})));
        assert!(e.is_err_and(|m| m.contains("node-locked")));
        let mut p = policy();
        assert!(p
            .apply(&patch(
                serde_json::json!({"floating": true, "max_machines": 3})
            ))
            .is_ok());
        assert_eq!(p.max_machines, Some(3));
        // Back to node-locked: the limit follows.
        assert!(p
            .apply(&patch(serde_json::json!({"floating": false})))
            .is_ok());
        assert_eq!(p.max_machines, Some(1));
    }

    #[test]
    fn fractional_overage_needs_divisible_floating_limits() {
        let mut p = policy();
        let e = p.apply(&patch(
            serde_json::json!({"overage_strategy": "allow_1_25x_overage"}),
        ));
        assert!(e.is_err_and(|m| m.contains("floating")));
        let mut p = policy();
        let e = p.apply(&patch(serde_json::json!({
            "floating": true, "max_machines": 6, "overage_strategy": "allow_1_25x_overage"
        })));
        assert!(e.is_err_and(|m| m.contains("divisible by 4")));
        let mut p = policy();
        assert!(p
            .apply(&patch(serde_json::json!({
                "floating": true, "max_machines": 6, "overage_strategy": "allow_1_5x_overage"
            })))
            .is_ok());
    }

    #[test]
    fn bounds_are_enforced_with_the_field_named() {
        let cases = [
            (serde_json::json!({"name": "  "}), "name"),
            (serde_json::json!({"duration_secs": 59}), "duration_secs"),
            (
                serde_json::json!({"duration_secs": i64::MAX}),
                "duration_secs",
            ),
            (
                serde_json::json!({"heartbeat_duration_secs": 30}),
                "heartbeat_duration_secs",
            ),
            (
                serde_json::json!({"floating": true, "max_machines": 0}),
                "max_machines",
            ),
            (serde_json::json!({"max_uses": -1}), "max_uses"),
            (serde_json::json!({"ip_limit": -1}), "ip_limit"),
            (
                serde_json::json!({"require_check_in": true}),
                "check_in_interval",
            ),
            (
                serde_json::json!({"check_in_interval_count": 0}),
                "check_in_interval_count",
            ),
            (
                serde_json::json!({"metadata": {"a": {"b": {"c": {"d": {"e": 1}}}}}}),
                "nest",
            ),
            (
                serde_json::json!({"metadata": {"a": "x".repeat(17_000)}}),
                "bytes",
            ),
        ];
        for (body, field) in cases {
            let mut p = policy();
            let e = p.apply(&patch(body.clone()));
            assert!(
                e.as_ref().is_err_and(|m| m.contains(field)),
                "{body}: {e:?}"
            );
        }
    }

    #[test]
    fn nullable_fields_clear_and_scopes_deduplicate() {
        let mut p = policy();
        assert!(p
            .apply(&patch(serde_json::json!({
                "duration_secs": 86400, "required_scopes": ["fingerprint", "product", "fingerprint"]
            })))
            .is_ok());
        assert_eq!(p.duration_secs, Some(86400));
        assert_eq!(p.required_scopes, vec![Scope::Fingerprint, Scope::Product]);
        assert!(p
            .apply(&patch(serde_json::json!({"duration_secs": null})))
            .is_ok());
        assert_eq!(p.duration_secs, None);
        assert!(p
            .apply(&patch(serde_json::json!({
                "require_check_in": true, "check_in_interval": "week", "check_in_interval_count": 2
            })))
            .is_ok());
    }
}
