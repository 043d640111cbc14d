//! Client-API sessions (KeyAuth `sessionid`). Created by `init` and persisted before the answer
//! is sent, so any validator can serve the next call; changes to an existing session go through
//! a [`WriteTx`] so validators that cached it drop it.

use chrono::{DateTime, Utc};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::StoreResult;
use crate::invalidation::Invalidation;
use crate::write::WriteTx;

/// Length of a session id: 16 characters of `[0-9A-Za-z]` from a CSPRNG (95 bits).
pub const ID_LEN: usize = 16;

#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub account_id: Uuid,
    pub app_id: Uuid,
    pub user_id: Option<Uuid>,
    pub validated: bool,
    /// The username (or, for `license`, the key) the session logged in with.
    pub credential: Option<String>,
    pub ip: Option<String>,
    pub hwid: Option<String>,
    /// The 1.2 HMAC key of every answer after `init`: `<client enckey>-<app secret>`.
    pub enckey: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, account_id, app_id, user_id, validated, credential, ip, hwid, enckey, created_at, expires_at";

fn from_row(r: &Row) -> Session {
    Session {
        id: r.get("id"),
        account_id: r.get("account_id"),
        app_id: r.get("app_id"),
        user_id: r.get("user_id"),
        validated: r.get("validated"),
        credential: r.get("credential"),
        ip: r.get("ip"),
        hwid: r.get("hwid"),
        enckey: r.get("enckey"),
        created_at: r.get("created_at"),
        expires_at: r.get("expires_at"),
    }
}

pub fn new_id() -> String {
    crate::secrets::random_token(ID_LEN)
}

pub struct NewSession<'a> {
    pub account_id: Uuid,
    pub app_id: Uuid,
    pub ip: Option<&'a str>,
    pub enckey: Option<&'a str>,
    pub lifetime_secs: i32,
}

/// Inserts a fresh session. Its id is new and random, so no validator can hold it yet: no
/// invalidation is needed.
pub async fn create<C: GenericClient + Sync>(c: &C, s: &NewSession<'_>) -> StoreResult<Session> {
    let row = c
        .query_one(
            &format!(
                "INSERT INTO sessions (id, account_id, app_id, ip, enckey, expires_at)
                 VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6)) RETURNING {COLUMNS}"
            ),
            &[
                &new_id(),
                &s.account_id,
                &s.app_id,
                &s.ip,
                &s.enckey,
                &f64::from(s.lifetime_secs),
            ],
        )
        .await?;
    Ok(from_row(&row))
}

/// A session that has not expired.
pub async fn find<C: crate::db::Hot>(
    c: &C,
    app_id: Uuid,
    id: &str,
) -> StoreResult<Option<Session>> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {COLUMNS} FROM sessions WHERE id = $1 AND app_id = $2 AND expires_at > now()"
        )
    });
    let stmt = c.statement(&SQL).await?;
    Ok(c.client()
        .query_opt(&stmt, &[&id, &app_id])
        .await?
        .map(|r| from_row(&r)))
}

/// Marks a session logged in (`login`, `register`, `license`).
pub async fn validate(
    wtx: &mut WriteTx<'_>,
    app_id: Uuid,
    id: &str,
    user_id: Uuid,
    credential: &str,
    hwid: Option<&str>,
) -> StoreResult<()> {
    wtx.tx()
        .execute(
            "UPDATE sessions SET validated = true, user_id = $3, credential = $4, hwid = $5
              WHERE id = $1 AND app_id = $2",
            &[&id, &app_id, &user_id, &credential, &hwid],
        )
        .await?;
    wtx.invalidate(Invalidation::Session {
        app: app_id,
        id: id.to_string(),
    });
    Ok(())
}

pub async fn delete(wtx: &mut WriteTx<'_>, app_id: Uuid, id: &str) -> StoreResult<()> {
    wtx.tx()
        .execute(
            "DELETE FROM sessions WHERE id = $1 AND app_id = $2",
            &[&id, &app_id],
        )
        .await?;
    wtx.invalidate(Invalidation::Session {
        app: app_id,
        id: id.to_string(),
    });
    Ok(())
}

/// Credentials of the logged-in, unexpired sessions of an app (at most `limit`).
pub async fn online<C: GenericClient + Sync>(
    c: &C,
    app_id: Uuid,
    limit: i64,
) -> StoreResult<Vec<String>> {
    Ok(c.query(
        "SELECT DISTINCT credential FROM sessions
              WHERE app_id = $1 AND validated AND expires_at > now() AND credential IS NOT NULL
              ORDER BY credential LIMIT $2",
        &[&app_id, &limit],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

/// Deletes up to `limit` expired sessions (run on a schedule by the validators); returns how
/// many went. Expired sessions are already refused by [`find`]: this only reclaims the rows.
pub async fn purge_expired<C: GenericClient + Sync>(c: &C, limit: i64) -> StoreResult<u64> {
    Ok(c.execute(
        "DELETE FROM sessions WHERE id IN (
                SELECT id FROM sessions WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED)",
        &[&limit],
    )
    .await?)
}
