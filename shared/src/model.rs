//! The typed model. Rows are read by [`crate::store`]; these types carry no IO.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use postgres_types::{FromSql, ToSql};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub type AccountId = Uuid;
pub type AppId = Uuid;
pub type LicenseId = Uuid;

/// For `#[serde(default, deserialize_with = "present")]` on an `Option<Option<T>>` patch field:
/// tells a field sent as `null` (`Some(None)`: clear it) from an absent one (`None`: keep it).
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

pub const MAX_METADATA_BYTES: usize = 16 * 1024;
pub const MAX_METADATA_KEYS: usize = 64;
pub const MAX_METADATA_DEPTH: usize = 4;

/// The bounds of every resource's free-form `metadata` object (Keygen's: 64 keys, 4 levels, 16 KiB).
pub fn check_metadata(m: &serde_json::Map<String, serde_json::Value>) -> Result<(), String> {
    if m.len() > MAX_METADATA_KEYS {
        return Err(format!(
            "metadata may have at most {MAX_METADATA_KEYS} keys"
        ));
    }
    fn depth(v: &serde_json::Value) -> usize {
        match v {
            serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
            serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }
    if m.values().map(depth).max().unwrap_or(0) + 1 > MAX_METADATA_DEPTH {
        return Err(format!(
            "metadata may nest at most {MAX_METADATA_DEPTH} levels"
        ));
    }
    let size = serde_json::to_vec(m).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_METADATA_BYTES {
        return Err(format!(
            "metadata may be at most {MAX_METADATA_BYTES} bytes as JSON"
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub id: AccountId,
    pub public_id: String,
    pub username: String,
    pub email: Option<String>,
    pub plan: String,
    pub role: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct App {
    pub id: AppId,
    pub account_id: AccountId,
    pub name: String,
    pub secret: String,
    pub version: String,
    pub paused: bool,
    /// When true, validations must carry a HWID and licenses bind up to their `hwid_limit`.
    pub hwid_lock: bool,
    pub anti_vpn: bool,
    pub hash_check: bool,
    /// Where an outdated client is sent (`invalidver`).
    pub download_url: Option<String>,
    /// Client-API logins must send a HWID of at least `min_hwid_len` characters.
    pub force_hwid: bool,
    pub min_hwid_len: i32,
    /// Lifetime of a client-API session (fixed from `init`, not extended by activity).
    pub session_secs: i32,
    /// Refuse 1.2 `init` without an `enckey` (so every later answer is signed).
    pub force_encryption: bool,
    pub min_username_len: i32,
    /// Program hashes accepted by the hash check; learned from the first client when empty.
    pub program_hashes: Vec<String>,
    /// Custom client-API messages by KeyAuth name (see `client_api::MESSAGES`).
    pub messages: BTreeMap<String, String>,
    /// The Ed25519 key that signs this app's 1.3 answers; `None`: the deployment's primary.
    pub signing_key_id: Option<Uuid>,
    /// What describes it as a product (Keygen's): a short code, a URL, platforms, metadata.
    pub code: Option<String>,
    pub url: Option<String>,
    pub platforms: Vec<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// How the Roblox key systems address and run it (Panda's service, Junkie's service).
    pub key_system: KeySystemSettings,
    /// What CyberLicense shows of it as a product: a description, and the prefix of the keys its
    /// licenses get when rotated (`<prefix>-XXXXXX-XXXXXX`, default `LIC`).
    pub description: Option<String>,
    pub license_prefix: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An app as a key-system service: its public addresses, keyless mode, what its legacy loaders
/// send as a HWID, its get-key page and its HWID-reset rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeySystemSettings {
    /// Stable integer id (Junkie's `service_id`).
    pub num_id: i64,
    /// Globally unique public name (Panda's `service`), `[A-Za-z0-9_-]{1,64}`.
    pub service_id: Option<String>,
    /// Validations succeed without a key (Junkie's `KEYLESS`, Panda's `key=keyless`).
    pub keyless_mode: bool,
    /// Lifetime of a keyless entry made by a validation.
    pub keyless_ttl_secs: i32,
    /// `playerid`, `hwidplayer`, `hwidonly`, `fingerprint` or `iponly` (Panda's `getconfig`).
    pub auth_mode: String,
    /// Where end users get a key.
    pub get_key_url: Option<String>,
    /// Minimum time between two HWID resets of one key; 0: none.
    pub hwid_reset_cooldown_secs: i32,
    /// End users may reset their own key's HWIDs (within the cooldown).
    pub self_hwid_reset: bool,
}

impl Default for KeySystemSettings {
    fn default() -> Self {
        KeySystemSettings {
            num_id: 0,
            service_id: None,
            keyless_mode: false,
            keyless_ttl_secs: 86_400,
            auth_mode: "hwidonly".into(),
            get_key_url: None,
            hwid_reset_cooldown_secs: 0,
            self_hwid_reset: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSql, FromSql)]
#[postgres(name = "license_status")]
#[serde(rename_all = "snake_case")]
pub enum LicenseStatus {
    #[postgres(name = "active")]
    Active,
    #[postgres(name = "banned")]
    Banned,
    /// Refused for good; the key stays known (CyberLicense's "revoked").
    #[postgres(name = "revoked")]
    Revoked,
    /// Switched off by an admin, reversible (CyberLicense's "not active").
    #[postgres(name = "disabled")]
    Disabled,
}

impl LicenseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseStatus::Active => "active",
            LicenseStatus::Banned => "banned",
            LicenseStatus::Revoked => "revoked",
            LicenseStatus::Disabled => "disabled",
        }
    }
}

/// A license's commercial type (CyberLicense's `licenseType`). Only `consumption` changes a rule:
/// each successful CyberLicense validation spends one of its `max_uses` credits. A `trial` must
/// have an expiry; `fixed` and `enterprise` are labels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenseType {
    #[default]
    Fixed,
    Trial,
    Consumption,
    Enterprise,
}

impl LicenseType {
    pub const ALL: [LicenseType; 4] = [
        LicenseType::Fixed,
        LicenseType::Trial,
        LicenseType::Consumption,
        LicenseType::Enterprise,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LicenseType::Fixed => "fixed",
            LicenseType::Trial => "trial",
            LicenseType::Consumption => "consumption",
            LicenseType::Enterprise => "enterprise",
        }
    }

    pub fn parse(s: &str) -> Option<LicenseType> {
        LicenseType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoundHwid {
    pub hwid: String,
    pub bound_at: DateTime<Utc>,
    /// `validate` (bound by a client's first use), `admin`, `api` or `manual`.
    pub bound_by: String,
}

/// A named feature a license grants, directly or through its policy (Keygen's entitlement).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entitlement {
    pub id: Uuid,
    pub account_id: AccountId,
    pub name: String,
    /// Unique in the account; what clients ask for in a validation's entitlements scope.
    pub code: String,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A device a license is activated on: its fingerprint (the HWID a client sends) and what an
/// admin or an SDK says of it. Keygen's machine; the native and KeyAuth facades' HWID binding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    pub id: Uuid,
    pub license_id: LicenseId,
    pub app_id: AppId,
    pub fingerprint: String,
    pub name: Option<String>,
    pub hostname: Option<String>,
    pub platform: Option<String>,
    pub ip: Option<IpAddr>,
    pub cores: Option<i32>,
    pub memory: Option<i64>,
    pub disk: Option<i64>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// `validate` (a client's first use), `admin` or `api` (activated over REST).
    pub bound_by: String,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// Its latest machine file (Keygen's check-out).
    pub last_check_out_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct License {
    pub id: LicenseId,
    pub account_id: AccountId,
    pub app_id: AppId,
    /// The policy it follows (its app's default unless one was named).
    pub policy_id: Uuid,
    pub key: String,
    pub status: LicenseStatus,
    pub level: i32,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Expiry on first use: the validity that starts at the first validation.
    pub duration_secs: Option<i64>,
    /// Maximum number of bound HWIDs (machines); 0 means unlimited. The license's own, else its
    /// policy's.
    pub hwid_limit: i32,
    /// Maximum number of distinct client IPs; 0 means unlimited (and IPs are not recorded). The
    /// license's own, else its policy's.
    pub ip_limit: i32,
    pub ban_reason: Option<String>,
    pub hwids: Vec<BoundHwid>,
    pub ips: Vec<IpAddr>,
    pub last_validated_at: Option<DateTime<Utc>>,
    pub validation_count: i64,
    /// How many times the key may be used (KeyAuth `register`/`upgrade`/`license`, Keygen's
    /// usage counter); `None`: no limit. The license's own, else its policy's.
    pub max_uses: Option<i32>,
    pub uses: i32,
    /// The end user who redeemed it (KeyAuth's `used_by`).
    pub used_by: Option<String>,
    /// What the Roblox key systems add to a key (Panda, Junkie).
    pub traits: KeyTraits,
    pub license_type: LicenseType,
    /// The account user (customer) who owns it.
    pub owner_id: Option<Uuid>,
}

/// A license's key-system attributes: a stable integer id for integer-addressing APIs, premium,
/// whether HWIDs are bound at all, one-time use, and who or what it was handed to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeyTraits {
    /// Stable integer id (Junkie's key `id`); unique across the deployment.
    pub num_id: i64,
    pub premium: bool,
    /// False: no HWID is bound or checked (Junkie's `no_hwid`, Panda's `noHwidValidation`).
    pub hwid_check: bool,
    /// Consumed by its first successful validation (the license's own, else its policy's).
    pub one_time_use: bool,
    /// A days key: the first use replaces the provisional `expires_at` by now + `duration_secs`.
    pub restart_expiry_on_first_use: bool,
    pub discord_id: Option<String>,
    /// The checkpoint provider that handed it out (`key_providers`).
    pub provider_id: Option<i64>,
    /// The last HWID reset (the per-app cooldown counts from it).
    pub hwid_reset_at: Option<DateTime<Utc>>,
}

impl License {
    pub fn has_hwid(&self, hwid: &str) -> bool {
        self.hwids.iter().any(|h| h.hwid == hwid)
    }

    pub fn has_ip(&self, ip: IpAddr) -> bool {
        self.ips.contains(&ip)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlacklistKind {
    Ip,
    Hwid,
}

impl BlacklistKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BlacklistKind::Ip => "ip",
            BlacklistKind::Hwid => "hwid",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ip" => Some(BlacklistKind::Ip),
            "hwid" => Some(BlacklistKind::Hwid),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BlacklistEntry {
    pub id: Uuid,
    pub app_id: AppId,
    pub kind: BlacklistKind,
    pub value: String,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub details: serde_json::Value,
    /// Where the request behind it came from (none for background work).
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    /// False for a refused attempt that is recorded anyway (a failed login).
    pub success: bool,
    pub created_at: DateTime<Utc>,
}

/// A subscription tier of an app (KeyAuth "subscription"): a name, a level and a default length.
#[derive(Debug, Clone, Serialize)]
pub struct Subscription {
    pub id: Uuid,
    pub app_id: AppId,
    pub name: String,
    pub level: i32,
    pub duration_days: i32,
    pub created_at: DateTime<Utc>,
}

/// One subscription an end user holds.
#[derive(Debug, Clone, Serialize)]
pub struct UserSubscription {
    pub name: String,
    pub level: i32,
    pub expires_at: DateTime<Utc>,
    /// The license key that granted it, if any.
    pub key: Option<String>,
}

/// An end user of an app: who logs in through the KeyAuth client API.
#[derive(Debug, Clone, Serialize)]
pub struct AppUser {
    pub id: Uuid,
    pub app_id: AppId,
    pub username: String,
    pub email: Option<String>,
    #[serde(skip)]
    pub password_hash: String,
    pub hwid: Option<String>,
    pub ip: Option<String>,
    pub banned: bool,
    pub ban_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub subscriptions: Vec<UserSubscription>,
}

impl AppUser {
    /// The latest expiry over the user's subscriptions.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.subscriptions.iter().map(|s| s.expires_at).max()
    }
}

/// A variable: global to an app (`user_id` none) or one user's.
#[derive(Debug, Clone, Serialize)]
pub struct Variable {
    pub id: Uuid,
    pub app_id: AppId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    pub key: String,
    pub value: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Webhook {
    pub id: Uuid,
    pub app_id: AppId,
    pub name: String,
    pub url: String,
    pub user_agent: Option<String>,
    pub body: Option<String>,
    /// Whether an Authorization value is configured (the value itself is never returned).
    pub has_auth_header: bool,
    #[serde(skip)]
    pub auth_header: Option<String>,
    /// Callable only from a validated client session.
    pub authed: bool,
    pub created_at: DateTime<Utc>,
}

/// A log line sent by a client application, or an event of the client API.
#[derive(Debug, Clone, Serialize)]
pub struct ClientLog {
    pub id: i64,
    pub app_id: AppId,
    pub action: String,
    pub username: Option<String>,
    pub ip: Option<String>,
    pub data: Option<String>,
    pub created_at: DateTime<Utc>,
}
