use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::invalidation::Invalidation;
use crate::model::{present, App, KeySystemSettings};
use crate::write::WriteTx;
use crate::{client_api, secrets};

const COLUMNS: &str =
    "id, account_id, name, secret, version, paused, hwid_lock, anti_vpn, hash_check,
    download_url, force_hwid, min_hwid_len, session_secs, force_encryption, min_username_len,
    program_hashes, messages, signing_key_id, code, url, platforms, metadata, created_at, updated_at,
    num_id, service_id, keyless_mode, keyless_ttl_secs, auth_mode, get_key_url,
    hwid_reset_cooldown_secs, self_hwid_reset, description, license_prefix";

/// The key-system modes of Panda's `getconfig`.
pub const AUTH_MODES: [&str; 5] = [
    "playerid",
    "hwidplayer",
    "hwidonly",
    "fingerprint",
    "iponly",
];

fn from_row(r: &Row) -> App {
    App {
        id: r.get("id"),
        account_id: r.get("account_id"),
        name: r.get("name"),
        secret: r.get("secret"),
        version: r.get("version"),
        paused: r.get("paused"),
        hwid_lock: r.get("hwid_lock"),
        anti_vpn: r.get("anti_vpn"),
        hash_check: r.get("hash_check"),
        download_url: r.get("download_url"),
        force_hwid: r.get("force_hwid"),
        min_hwid_len: r.get("min_hwid_len"),
        session_secs: r.get("session_secs"),
        force_encryption: r.get("force_encryption"),
        min_username_len: r.get("min_username_len"),
        program_hashes: r.get("program_hashes"),
        // The column is constrained to an object; a non-string value is simply not a message.
        messages: match r.get::<_, serde_json::Value>("messages") {
            serde_json::Value::Object(m) => m
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_string())))
                .collect(),
            _ => BTreeMap::new(),
        },
        signing_key_id: r.get("signing_key_id"),
        code: r.get("code"),
        url: r.get("url"),
        platforms: r.get("platforms"),
        metadata: match r.get::<_, serde_json::Value>("metadata") {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        },
        key_system: KeySystemSettings {
            num_id: r.get("num_id"),
            service_id: r.get("service_id"),
            keyless_mode: r.get("keyless_mode"),
            keyless_ttl_secs: r.get("keyless_ttl_secs"),
            auth_mode: r.get("auth_mode"),
            get_key_url: r.get("get_key_url"),
            hwid_reset_cooldown_secs: r.get("hwid_reset_cooldown_secs"),
            self_hwid_reset: r.get("self_hwid_reset"),
        },
        description: r.get("description"),
        license_prefix: r.get("license_prefix"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

/// Fields an admin may set on create or update; absent fields keep their value (or default).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppPatch {
    pub name: Option<String>,
    pub version: Option<String>,
    pub paused: Option<bool>,
    pub hwid_lock: Option<bool>,
    pub anti_vpn: Option<bool>,
    pub hash_check: Option<bool>,
    /// Empty string clears it.
    pub download_url: Option<String>,
    pub force_hwid: Option<bool>,
    pub min_hwid_len: Option<i32>,
    pub session_secs: Option<i32>,
    pub force_encryption: Option<bool>,
    pub min_username_len: Option<i32>,
    /// Replaces the accepted program hashes (empty: learn from the next client).
    pub program_hashes: Option<Vec<String>>,
    /// Replaces the custom messages (names from `client_api::MESSAGES`).
    pub messages: Option<BTreeMap<String, String>>,
    /// `null` signs with the deployment's primary key; an id pins the app to that key.
    #[serde(default, deserialize_with = "present")]
    pub signing_key_id: Option<Option<Uuid>>,
    /// Product details (Keygen's); `null` clears the code or URL.
    #[serde(default, deserialize_with = "present")]
    pub code: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub url: Option<Option<String>>,
    pub platforms: Option<Vec<String>>,
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Key-system settings (`KeySystemSettings`); `null` clears the service id or get-key URL.
    #[serde(default, deserialize_with = "present")]
    pub service_id: Option<Option<String>>,
    pub keyless_mode: Option<bool>,
    pub keyless_ttl_secs: Option<i32>,
    pub auth_mode: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub get_key_url: Option<Option<String>>,
    pub hwid_reset_cooldown_secs: Option<i32>,
    pub self_hwid_reset: Option<bool>,
    /// What CyberLicense shows of the product (at most 2000 characters); `null` clears it.
    #[serde(default, deserialize_with = "present")]
    pub description: Option<Option<String>>,
    /// The prefix of its licenses' rotated keys: 1 to 16 letters or digits.
    pub license_prefix: Option<String>,
}

