//! Users of a whole account (Keygen's users, CyberLicense's customers): an e-mail unique in the
//! account, names, a role, metadata, a password, a ban, and optionally the Discord user they log
//! in as (unique in the account). Stored with KeyAuth's app users, without
//! an app. A user may own licenses; banning the user bans them (Keygen's `BANNED`), so a ban or
//! unban invalidates every license the user owns.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::invalidation::Invalidation;
use crate::model::{check_metadata, present};
use crate::secrets;
use crate::write::WriteTx;

/// How long a password-reset token lives.
pub const RESET_TTL: Duration = Duration::hours(1);

/// A password hash no password matches: a user made without one cannot log in.
const NO_PASSWORD: &str = "!";

#[derive(Debug, Clone, PartialEq)]
pub struct AccountUser {
    pub id: Uuid,
    pub account_id: Uuid,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// `user` or `read-only`.
    pub role: String,
    pub banned: bool,
    pub metadata: Map<String, Value>,
    /// The Discord user id (a snowflake) linked for the customer portal's Discord login.
    pub discord_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl AccountUser {
    pub fn full_name(&self) -> Option<String> {
        match (&self.first_name, &self.last_name) {
            (Some(f), Some(l)) => Some(format!("{f} {l}")),
            (Some(n), None) | (None, Some(n)) => Some(n.clone()),
            (None, None) => None,
        }
    }
}

const COLUMNS: &str = "id, account_id, email, first_name, last_name, role, banned, metadata,
    discord_id, created_at, coalesce(updated_at, created_at) AS updated_at";

fn from_row(r: &Row) -> StoreResult<AccountUser> {
    Ok(AccountUser {
        id: r.try_get("id")?,
        account_id: r.try_get("account_id")?,
        email: r.try_get("email")?,
        first_name: r.try_get("first_name")?,
        last_name: r.try_get("last_name")?,
        role: r.try_get("role")?,
        banned: r.try_get("banned")?,
        metadata: match r.try_get::<_, Value>("metadata")? {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        discord_id: r.try_get("discord_id")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// What may be set on a user; absent fields keep their value, `null` clears a name.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub email: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub last_name: Option<Option<String>>,
    pub role: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    /// A Discord user id (1 to 25 digits); `null` unlinks.
    #[serde(default, deserialize_with = "present")]
    pub discord_id: Option<Option<String>>,
}

/// Whether `id` has the shape of a Discord user id (a snowflake: decimal digits), the shape the
/// `discord_id` columns accept.
pub fn is_discord_id(id: &str) -> bool {
    (1..=25).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
}

fn check(p: &UserPatch) -> StoreResult<()> {
    let invalid = |m: &str| Err(StoreError::Invalid(m.into()));
    if let Some(email) = &p.email {
        let e = email.trim();
        // 128: the e-mail is also stored as the row's `username`, whose column allows no more.
        let ok = e.chars().count() <= 128
            && e.split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
            && !e.contains(char::is_whitespace);
        if !ok {
            return invalid("email must be an e-mail address of at most 128 characters");
        }
    }
    for name in [&p.first_name, &p.last_name]
        .into_iter()
        .flatten()
        .flatten()
    {
        if name.chars().count() > 100 || name.chars().any(char::is_control) {
            return invalid("names must be at most 100 printable characters");
        }
    }
    if p.role
        .as_deref()
        .is_some_and(|r| !matches!(r, "user" | "read-only"))
    {
        return invalid("role must be user or read-only");
    }
    if let Some(m) = &p.metadata {
        check_metadata(m).map_err(StoreError::Invalid)?;
    }
    if p.discord_id
        .as_ref()
        .and_then(Option::as_deref)
        .is_some_and(|d| !is_discord_id(d))
    {
        return invalid("discord_id must be a Discord user id (1 to 25 digits)");
    }
    Ok(())
}

const EMAIL_TAKEN: &str = "a user with this email already exists";
const DISCORD_TAKEN: &str = "this Discord account is already linked to another user";

/// A unique violation as a conflict that says which value is taken.
fn taken(e: tokio_postgres::Error) -> StoreError {
    let discord = e
        .as_db_error()
        .and_then(|d| d.constraint())
        .is_some_and(|c| c == "app_users_account_discord");
    StoreError::from(e).conflict_on_unique(if discord { DISCORD_TAKEN } else { EMAIL_TAKEN })
}

/// Creates a user; `password_hash` is an argon2id PHC string (`None`: cannot log in).
pub async fn create(
    wtx: &mut WriteTx<'_>,
    p: &UserPatch,
    password_hash: Option<&str>,
) -> StoreResult<AccountUser> {
    check(p)?;
    let Some(email) = p.email.as_deref().map(str::trim) else {
        return Err(StoreError::Invalid("email is required".into()));
    };
    let metadata = Value::Object(p.metadata.clone().unwrap_or_default());
    let row = wtx
        .tx()
        .query_one(
            &format!(
                "INSERT INTO app_users (id, account_id, app_id, username, email, password_hash,
                                        first_name, last_name, role, metadata, discord_id)
                 VALUES ($1, $2, NULL, $3, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::new_v4(),
                &wtx.account_id(),
                &email,
                &password_hash.unwrap_or(NO_PASSWORD),
                &p.first_name.clone().flatten(),
                &p.last_name.clone().flatten(),
                &p.role.as_deref().unwrap_or("user"),
                &metadata,
                &p.discord_id.clone().flatten(),
            ],
        )
        .await
        .map_err(taken)?;
    let user = from_row(&row)?;
    wtx.audit(
        "user.create",
        "user",
        Some(user.id.to_string()),
        json!({"email": user.email, "discord_id": user.discord_id}),
    );
    Ok(user)
}

/// A page of the account's users (matching `search` in e-mail or names), newest first, with
/// the total.
pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    search: Option<&str>,
    page: super::Offset,
) -> StoreResult<(Vec<AccountUser>, i64)> {
    let pattern = search
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(super::contains_pattern);
    let filter = "account_id = $1 AND app_id IS NULL
        AND ($2::text IS NULL OR email ILIKE $2 OR first_name ILIKE $2 OR last_name ILIKE $2)";
    let total: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM app_users WHERE {filter}"),
            &[&account_id, &pattern],
        )
        .await?
        .try_get(0)?;
    let rows = c
        .query(
            &format!(
                "SELECT {COLUMNS} FROM app_users WHERE {filter}
                 ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
            ),
            &[&account_id, &pattern, &page.limit, &page.offset],
        )
        .await?;
    let items = rows.iter().map(from_row).collect::<StoreResult<_>>()?;
    Ok((items, total))
}

/// One of the account's users by id, or by e-mail (case-insensitive).
pub async fn find<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    id_or_email: &str,
) -> StoreResult<AccountUser> {
    let id = Uuid::parse_str(id_or_email).ok();
    let row = c
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM app_users
                  WHERE account_id = $1 AND app_id IS NULL
                    AND (id = $2 OR ($2::uuid IS NULL AND lower(email) = lower($3)))"
            ),
            &[&account_id, &id, &id_or_email],
        )
        .await?
        .ok_or(StoreError::NotFound("user"))?;
    from_row(&row)
}

