//! Client-API sessions (KeyAuth `sessionid`). Created by `init` and persisted before the answer
//! is sent, so any validator can serve the next call; changes to an existing session go through
//! a [`WriteTx`] so validators that cached it drop it.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
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

/// A live session as an admin sees it: never its `enckey` (half of the key its answers are
/// signed with).
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    pub id: String,
    pub app_id: Uuid,
    pub user_id: Option<Uuid>,
    /// The user's current name (None before a login, or once the user is gone).
    pub username: Option<String>,
    /// What the session logged in with: the username, or the key for `license`.
    pub credential: Option<String>,
    pub validated: bool,
    pub ip: Option<String>,
    pub hwid: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

pub struct Page {
    pub items: Vec<SessionView>,
    pub next_cursor: Option<String>,
}

/// The cursor of a list ordered by (expires_at, id) descending. Session ids are alphanumeric,
/// so `_` separates unambiguously.
fn encode_cursor(expires_at: DateTime<Utc>, id: &str) -> String {
    format!("{}_{id}", expires_at.timestamp_micros())
}

fn decode_cursor(s: &str) -> StoreResult<(DateTime<Utc>, String)> {
    let bad = || StoreError::Invalid("cursor is malformed".into());
    let (micros, id) = s.split_once('_').ok_or_else(bad)?;
    let at = micros
        .parse()
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_micros)
        .ok_or_else(bad)?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad());
    }
    Ok((at, id.to_string()))
}

/// The app's unexpired sessions (logged in or not, or only `validated` ones), latest expiry
/// first — which, sessions having a fixed lifetime, is newest first, and follows the
/// `(app_id, expires_at)` index the expiry purge already needs.
pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Uuid,
    validated: Option<bool>,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> StoreResult<Page> {
    let limit = super::page_size(limit, 50, 500);
    let (after_at, after_id) = cursor.map(decode_cursor).transpose()?.unzip();
    let rows = c
        .query(
            "SELECT s.id, s.app_id, s.user_id, u.username, s.credential, s.validated, s.ip, s.hwid,
                    s.created_at, s.expires_at
               FROM sessions s LEFT JOIN app_users u ON u.id = s.user_id
              WHERE s.app_id = $1 AND s.account_id = $2 AND s.expires_at > now()
                AND ($3::bool IS NULL OR s.validated = $3)
                AND ($4::timestamptz IS NULL OR (s.expires_at, s.id) < ($4, $5::text))
              ORDER BY s.expires_at DESC, s.id DESC LIMIT $6",
            &[
                &app_id,
                &account_id,
                &validated,
                &after_at,
                &after_id,
                &(limit + 1),
            ],
        )
        .await?;
    let mut items: Vec<SessionView> = rows
        .iter()
        .map(|r| SessionView {
            id: r.get("id"),
            app_id: r.get("app_id"),
            user_id: r.get("user_id"),
            username: r.get("username"),
            credential: r.get("credential"),
            validated: r.get("validated"),
            ip: r.get("ip"),
            hwid: r.get("hwid"),
            created_at: r.get("created_at"),
            expires_at: r.get("expires_at"),
        })
        .collect();
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|s| encode_cursor(s.expires_at, &s.id))
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// Ends one of the caller's sessions: every validator drops it, and its next call answers
/// "Session not found".
pub async fn kill(wtx: &mut WriteTx<'_>, id: &str) -> StoreResult<()> {
    let row = wtx
        .tx()
        .query_opt(
            "DELETE FROM sessions WHERE id = $1 AND account_id = $2 RETURNING app_id, credential",
            &[&id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("session"))?;
    let app: Uuid = row.get(0);
    let credential: Option<String> = row.get(1);
    wtx.invalidate(Invalidation::Session {
        app,
        id: id.to_string(),
    });
    wtx.audit(
        "session.kill",
        "app",
        Some(app.to_string()),
        json!({"session": id, "credential": credential}),
    );
    Ok(())
}

/// Above this many sessions, killing all invalidates the app as a whole rather than each
/// session: fewer notifications, at the cost of the validators re-reading the app's caches.
const KILL_ONE_BY_ONE: usize = 1000;

/// Ends every session of one of the caller's apps; returns how many went.
pub async fn kill_all(wtx: &mut WriteTx<'_>, app_id: Uuid) -> StoreResult<u64> {
    super::apps::owned(wtx, app_id).await?;
    let ids: Vec<String> = wtx
        .tx()
        .query(
            "DELETE FROM sessions WHERE app_id = $1 AND account_id = $2 RETURNING id",
            &[&app_id, &wtx.account_id()],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let n = ids.len() as u64;
    if ids.len() > KILL_ONE_BY_ONE {
        wtx.invalidate(Invalidation::App { app: app_id });
    } else {
        for id in ids {
            wtx.invalidate(Invalidation::Session { app: app_id, id });
        }
    }
    wtx.audit(
        "session.kill_all",
        "app",
        Some(app_id.to_string()),
        json!({"deleted": n}),
    );
    Ok(n)
}
