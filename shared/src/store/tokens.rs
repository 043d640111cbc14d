//! Bearer tokens of Keygen's admin API: API keys of kind `token` whose bearer is the account
//! (admin) or one of its apps (product), optionally expiring. Stored hashed like every key; the
//! plaintext (`admin-<hex>v3`, `prod-<hex>v3`, Keygen's format) is returned once, on creation and
//! on regeneration.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::secrets;
use crate::write::WriteTx;

/// How long a regeneration extends an expiring token (Keygen's two weeks).
pub const REGENERATE_EXTENSION: Duration = Duration::weeks(2);

/// Who a token acts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bearer {
    Admin,
    Product(Uuid),
    /// One of the account's users (`account_users`): its own licenses and machines.
    User(Uuid),
}

impl Bearer {
    pub fn kind(self) -> &'static str {
        match self {
            Bearer::Admin => "admin-token",
            Bearer::Product(_) => "product-token",
            Bearer::User(_) => "user-token",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Bearer::Admin => "admin",
            Bearer::Product(_) => "prod",
            Bearer::User(_) => "user",
        }
    }

    fn app(self) -> Option<Uuid> {
        match self {
            Bearer::Product(app) => Some(app),
            _ => None,
        }
    }

    fn user(self) -> Option<Uuid> {
        match self {
            Bearer::User(user) => Some(user),
            _ => None,
        }
    }

    /// The stored kind.
    fn stored(self) -> &'static str {
        match self {
            Bearer::Admin => "admin",
            Bearer::Product(_) => "product",
            Bearer::User(_) => "user",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Token {
    pub id: Uuid,
    pub account_id: Uuid,
    pub bearer: Bearer,
    pub name: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, account_id, name, bearer_kind, app_id, user_id, expires_at, created_at, updated_at";

/// How long a user token lives unless asked otherwise (Keygen's two weeks); other kinds never
/// expire unless asked.
pub const USER_TOKEN_TTL: Duration = Duration::weeks(2);

fn from_row(r: &Row) -> StoreResult<Token> {
    let app: Option<Uuid> = r.try_get("app_id")?;
    let user: Option<Uuid> = r.try_get("user_id")?;
    let kind: String = r.try_get("bearer_kind")?;
    let bearer = match (kind.as_str(), app, user) {
        ("product", Some(app), _) => Bearer::Product(app),
        ("user", _, Some(user)) => Bearer::User(user),
        ("admin", _, _) => Bearer::Admin,
        _ => return Err(StoreError::Corrupt(format!("token of unknown kind {kind}"))),
    };
    let name: String = r.try_get("name")?;
    Ok(Token {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        bearer,
        name: (!name.is_empty()).then_some(name),
        expires_at: r.try_get("expires_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn new_plaintext(bearer: Bearer) -> String {
    format!(
        "{}-{}v3",
        bearer.prefix(),
        hex::encode(secrets::random_bytes::<32>())
    )
}

fn check_name(name: Option<&str>) -> StoreResult<&str> {
    let name = name.map(str::trim).unwrap_or("");
    if name.chars().count() > 100 {
        return Err(StoreError::Invalid(
            "name must be at most 100 characters".into(),
        ));
    }
    Ok(name)
}

/// Creates a token; for a product token the app must be the caller's.
pub async fn create(
    wtx: &mut WriteTx<'_>,
    bearer: Bearer,
    name: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
) -> StoreResult<(Token, String)> {
    let name = check_name(name)?;
    if expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(StoreError::Invalid("expiry must be in the future".into()));
    }
    if let Some(app) = bearer.app() {
        super::apps::owned(wtx, app).await?;
    }
    let expires_at = match bearer {
        Bearer::User(_) => Some(expires_at.unwrap_or_else(|| Utc::now() + USER_TOKEN_TTL)),
        _ => expires_at,
    };
    let plaintext = new_plaintext(bearer);
    let kind = bearer.stored();
    let row = wtx
        .tx()
        .query_one(
            &format!(
                "INSERT INTO api_keys (id, account_id, name, prefix, key_hash, scopes, kind, bearer_kind, app_id, user_id, expires_at)
                 VALUES ($1, $2, $3, $4, $5, '{{*}}', 'token', $6, $7, $8, $9) RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::new_v4(),
                &wtx.account_id(),
                &name,
                &plaintext.chars().take(10).collect::<String>(),
                &secrets::sha256(&plaintext),
                &kind,
                &bearer.app(),
                &bearer.user(),
                &expires_at,
            ],
        )
        .await?;
    let token = from_row(&row)?;
    wtx.audit(
        "token.create",
        "token",
        Some(token.id.to_string()),
        json!({"kind": bearer.kind(), "app_id": bearer.app(), "expires_at": expires_at}),
    );
    Ok((token, plaintext))
}

/// The caller's live tokens (of one app when `app` is given), newest first, with their total.
pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app: Option<Uuid>,
    user: Option<Uuid>,
    page: super::Offset,
) -> StoreResult<(Vec<Token>, i64)> {
    let filter = "account_id = $1 AND kind = 'token' AND revoked_at IS NULL
                  AND ($2::uuid IS NULL OR app_id = $2) AND ($3::uuid IS NULL OR user_id = $3)";
    let total: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM api_keys WHERE {filter}"),
            &[&account_id, &app, &user],
        )
        .await?
        .try_get(0)?;
    let rows = c
        .query(
            &format!(
                "SELECT {COLUMNS} FROM api_keys WHERE {filter}
                 ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5"
            ),
            &[&account_id, &app, &user, &page.limit, &page.offset],
        )
        .await?;
    let items = rows.iter().map(from_row).collect::<StoreResult<_>>()?;
    Ok((items, total))
}

pub async fn get<C: GenericClient + Sync>(c: &C, account_id: Uuid, id: Uuid) -> StoreResult<Token> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM api_keys
                  WHERE id = $1 AND account_id = $2 AND kind = 'token' AND revoked_at IS NULL"
            ),
            &[&id, &account_id],
        )
        .await?
        .ok_or(StoreError::NotFound("token"))?;
    from_row(&row)
}