/// The users with this e-mail in any account (or in `account`), with their password hashes:
/// what a token request names.
pub async fn for_login<C: GenericClient + Sync>(
    c: &C,
    account: Option<Uuid>,
    email: &str,
) -> StoreResult<Vec<(AccountUser, String)>> {
    let rows = c
        .query(
            &format!(
                "SELECT {COLUMNS}, password_hash FROM app_users
                  WHERE app_id IS NULL AND lower(email) = lower($1)
                    AND ($2::uuid IS NULL OR account_id = $2)
                  LIMIT 2"
            ),
            &[&email.trim(), &account],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((from_row(r)?, r.try_get("password_hash")?)))
        .collect()
}

/// A user by id in any account, or by an e-mail that only one account has (a call that names
/// no account); `None` otherwise.
pub async fn find_anywhere<C: GenericClient + Sync>(
    c: &C,
    id_or_email: &str,
) -> StoreResult<Option<AccountUser>> {
    if let Ok(id) = Uuid::parse_str(id_or_email) {
        let row = c
            .query_opt(
                &format!("SELECT {COLUMNS} FROM app_users WHERE id = $1 AND app_id IS NULL"),
                &[&id],
            )
            .await?;
        return row.as_ref().map(from_row).transpose();
    }
    let mut found = for_login(c, None, id_or_email).await?;
    Ok(if found.len() == 1 {
        found.pop().map(|(u, _)| u)
    } else {
        None
    })
}

/// The user's password hash (to check an old password before a change).
pub async fn password_hash<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    id: Uuid,
) -> StoreResult<String> {
    Ok(c.query_opt(
        "SELECT password_hash FROM app_users WHERE id = $1 AND account_id = $2 AND app_id IS NULL",
        &[&id, &account_id],
    )
    .await?
    .ok_or(StoreError::NotFound("user"))?
    .try_get(0)?)
}