/// Checks the client settings of a patch; returns the normalised download URL (`Some("")`
/// clears it) and messages as JSON.
fn check_client_settings(
    patch: &AppPatch,
) -> StoreResult<(Option<String>, Option<serde_json::Value>)> {
    let invalid = |m: String| StoreError::Invalid(m);
    let download = match patch.download_url.as_deref().map(str::trim) {
        None => None,
        Some("") => Some(String::new()),
        Some(url) if url.len() > 2000 => {
            return Err(invalid(
                "download_url must be at most 2000 characters".into(),
            ))
        }
        Some(url) if !(url.starts_with("https://") || url.starts_with("http://")) => {
            return Err(invalid("download_url must be an http(s) URL".into()))
        }
        Some(url) => Some(url.to_string()),
    };
    if patch.min_hwid_len.is_some_and(|n| !(0..=256).contains(&n)) {
        return Err(invalid("min_hwid_len must be between 0 and 256".into()));
    }
    if patch
        .session_secs
        .is_some_and(|n| !(1..=2_592_000).contains(&n))
    {
        return Err(invalid(
            "session_secs must be between 1 and 2592000 (30 days)".into(),
        ));
    }
    if patch
        .min_username_len
        .is_some_and(|n| !(1..=64).contains(&n))
    {
        return Err(invalid("min_username_len must be between 1 and 64".into()));
    }
    if let Some(h) = &patch.program_hashes {
        client_api::check_program_hashes(h).map_err(invalid)?;
    }
    let messages = match &patch.messages {
        Some(m) => {
            client_api::check_messages(m).map_err(invalid)?;
            Some(json!(m))
        }
        None => None,
    };
    Ok((download, messages))
}

fn check_name(name: &str) -> StoreResult<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 100 {
        return Err(StoreError::Invalid(
            "name must be 1 to 100 characters".into(),
        ));
    }
    Ok(n.to_string())
}

fn check_version(v: &str) -> StoreResult<String> {
    let v = v.trim();
    if v.is_empty() || v.len() > 32 {
        return Err(StoreError::Invalid(
            "version must be 1 to 32 characters".into(),
        ));
    }
    Ok(v.to_string())
}

pub async fn create(wtx: &mut WriteTx<'_>, patch: &AppPatch) -> StoreResult<App> {
    let name = check_name(patch.name.as_deref().unwrap_or(""))?;
    let version = check_version(patch.version.as_deref().unwrap_or("1.0"))?;
    let settings = check_client_settings(patch)?;
    let row = wtx
        .tx()
        .query_one(
            &format!(
                "INSERT INTO apps (id, account_id, name, secret, version, paused, hwid_lock, anti_vpn, hash_check)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::new_v4(),
                &wtx.account_id(),
                &name,
                &secrets::new_app_secret(),
                &version,
                &patch.paused.unwrap_or(false),
                &patch.hwid_lock.unwrap_or(true),
                &patch.anti_vpn.unwrap_or(false),
                &patch.hash_check.unwrap_or(false),
            ],
        )
        .await
        .map_err(|e| {
            StoreError::from(e).conflict_on_unique("an app with this name already exists")
        })?;
    let mut app = from_row(&row);
    if let Some(updated) = set_client_settings(wtx, app.id, patch, &settings).await? {
        app = updated;
    }
    if let Some(updated) = set_product_details(wtx, app.id, patch).await? {
        app = updated;
    }
    if let Some(updated) = set_key_system(wtx, app.id, patch).await? {
        app = updated;
    }
    // Every app starts with a tier, as KeyAuth's do, so users and keys always have one to get.
    wtx.tx()
        .execute(
            "INSERT INTO subscriptions (id, account_id, app_id, name, level, duration_days)
             VALUES ($1, $2, $3, $4, 1, 30)",
            &[
                &Uuid::new_v4(),
                &app.account_id,
                &app.id,
                &super::subscriptions::DEFAULT_NAME,
            ],
        )
        .await?;
    super::policies::create_default(wtx, app.id).await?;
    // A validator may hold a negative entry for this id (clients probing before it existed).
    wtx.invalidate(Invalidation::App { app: app.id });
    wtx.audit(
        "app.create",
        "app",
        Some(app.id.to_string()),
        json!({"name": app.name}),
    );
    Ok(app)
}