/// A new secret for the token (the old one stops working at commit); an expiring token's
/// expiry moves two weeks past now.
pub async fn regenerate(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<(Token, String)> {
    let current = get(wtx.tx(), wtx.account_id(), id).await?;
    let plaintext = new_plaintext(current.bearer);
    let expires_at = current
        .expires_at
        .map(|_| Utc::now() + REGENERATE_EXTENSION);
    let row = wtx
        .tx()
        .query_one(
            &format!(
                "UPDATE api_keys SET key_hash = $3, prefix = $4, expires_at = $5, updated_at = now()
                  WHERE id = $1 AND account_id = $2 RETURNING {COLUMNS}"
            ),
            &[
                &id,
                &wtx.account_id(),
                &secrets::sha256(&plaintext),
                &plaintext.chars().take(10).collect::<String>(),
                &expires_at,
            ],
        )
        .await?;
    wtx.audit("token.regenerate", "token", Some(id.to_string()), json!({}));
    Ok((from_row(&row)?, plaintext))
}

pub async fn revoke(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    let revoked = wtx
        .tx()
        .execute(
            "UPDATE api_keys SET revoked_at = now(), updated_at = now()
              WHERE id = $1 AND account_id = $2 AND kind = 'token' AND revoked_at IS NULL",
            &[&id, &wtx.account_id()],
        )
        .await?;
    if revoked == 0 {
        return Err(StoreError::NotFound("token"));
    }
    wtx.audit("token.revoke", "token", Some(id.to_string()), json!({}));
    Ok(())
}

/// What a presented token turned out to be.
#[derive(Debug)]
pub enum Presented {
    Valid(Token),
    Expired,
    Unknown,
}

pub async fn authenticate<C: GenericClient + Sync>(
    c: &C,
    plaintext: &str,
) -> StoreResult<Presented> {
    let row = c
        .query_opt(
            &format!(
                "UPDATE api_keys SET last_used_at = now()
                  WHERE key_hash = $1 AND kind = 'token' AND revoked_at IS NULL RETURNING {COLUMNS}"
            ),
            &[&secrets::sha256(plaintext)],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Presented::Unknown);
    };
    let token = from_row(&row)?;
    if token.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Ok(Presented::Expired);
    }
    Ok(Presented::Valid(token))
}