/// What an audit entry shows of a user before and after a change (no password, no metadata
/// values: they may be large or private).
fn audit_view(u: &AccountUser) -> Value {
    json!({"email": u.email, "first_name": u.first_name, "last_name": u.last_name,
           "role": u.role, "discord_id": u.discord_id})
}

pub async fn update(wtx: &mut WriteTx<'_>, id: Uuid, p: &UserPatch) -> StoreResult<AccountUser> {
    check(p)?;
    // Locked, so the audit's `before` is the row this update replaces.
    let before = wtx
        .tx()
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM app_users
                  WHERE id = $1 AND account_id = $2 AND app_id IS NULL FOR UPDATE"
            ),
            &[&id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("user"))?;
    let before = from_row(&before)?;
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "UPDATE app_users SET
                    email = coalesce($3, email), username = coalesce($3, username),
                    first_name = CASE WHEN $4 THEN $5 ELSE first_name END,
                    last_name = CASE WHEN $6 THEN $7 ELSE last_name END,
                    role = coalesce($8, role), metadata = coalesce($9, metadata),
                    discord_id = CASE WHEN $10 THEN $11 ELSE discord_id END,
                    updated_at = now()
                  WHERE id = $1 AND account_id = $2 AND app_id IS NULL RETURNING {COLUMNS}"
            ),
            &[
                &id,
                &wtx.account_id(),
                &p.email.as_deref().map(str::trim),
                &p.first_name.is_some(),
                &p.first_name.clone().flatten(),
                &p.last_name.is_some(),
                &p.last_name.clone().flatten(),
                &p.role,
                &p.metadata.clone().map(Value::Object),
                &p.discord_id.is_some(),
                &p.discord_id.clone().flatten(),
            ],
        )
        .await
        .map_err(taken)?
        .ok_or(StoreError::NotFound("user"))?;
    let after = from_row(&row)?;
    wtx.audit(
        "user.update",
        "user",
        Some(id.to_string()),
        json!({"before": audit_view(&before), "after": audit_view(&after),
               "metadata": p.metadata.is_some()}),
    );
    Ok(after)
}

/// The account's user linked to this Discord user id (the customer portal's Discord login).
pub async fn find_by_discord<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    discord_id: &str,
) -> StoreResult<Option<AccountUser>> {
    if !is_discord_id(discord_id) {
        return Ok(None);
    }
    let row = c
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM app_users
                  WHERE account_id = $1 AND app_id IS NULL AND discord_id = $2"
            ),
            &[&account_id, &discord_id],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// A keyset page of the account's users, newest first (the native API's list shape).
pub struct Page {
    pub items: Vec<AccountUser>,
    /// Pass as `cursor` for the next (older) page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// The account's users matching `search` (in e-mail or names), newest first, `limit` (1..=500,
/// default 50) at a time after `cursor`.
pub async fn page<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    search: Option<&str>,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> StoreResult<Page> {
    let limit = super::page_size(limit, 50, 500);
    let (after_at, after_id) = cursor.map(super::decode_cursor).transpose()?.unzip();
    let pattern = search
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(super::contains_pattern);
    let rows = c
        .query(
            &format!(
                "SELECT {COLUMNS} FROM app_users
                  WHERE account_id = $1 AND app_id IS NULL
                    AND ($2::text IS NULL OR email ILIKE $2 OR first_name ILIKE $2
                         OR last_name ILIKE $2)
                    AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
                  ORDER BY created_at DESC, id DESC LIMIT $5"
            ),
            &[&account_id, &pattern, &after_at, &after_id, &(limit + 1)],
        )
        .await?;
    let mut items = rows.iter().map(from_row).collect::<StoreResult<Vec<_>>>()?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items
            .last()
            .map(|u| super::encode_cursor(u.created_at, u.id))
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// Drops every license the user owns from the validators' caches (their answers depend on the
/// owner's ban).
async fn invalidate_owned(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    let rows = wtx
        .tx()
        .query(
            "SELECT app_id, key FROM licenses WHERE owner_id = $1 AND account_id = $2",
            &[&id, &wtx.account_id()],
        )
        .await?;
    for r in &rows {
        wtx.invalidate(Invalidation::License {
            app: r.try_get(0)?,
            key: r.try_get(1)?,
        });
    }
    Ok(())
}

pub async fn set_banned(wtx: &mut WriteTx<'_>, id: Uuid, banned: bool) -> StoreResult<AccountUser> {
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "UPDATE app_users SET banned = $3, updated_at = now()
                  WHERE id = $1 AND account_id = $2 AND app_id IS NULL RETURNING {COLUMNS}"
            ),
            &[&id, &wtx.account_id(), &banned],
        )
        .await?
        .ok_or(StoreError::NotFound("user"))?;
    invalidate_owned(wtx, id).await?;
    let action = if banned { "user.ban" } else { "user.unban" };
    wtx.audit(action, "user", Some(id.to_string()), json!({}));
    from_row(&row)
}

