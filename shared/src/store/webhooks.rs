//! Webhooks a client may trigger (KeyAuth `webhook`); the control-plane only stores them.

use serde::Deserialize;
use serde_json::json;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::model::Webhook;
use crate::write::WriteTx;

const COLUMNS: &str = "id, app_id, name, url, user_agent, body, auth_header, authed, created_at";

fn from_row(r: &Row) -> Webhook {
    let auth_header: Option<String> = r.get("auth_header");
    Webhook {
        id: r.get("id"),
        app_id: r.get("app_id"),
        name: r.get("name"),
        url: r.get("url"),
        user_agent: r.get("user_agent"),
        body: r.get("body"),
        has_auth_header: auth_header.is_some(),
        auth_header,
        authed: r.get("authed"),
        created_at: r.get("created_at"),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    pub name: String,
    pub url: String,
    pub user_agent: Option<String>,
    pub body: Option<String>,
    pub auth_header: Option<String>,
    /// Callable only from a validated session (default true).
    #[serde(default)]
    pub authed: Option<bool>,
}

fn check(w: &NewWebhook) -> StoreResult<()> {
    let invalid = |m: &str| Err(StoreError::Invalid(m.into()));
    if w.name.trim().is_empty() || w.name.chars().count() > 100 {
        return invalid("name must be 1 to 100 characters");
    }
    let url = w.url.trim();
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || url.len() > 2048
        || url.contains(char::is_whitespace)
    {
        return invalid("url must be an http:// or https:// URL of at most 2048 characters");
    }
    if w.user_agent.as_deref().is_some_and(|u| u.len() > 256) {
        return invalid("user_agent must be at most 256 characters");
    }
    if w.body.as_deref().is_some_and(|b| b.len() > 64 * 1024) {
        return invalid("body must be at most 64 KiB");
    }
    if w.auth_header
        .as_deref()
        .is_some_and(|h| h.len() > 4096 || h.contains(['\r', '\n']))
    {
        return invalid("auth_header must be one line of at most 4096 characters");
    }
    Ok(())
}

pub async fn list<C: GenericClient + Sync>(
    c: &C,
    account_id: Uuid,
    app_id: Uuid,
) -> StoreResult<Vec<Webhook>> {
    Ok(c.query(
        &format!("SELECT {COLUMNS} FROM webhooks WHERE app_id = $1 AND account_id = $2 ORDER BY created_at, id"),
        &[&app_id, &account_id],
    )
    .await?
    .iter()
    .map(from_row)
    .collect())
}

/// For the client API, which addresses a webhook by id within an app it resolved.
pub async fn find<C: GenericClient + Sync>(
    c: &C,
    app_id: Uuid,
    id: Uuid,
) -> StoreResult<Option<Webhook>> {
    Ok(c.query_opt(
        &format!("SELECT {COLUMNS} FROM webhooks WHERE id = $1 AND app_id = $2"),
        &[&id, &app_id],
    )
    .await?
    .map(|r| from_row(&r)))
}

/// For the client API's `webid`: a webhook's id or its name.
pub async fn find_for_client<C: GenericClient + Sync>(
    c: &C,
    app_id: Uuid,
    webid: &str,
) -> StoreResult<Option<Webhook>> {
    let id = Uuid::parse_str(webid).ok();
    Ok(c.query_opt(
        &format!("SELECT {COLUMNS} FROM webhooks WHERE app_id = $1 AND (id = $2 OR name = $3) ORDER BY id = $2 DESC LIMIT 1"),
        &[&app_id, &id, &webid],
    )
    .await?
    .map(|r| from_row(&r)))
}

pub async fn create(wtx: &mut WriteTx<'_>, app_id: Uuid, w: &NewWebhook) -> StoreResult<Webhook> {
    check(w)?;
    let row = wtx
        .tx()
        .query_opt(
            &format!(
                "INSERT INTO webhooks (id, account_id, app_id, name, url, user_agent, body, auth_header, authed)
                 SELECT $1, a.account_id, a.id, $4, $5, $6, $7, $8, $9 FROM apps a WHERE a.id = $2 AND a.account_id = $3
                 RETURNING {COLUMNS}"
            ),
            &[&Uuid::new_v4(), &app_id, &wtx.account_id(), &w.name.trim(), &w.url.trim(), &w.user_agent, &w.body, &w.auth_header, &w.authed.unwrap_or(true)],
        )
        .await?
        .ok_or(StoreError::NotFound("app"))?;
    let hook = from_row(&row);
    wtx.audit(
        "webhook.create",
        "webhook",
        Some(hook.id.to_string()),
        json!({"app_id": app_id, "name": hook.name, "url": hook.url}),
    );
    Ok(hook)
}

pub async fn delete(wtx: &mut WriteTx<'_>, app_id: Uuid, id: Uuid) -> StoreResult<()> {
    let row = wtx
        .tx()
        .query_opt(
            "DELETE FROM webhooks WHERE id = $1 AND app_id = $2 AND account_id = $3 RETURNING name",
            &[&id, &app_id, &wtx.account_id()],
        )
        .await?
        .ok_or(StoreError::NotFound("webhook"))?;
    let name: String = row.get(0);
    wtx.audit(
        "webhook.delete",
        "webhook",
        Some(id.to_string()),
        json!({"app_id": app_id, "name": name}),
    );
    Ok(())
}
