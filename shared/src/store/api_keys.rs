use serde_json::json;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::model::ApiKey;
use crate::secrets;
use crate::write::WriteTx;

/// Scopes an API key may carry. `*` grants everything.
pub const SCOPES: &[&str] = &[
    "*",
    "apps:read",
    "apps:write",
    "licenses:read",
    "licenses:write",
    "policies:read",
    "policies:write",
    "entitlements:read",
    "entitlements:write",
    "users:read",
    "users:write",
    "blacklist:read",
    "blacklist:write",
    "audit:read",
    "api_keys:write",
    "webhooks:read",
    "webhooks:write",
    // Purchases the vendor records (`/v1/transactions`).
    "transactions:read",
    "transactions:write",
    // Junkie's REST API v2 (`/api/v2/keys`, services, providers).
    "rest-api:*",
    // CyberLicense's admin routes (`/api/license/rotate|clear`, products, audit, exports).
    "cyberlicense:admin",
];

const COLUMNS: &str = "id, name, prefix, scopes, created_at, last_used_at, revoked_at";

fn from_row(r: &Row) -> ApiKey {
    ApiKey {
        id: r.get("id"),
        name: r.get("name"),
        prefix: r.get("prefix"),
        scopes: r.get("scopes"),
        created_at: r.get("created_at"),
        last_used_at: r.get("last_used_at"),
        revoked_at: r.get("revoked_at"),
    }
}

/// True when `granted` includes `required` (or `*`).
pub fn allows(granted: &[String], required: &str) -> bool {
    granted.iter().any(|s| s == "*" || s == required)
}

/// Creates a key and returns it with its plaintext, which is never stored.
pub async fn create(
    wtx: &mut WriteTx<'_>,
    name: &str,
    scopes: &[String],
) -> StoreResult<(ApiKey, String)> {
    if name.trim().is_empty() || name.len() > 100 {
        return Err(StoreError::Invalid(
            "name must be 1 to 100 characters".into(),
        ));
    }
    if scopes.is_empty() {
        return Err(StoreError::Invalid("at least one scope is required".into()));
    }
    if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err(StoreError::Invalid(format!(
            "unknown scope '{bad}'; known scopes: {}",
            SCOPES.join(", ")
        )));
    }
    let plaintext = secrets::new_api_key();
    let prefix: String = plaintext.chars().take(7).collect();
    let row = wtx
        .tx()
        .query_one(
            &format!(
                "INSERT INTO api_keys (id, account_id, name, prefix, key_hash, scopes)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::new_v4(),
                &wtx.account_id(),
                &name.trim(),
                &prefix,
                &secrets::sha256(&plaintext),
                &scopes,
            ],
        )
        .await?;
    let key = from_row(&row);
    wtx.audit(
        "api_key.create",
        "api_key",
        Some(key.id.to_string()),
        json!({"name": key.name, "scopes": key.scopes, "prefix": key.prefix}),
    );
    Ok((key, plaintext))
}

pub async fn list<C: GenericClient + Sync>(c: &C, account_id: Uuid) -> StoreResult<Vec<ApiKey>> {
    Ok(c.query(
        &format!("SELECT {COLUMNS} FROM api_keys WHERE account_id = $1 AND kind = 'api' ORDER BY created_at DESC"),
        &[&account_id],
    )
    .await?
    .iter()
    .map(from_row)
    .collect())
}

pub async fn revoke(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<ApiKey> {
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
                 WHERE id = $1 AND account_id = $2 AND kind = 'api' RETURNING {COLUMNS}"
            ),
            &[&id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("api key"))?;
    wtx.audit("api_key.revoke", "api_key", Some(id.to_string()), json!({}));
    Ok(from_row(&row))
}

/// Resolves a presented key to (account, key) when it exists and is not revoked.
pub async fn authenticate<C: GenericClient + Sync>(
    c: &C,
    plaintext: &str,
) -> StoreResult<Option<(Uuid, ApiKey)>> {
    let row = c
        .query_opt(
            &format!(
                "UPDATE api_keys SET last_used_at = now()
                 WHERE key_hash = $1 AND revoked_at IS NULL AND kind = 'api' RETURNING account_id, {COLUMNS}"
            ),
            &[&secrets::sha256(plaintext)],
        )
        .await?;
    Ok(row.map(|r| (r.get("account_id"), from_row(&r))))
}

/// Seller keys (`ka_…`): account-wide keys of the KeyAuth-style seller API. Stored hashed, shown
/// once; unlike API keys they carry no scopes (the seller API is all-or-nothing) and are deleted
/// rather than revoked.
pub async fn create_seller(wtx: &mut WriteTx<'_>, name: &str) -> StoreResult<(ApiKey, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(StoreError::Invalid(
            "name must be 1 to 100 characters".into(),
        ));
    }
    let plaintext = secrets::new_seller_key();
    let prefix: String = plaintext.chars().take(7).collect();
    let row = wtx
        .tx()
        .query_one(
            &format!(
                "INSERT INTO api_keys (id, account_id, name, prefix, key_hash, scopes, kind)
                 VALUES ($1, $2, $3, $4, $5, ARRAY['*'], 'seller') RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::new_v4(),
                &wtx.account_id(),
                &name,
                &prefix,
                &secrets::sha256(&plaintext),
            ],
        )
        .await?;
    let key = from_row(&row);
    wtx.audit(
        "seller_key.create",
        "seller_key",
        Some(key.id.to_string()),
        json!({"name": key.name, "prefix": key.prefix}),
    );
    Ok((key, plaintext))
}