pub async fn list<C: GenericClient + Sync>(c: &C, account_id: Uuid) -> StoreResult<Vec<App>> {
    Ok(c.query(
        &format!("SELECT {COLUMNS} FROM apps WHERE account_id = $1 ORDER BY created_at, id"),
        &[&account_id],
    )
    .await?
    .iter()
    .map(from_row)
    .collect())
}

/// Tenant-scoped lookup: another account's app is simply not found.
pub async fn get<C: GenericClient + Sync>(c: &C, account_id: Uuid, id: Uuid) -> StoreResult<App> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM apps WHERE id = $1 AND account_id = $2"),
        &[&id, &account_id],
    )
    .await?
    .map(|r| from_row(&r))
    .ok_or(StoreError::NotFound("app"))
}

/// The app behind a public service id (Panda's `service`), for the validator: unscoped,
/// because the service id is unique across the deployment, and case-insensitive, because
/// Panda's legacy loader lower-cases it in some calls.
pub async fn id_by_service<C: GenericClient + Sync>(
    c: &C,
    service_id: &str,
) -> StoreResult<Option<Uuid>> {
    Ok(c.query_opt(
        "SELECT id FROM apps WHERE lower(service_id) = lower($1)",
        &[&service_id],
    )
    .await?
    .map(|r| r.get(0)))
}

/// An app of the account with this integer id or this exact name (Junkie's `service`, sent as
/// either), given the account's integer id (Junkie's `identifier`).
pub async fn id_by_account_service<C: GenericClient + Sync>(
    c: &C,
    account_num_id: i64,
    service: &str,
) -> StoreResult<Option<Uuid>> {
    let num: Option<i64> = service.parse().ok();
    Ok(c.query_opt(
        "SELECT a.id FROM apps a JOIN accounts c ON c.id = a.account_id
          WHERE c.num_id = $1 AND (a.num_id = $2 OR a.name = $3)
          ORDER BY (a.num_id = $2) DESC NULLS LAST LIMIT 1",
        &[&account_num_id, &num, &service],
    )
    .await?
    .map(|r| r.get(0)))
}

/// An app of the account by its integer id (Junkie's `service_id`).
pub async fn id_by_num<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    num_id: i64,
) -> StoreResult<Uuid> {
    c.query_opt(
        "SELECT id FROM apps WHERE num_id = $1 AND account_id = $2",
        &[&num_id, &account_id],
    )
    .await?
    .map(|r| r.get(0))
    .ok_or(StoreError::NotFound("service"))
}

/// Unscoped lookup for the validator, whose callers address apps by id.
pub async fn find<C: crate::db::Hot>(c: &C, id: Uuid) -> StoreResult<Option<App>> {
    static SQL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("SELECT {COLUMNS} FROM apps WHERE id = $1"));
    let stmt = c.statement(&SQL).await?;
    Ok(c.client()
        .query_opt(&stmt, &[&id])
        .await?
        .map(|r| from_row(&r)))
}