pub async fn delete(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<()> {
    // Its licenses lose their owner (and, if it was banned, the ban that came with it).
    invalidate_owned(wtx, id).await?;
    let n = wtx
        .tx()
        .execute(
            "DELETE FROM app_users WHERE id = $1 AND account_id = $2 AND app_id IS NULL",
            &[&id, &wtx.account_id()],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound("user"));
    }
    wtx.audit("user.delete", "user", Some(id.to_string()), json!({}));
    Ok(())
}

/// Replaces the password hash (and ends any reset in progress).
pub async fn set_password_hash(wtx: &mut WriteTx<'_>, id: Uuid, hash: &str) -> StoreResult<()> {
    let n = wtx
        .tx()
        .execute(
            "UPDATE app_users SET password_hash = $3, password_reset_digest = NULL,
                    password_reset_expires_at = NULL, updated_at = now()
              WHERE id = $1 AND account_id = $2 AND app_id IS NULL",
            &[&id, &wtx.account_id(), &hash],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound("user"));
    }
    wtx.audit("user.password", "user", Some(id.to_string()), json!({}));
    Ok(())
}

/// Starts a password reset: a new single-use token (returned, only its digest kept) valid for
/// [`RESET_TTL`].
pub async fn start_password_reset(wtx: &mut WriteTx<'_>, id: Uuid) -> StoreResult<String> {
    let token = secrets::random_token(40);
    let n = wtx
        .tx()
        .execute(
            "UPDATE app_users SET password_reset_digest = $3, password_reset_expires_at = $4
              WHERE id = $1 AND account_id = $2 AND app_id IS NULL",
            &[
                &id,
                &wtx.account_id(),
                &secrets::sha256(&token),
                &(Utc::now() + RESET_TTL),
            ],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::NotFound("user"));
    }
    wtx.audit(
        "user.password_reset",
        "user",
        Some(id.to_string()),
        json!({}),
    );
    Ok(token)
}

/// Ends a reset with its token and the new password's hash; `false` when the token is wrong,
/// used or expired.
pub async fn finish_password_reset(
    wtx: &mut WriteTx<'_>,
    id: Uuid,
    token: &str,
    hash: &str,
) -> StoreResult<bool> {
    let n = wtx
        .tx()
        .execute(
            "UPDATE app_users SET password_hash = $4, password_reset_digest = NULL,
                    password_reset_expires_at = NULL, updated_at = now()
              WHERE id = $1 AND account_id = $2 AND app_id IS NULL
                AND password_reset_digest = $3 AND password_reset_expires_at > now()",
            &[&id, &wtx.account_id(), &secrets::sha256(token), &hash],
        )
        .await?;
    if n == 1 {
        wtx.audit(
            "user.password",
            "user",
            Some(id.to_string()),
            json!({"reset": true}),
        );
    }
    Ok(n == 1)
}

/// The product (app) of a license as a customer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedProduct {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
}

/// The licenses the user owns, newest first, each with its product; or, with `only`, that one
/// license if the user owns it (else none: another's license and an unknown id look alike).
pub async fn owned_licenses<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    user: Uuid,
    only: Option<Uuid>,
) -> StoreResult<Vec<(crate::model::License, OwnedProduct)>> {
    let rows = c
        .query(
            &format!(
                "{} WHERE l.account_id = $1 AND l.owner_id = $2 AND ($3::uuid IS NULL OR l.id = $3)
                 ORDER BY l.created_at DESC, l.id DESC",
                super::licenses::SELECT
            ),
            &[&account_id, &user, &only],
        )
        .await?;
    let licenses: Vec<crate::model::License> = rows.iter().map(super::licenses::from_row).collect();
    let mut app_ids: Vec<Uuid> = licenses.iter().map(|l| l.app_id).collect();
    app_ids.sort_unstable();
    app_ids.dedup();
    let apps = c
        .query(
            "SELECT id, name, description FROM apps WHERE account_id = $1 AND id = ANY($2)",
            &[&account_id, &app_ids],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(OwnedProduct {
                id: r.try_get(0)?,
                name: r.try_get(1)?,
                description: r.try_get(2)?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    licenses
        .into_iter()
        .map(|l| {
            let product = apps
                .iter()
                .find(|a| a.id == l.app_id)
                .cloned()
                .ok_or_else(|| StoreError::Corrupt(format!("license {} has no app", l.id)))?;
            Ok((l, product))
        })
        .collect()
}