pub async fn list_seller<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
) -> StoreResult<Vec<ApiKey>> {
    Ok(c.query(
        &format!("SELECT {COLUMNS} FROM api_keys WHERE account_id = $1 AND kind = 'seller' ORDER BY created_at DESC"),
        &[&account_id],
    )
    .await?
    .iter()
    .map(from_row)
    .collect())
}

pub async fn delete_seller(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    let row = wtx
        .tx()
        .query_opt(
            "DELETE FROM api_keys WHERE id = $1 AND account_id = $2 AND kind = 'seller' RETURNING prefix",
            &[&id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("seller key"))?;
    let prefix: String = row.get(0);
    wtx.audit(
        "seller_key.delete",
        "seller_key",
        Some(id.to_string()),
        json!({"prefix": prefix}),
    );
    Ok(())
}

/// Resolves a seller key to its account and key.
pub async fn authenticate_seller<C: GenericClient + Sync>(
    c: &C,
    plaintext: &str,
) -> StoreResult<Option<(Uuid, ApiKey)>> {
    let row = c
        .query_opt(
            &format!(
                "UPDATE api_keys SET last_used_at = now()
                 WHERE key_hash = $1 AND revoked_at IS NULL AND kind = 'seller' RETURNING account_id, {COLUMNS}"
            ),
            &[&secrets::sha256(plaintext)],
        )
        .await?;
    Ok(row.map(|r| (r.get("account_id"), from_row(&r))))
}

/// Panda service keys (`apiKey`): one app's key for the Panda admin API and the execution
/// counter. Stored hashed, shown once, revoked rather than deleted.
pub async fn create_service_key(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    name: &str,
) -> StoreResult<(ApiKey, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(StoreError::Invalid(
            "name must be 1 to 100 characters".into(),
        ));
    }
    super::apps::owned(wtx, app_id).await?;
    // Alphanumeric only: Panda's clients put it into URLs without encoding.
    let plaintext = format!("pk{}", secrets::random_token(40));
    let prefix: String = plaintext.chars().take(8).collect();
    let row = wtx
        .tx()
        .query_one(
            &format!(
                "INSERT INTO api_keys (id, account_id, name, prefix, key_hash, scopes, kind, app_id)
                 VALUES ($1, $2, $3, $4, $5, ARRAY['*'], 'service', $6) RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::new_v4(),
                &wtx.account_id(),
                &name,
                &prefix,
                &secrets::sha256(&plaintext),
                &app_id,
            ],
        )
        .await?;
    let key = from_row(&row);
    wtx.invalidate(crate::invalidation::Invalidation::App { app: app_id });
    wtx.audit(
        "service_key.create",
        "app",
        Some(app_id.to_string()),
        json!({"id": key.id, "name": key.name, "prefix": key.prefix}),
    );
    Ok((key, plaintext))
}

pub async fn list_service_keys<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Uuid,
) -> StoreResult<Vec<ApiKey>> {
    Ok(c
        .query(
            &format!("SELECT {COLUMNS} FROM api_keys WHERE account_id = $1 AND app_id = $2 AND kind = 'service' ORDER BY created_at DESC"),
            &[&account_id, &app_id],
        )
        .await?
        .iter()
        .map(from_row)
        .collect())
}

/// Revokes a service key; validators drop their copy of its app's keys.
pub async fn revoke_service_key(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    id: Uuid,
) -> StoreResult<ApiKey> {
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
                 WHERE id = $1 AND account_id = $2 AND app_id = $3 AND kind = 'service' RETURNING {COLUMNS}"
            ),
            &[&id, &wtx.account_id(), &app_id],
        )
        .await?
        .ok_or(StoreError::NotFound("service key"))?;
    let key = from_row(&row);
    wtx.invalidate(crate::invalidation::Invalidation::App { app: app_id });
    wtx.audit(
        "service_key.revoke",
        "app",
        Some(app_id.to_string()),
        json!({"id": key.id, "prefix": key.prefix}),
    );
    Ok(key)
}

/// What a service key opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceKey {
    pub id: Uuid,
    pub account_id: Uuid,
    pub app_id: Uuid,
}

/// Resolves a presented Panda `apiKey` (not revoked) to its app. A read only: the validator
/// calls it on a cache miss of the execution counter, so it records no `last_used_at`.
pub async fn find_service_key<C: GenericClient + Sync>(
    c: &C,
    plaintext: &str,
) -> StoreResult<Option<ServiceKey>> {
    Ok(c.query_opt(
        "SELECT id, account_id, app_id FROM api_keys
              WHERE key_hash = $1 AND revoked_at IS NULL AND kind = 'service'",
        &[&secrets::sha256(plaintext)],
    )
    .await?
    .map(|r| ServiceKey {
        id: r.get("id"),
        account_id: r.get("account_id"),
        app_id: r.get("app_id"),
    }))
}