pub async fn update(wtx: &mut WriteTx<'_>, id: Uuid, patch: &AppPatch) -> StoreResult<App> {
    let name = patch.name.as_deref().map(check_name).transpose()?;
    let version = patch.version.as_deref().map(check_version).transpose()?;
    let settings = check_client_settings(patch)?;
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "UPDATE apps SET name = coalesce($3, name), version = coalesce($4, version),
                        paused = coalesce($5, paused), hwid_lock = coalesce($6, hwid_lock),
                        anti_vpn = coalesce($7, anti_vpn), hash_check = coalesce($8, hash_check),
                        updated_at = now()
                 WHERE id = $1 AND account_id = $2 RETURNING {COLUMNS}"
            ),
            &[
                &id,
                &wtx.account_id(),
                &name,
                &version,
                &patch.paused,
                &patch.hwid_lock,
                &patch.anti_vpn,
                &patch.hash_check,
            ],
        )
        .await
        .map_err(|e| {
            StoreError::from(e).conflict_on_unique("an app with this name already exists")
        })?
        .ok_or(StoreError::NotFound("app"))?;
    let row = match set_client_settings(wtx, id, patch, &settings).await? {
        Some(updated) => updated,
        None => from_row(&row),
    };
    let row = set_product_details(wtx, id, patch).await?.unwrap_or(row);
    let row = set_key_system(wtx, id, patch).await?.unwrap_or(row);
    wtx.invalidate(Invalidation::App { app: id });
    wtx.audit(
        "app.update",
        "app",
        Some(id.to_string()),
        json!({"name": name, "version": version, "paused": patch.paused, "hwid_lock": patch.hwid_lock,
               "anti_vpn": patch.anti_vpn, "hash_check": patch.hash_check,
               "download_url": patch.download_url, "force_hwid": patch.force_hwid,
               "min_hwid_len": patch.min_hwid_len, "session_secs": patch.session_secs,
               "force_encryption": patch.force_encryption, "min_username_len": patch.min_username_len,
               "program_hashes": patch.program_hashes, "messages": patch.messages,
               "signing_key_id": patch.signing_key_id, "service_id": patch.service_id,
               "keyless_mode": patch.keyless_mode, "keyless_ttl_secs": patch.keyless_ttl_secs,
               "auth_mode": patch.auth_mode, "get_key_url": patch.get_key_url,
               "hwid_reset_cooldown_secs": patch.hwid_reset_cooldown_secs,
               "self_hwid_reset": patch.self_hwid_reset, "description": patch.description,
               "license_prefix": patch.license_prefix}),
    );
    Ok(row)
}

/// Writes the key-system settings a patch carries (checked here); `None` when it carries none.
async fn set_key_system(wtx: &mut WriteTx<'_>, id: Uuid, p: &AppPatch) -> StoreResult<Option<App>> {
    if p.service_id.is_none()
        && p.keyless_mode.is_none()
        && p.keyless_ttl_secs.is_none()
        && p.auth_mode.is_none()
        && p.get_key_url.is_none()
        && p.hwid_reset_cooldown_secs.is_none()
        && p.self_hwid_reset.is_none()
    {
        return Ok(None);
    }
    let invalid = |m: &str| Err(StoreError::Invalid(m.into()));
    if let Some(Some(s)) = &p.service_id {
        if s.is_empty()
            || s.len() > 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return invalid("service_id must be 1 to 64 letters, digits, '_' or '-'");
        }
    }
    if p.keyless_ttl_secs
        .is_some_and(|t| !(60..=31_536_000).contains(&t))
    {
        return invalid("keyless_ttl_secs must be between 60 and 31536000 (a year)");
    }
    if let Some(mode) = &p.auth_mode {
        if !AUTH_MODES.contains(&mode.as_str()) {
            return Err(StoreError::Invalid(format!(
                "auth_mode must be one of {}",
                AUTH_MODES.join(", ")
            )));
        }
    }
    if let Some(Some(url)) = &p.get_key_url {
        if url.len() > 2000 || !(url.starts_with("https://") || url.starts_with("http://")) {
            return invalid("get_key_url must be an http(s) URL of at most 2000 characters");
        }
    }
    if p.hwid_reset_cooldown_secs.is_some_and(|c| c < 0) {
        return invalid("hwid_reset_cooldown_secs must be 0 or more");
    }
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "UPDATE apps SET service_id = CASE WHEN $3 THEN $4 ELSE service_id END,
                        keyless_mode = coalesce($5, keyless_mode),
                        keyless_ttl_secs = coalesce($6, keyless_ttl_secs),
                        auth_mode = coalesce($7, auth_mode),
                        get_key_url = CASE WHEN $8 THEN $9 ELSE get_key_url END,
                        hwid_reset_cooldown_secs = coalesce($10, hwid_reset_cooldown_secs),
                        self_hwid_reset = coalesce($11, self_hwid_reset),
                        updated_at = now()
                 WHERE id = $1 AND account_id = $2 RETURNING {COLUMNS}"
            ),
            &[
                &id,
                &wtx.account_id(),
                &p.service_id.is_some(),
                &p.service_id.clone().flatten(),
                &p.keyless_mode,
                &p.keyless_ttl_secs,
                &p.auth_mode,
                &p.get_key_url.is_some(),
                &p.get_key_url.clone().flatten(),
                &p.hwid_reset_cooldown_secs,
                &p.self_hwid_reset,
            ],
        )
        .await
        .map_err(|e| StoreError::from(e).conflict_on_unique("this service_id is taken"))?
        .ok_or(StoreError::NotFound("app"))?;
    Ok(Some(from_row(&row)))
}

/// Writes the product details a patch carries (checked here); `None` when it carries none.
async fn set_product_details(
    wtx: &mut WriteTx<'_>,
    id: Uuid,
    p: &AppPatch,
) -> StoreResult<Option<App>> {
    if p.code.is_none()
        && p.url.is_none()
        && p.platforms.is_none()
        && p.metadata.is_none()
        && p.description.is_none()
        && p.license_prefix.is_none()
    {
        return Ok(None);
    }
    let invalid = |m: &str| Err(StoreError::Invalid(m.into()));
    if let Some(Some(code)) = &p.code {
        if code.is_empty() || code.len() > 64 || !code.bytes().all(|b| b.is_ascii_graphic()) {
            return invalid("code must be 1 to 64 printable characters without spaces");
        }
    }
    if let Some(Some(url)) = &p.url {
        if url.len() > 2000 || !(url.starts_with("https://") || url.starts_with("http://")) {
            return invalid("url must be an http(s) URL of at most 2000 characters");
        }
    }
    if let Some(platforms) = &p.platforms {
        if platforms.len() > 64
            || platforms
                .iter()
                .any(|s| s.is_empty() || s.chars().count() > 64 || s.chars().any(char::is_control))
        {
            return invalid("platforms must be at most 64 names of 1 to 64 printable characters");
        }
    }
    if let Some(m) = &p.metadata {
        crate::model::check_metadata(m).map_err(StoreError::Invalid)?;
    }
    // Blank is no description.
    let description = p
        .description
        .as_ref()
        .map(|d| d.as_deref().map(str::trim).filter(|d| !d.is_empty()));
    if description
        .flatten()
        .is_some_and(|d| d.chars().count() > 2000)
    {
        return invalid("description must be at most 2000 characters");
    }
    if p.license_prefix.as_deref().is_some_and(|x| {
        x.is_empty() || x.len() > 16 || !x.bytes().all(|b| b.is_ascii_alphanumeric())
    }) {
        return invalid("license_prefix must be 1 to 16 letters or digits");
    }
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "UPDATE apps SET code = CASE WHEN $3 THEN $4 ELSE code END,
                        url = CASE WHEN $5 THEN $6 ELSE url END,
                        platforms = coalesce($7, platforms), metadata = coalesce($8, metadata),
                        description = CASE WHEN $9 THEN $10 ELSE description END,
                        license_prefix = coalesce($11, license_prefix),
                        updated_at = now()
                 WHERE id = $1 AND account_id = $2 RETURNING {COLUMNS}"
            ),
            &[
                &id,
                &wtx.account_id(),
                &p.code.is_some(),
                &p.code.clone().flatten(),
                &p.url.is_some(),
                &p.url.clone().flatten(),
                &p.platforms,
                &p.metadata.clone().map(serde_json::Value::Object),
                &description.is_some(),
                &description.flatten(),
                &p.license_prefix,
            ],
        )
        .await?
        .ok_or(StoreError::NotFound("app"))?;
    Ok(Some(from_row(&row)))
}

/// Writes the client-API settings a patch carries; `None` when it carries none.
async fn set_client_settings(
    wtx: &mut WriteTx<'_>,
    id: Uuid,
    patch: &AppPatch,
    (download, messages): &(Option<String>, Option<serde_json::Value>),
) -> StoreResult<Option<App>> {
    let p = patch;
    let any = download.is_some()
        || p.force_hwid.is_some()
        || p.min_hwid_len.is_some()
        || p.session_secs.is_some()
        || p.force_encryption.is_some()
        || p.min_username_len.is_some()
        || p.program_hashes.is_some()
        || messages.is_some()
        || p.signing_key_id.is_some();
    if !any {
        return Ok(None);
    }
    if let Some(Some(key)) = p.signing_key_id {
        let usable = wtx
            .tx()
            .query_opt(
                "SELECT 1 FROM signing_keys WHERE id = $1 AND retired_at IS NULL FOR KEY SHARE",
                &[&key],
            )
            .await?;
        if usable.is_none() {
            return Err(StoreError::Invalid(
                "signing_key_id is not an active signing key".into(),
            ));
        }
    }
    let hashes: Option<Vec<String>> = p
        .program_hashes
        .as_ref()
        .map(|h| h.iter().map(|s| s.trim().to_string()).collect());
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "UPDATE apps SET download_url = CASE WHEN $3::text IS NULL THEN download_url ELSE nullif($3, '') END,
                        force_hwid = coalesce($4, force_hwid), min_hwid_len = coalesce($5, min_hwid_len),
                        session_secs = coalesce($6, session_secs),
                        force_encryption = coalesce($7, force_encryption),
                        min_username_len = coalesce($8, min_username_len),
                        program_hashes = coalesce($9, program_hashes), messages = coalesce($10, messages),
                        signing_key_id = CASE WHEN $11 THEN $12 ELSE signing_key_id END,
                        updated_at = now()
                 WHERE id = $1 AND account_id = $2 RETURNING {COLUMNS}"
            ),
            &[
                &id,
                &wtx.account_id(),
                download,
                &p.force_hwid,
                &p.min_hwid_len,
                &p.session_secs,
                &p.force_encryption,
                &p.min_username_len,
                &hashes,
                messages,
                &p.signing_key_id.is_some(),
                &p.signing_key_id.flatten(),
            ],
        )
        .await?
        .ok_or(StoreError::NotFound("app"))?;
    Ok(Some(from_row(&row)))
}

pub async fn reset_secret(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<App> {
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "UPDATE apps SET secret = $3, updated_at = now()
                 WHERE id = $1 AND account_id = $2 RETURNING {COLUMNS}"
            ),
            &[&id, &wtx.account_id(), &secrets::new_app_secret()],
        )
        .await?
        .ok_or(StoreError::NotFound("app"))?;
    wtx.invalidate(Invalidation::App { app: id });
    wtx.audit("app.reset_secret", "app", Some(id.to_string()), json!({}));
    Ok(from_row(&row))
}

/// Deletes the app and, by cascade, its licenses and blacklist.
pub async fn delete(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    let row = wtx
        .tx()
        .query_opt(
            "DELETE FROM apps WHERE id = $1 AND account_id = $2 RETURNING name",
            &[&id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("app"))?;
    let name: String = row.get(0);
    wtx.invalidate(Invalidation::App { app: id });
    wtx.audit(
        "app.delete",
        "app",
        Some(id.to_string()),
        json!({"name": name}),
    );
    Ok(())
}

/// Fails with NotFound unless the app is the caller's; locks it against concurrent deletion.
pub async fn owned(wtx: &WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    wtx.tx()
        .query_opt(
            "SELECT 1 FROM apps WHERE id = $1 AND account_id = $2 FOR SHARE",
            &[&id, &wtx.account_id()],
        )
        .await?
        .map(drop)
        .ok_or(StoreError::NotFound("app"))
}

/// One of the caller's apps by name (the seller API addresses apps by `appname`).
pub async fn get_by_name<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    name: &str,
) -> StoreResult<App> {
    c.query_opt(
        &format!("SELECT {COLUMNS} FROM apps WHERE account_id = $1 AND name = $2"),
        &[&account_id, &name.trim()],
    )
    .await?
    .map(|r| from_row(&r))
    .ok_or(StoreError::NotFound("application"))
}

/// Counts shown with an app.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct AppStats {
    pub users: i64,
    pub licenses: i64,
    pub active_sessions: i64,
    pub logs: i64,
}

pub async fn stats<C: GenericClient + Sync>(c: &C, app_id: Uuid) -> StoreResult<AppStats> {
    let r = c
        .query_one(
            "SELECT (SELECT count(*) FROM app_users WHERE app_id = $1),
                    (SELECT count(*) FROM licenses WHERE app_id = $1),
                    (SELECT count(*) FROM sessions WHERE app_id = $1 AND expires_at > now()),
                    (SELECT count(*) FROM client_logs WHERE app_id = $1)",
            &[&app_id],
        )
        .await?;
    Ok(AppStats {
        users: r.get(0),
        licenses: r.get(1),
        active_sessions: r.get(2),
        logs: r.get(3),
    })
}

/// Deletes all of an app's data (users, licenses, sessions, logs, variables, blacklist) and keeps
/// the app, its settings and its subscription tiers.
pub async fn reset_data(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    owned(wtx, id).await?;
    for table in [
        "app_users",
        "licenses",
        "sessions",
        "client_logs",
        "app_vars",
        "blacklist",
    ] {
        wtx.tx()
            .execute(
                &format!("DELETE FROM {table} WHERE app_id = $1 AND account_id = $2"),
                &[&id, &wtx.account_id()],
            )
            .await?;
    }
    wtx.invalidate(Invalidation::App { app: id });
    wtx.audit("app.reset", "app", Some(id.to_string()), json!({}));
    Ok(())
}

/// The client API addresses an app by its owner's public id and its name.
pub async fn find_by_owner_and_name<C: crate::db::Hot>(
    c: &C,
    owner_public_id: &str,
    name: &str,
) -> StoreResult<Option<Uuid>> {
    let stmt = c
        .statement(
            "SELECT a.id FROM apps a JOIN accounts o ON o.id = a.account_id
              WHERE o.public_id = $1 AND a.name = $2",
        )
        .await?;
    Ok(c.client()
        .query_opt(&stmt, &[&owner_public_id, &name])
        .await?
        .map(|r| r.get(0)))
}

/// The hash check's first-run learning: stores the first program hash a client sends while the
/// app accepts none yet. Returns whether it was stored (a racing client may have won).
pub async fn learn_program_hash(wtx: &mut WriteTx<'_>, id: Uuid, hash: &str) -> StoreResult<bool> {
    let n = wtx
        .tx()
        .execute(
            "UPDATE apps SET program_hashes = ARRAY[$2::text], updated_at = now()
              WHERE id = $1 AND program_hashes = '{}'",
            &[&id, &hash],
        )
        .await?;
    if n > 0 {
        wtx.invalidate(Invalidation::App { app: id });
        wtx.audit(
            "app.learn_hash",
            "app",
            Some(id.to_string()),
            json!({"hash": hash}),
        );
    }
    Ok(n > 0)
}

/// An app's licenses, and those of them that are active (not banned, revoked or disabled;
/// expiry aside): CyberLicense's `licenseCount` and `activeLicenseCount`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LicenseCounts {
    pub total: i64,
    pub active: i64,
}

/// The account's apps as products, oldest first: all, or the unpaused ones only; with their
/// license counts when `counts` (else `None`, and nothing is counted).
pub async fn products<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    unpaused_only: bool,
    counts: bool,
) -> StoreResult<Vec<(App, Option<LicenseCounts>)>> {
    let rows = c
        .query(
            &format!(
                "SELECT {COLUMNS}, n.total, n.active {PRODUCTS_FROM}
                  WHERE account_id = $1 AND NOT ($2 AND paused) ORDER BY created_at, id"
            ),
            &[&account_id, &unpaused_only, &counts],
        )
        .await?;
    rows.iter().map(|r| product_row(r, counts)).collect()
}

/// One of the account's apps as a product (see [`products`]).
pub async fn product<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    id: Uuid,
    counts: bool,
) -> StoreResult<(App, Option<LicenseCounts>)> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {COLUMNS}, n.total, n.active {PRODUCTS_FROM} WHERE account_id = $1 AND id = $2"
            ),
            &[&account_id, &id, &counts],
        )
        .await?
        .ok_or(StoreError::NotFound("app"))?;
    product_row(&row, counts)
}

/// Apps with their license counts (counted only when `$3` is true), to be filtered.
const PRODUCTS_FROM: &str = "FROM apps
  LEFT JOIN LATERAL (
      SELECT count(*) AS total, count(*) FILTER (WHERE l.status = 'active') AS active
        FROM licenses l WHERE l.app_id = apps.id AND $3) n ON true";

fn product_row(r: &Row, counts: bool) -> StoreResult<(App, Option<LicenseCounts>)> {
    let n = if counts {
        Some(LicenseCounts {
            total: r.try_get("total")?,
            active: r.try_get("active")?,
        })
    } else {
        None
    };
    Ok((from_row(r), n))
}
