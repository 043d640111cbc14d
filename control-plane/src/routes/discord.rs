//! Discord OAuth2 login for both portals, and the admin's link to a Discord user.
//!
//! `GET /v1/auth/discord?portal=admin|customer[&account=…]` redirects to Discord;
//! `GET /v1/auth/discord/callback?code&state` finishes: the admin portal's Discord user is the
//! account linked to it (an admin JWT), the customer portal's the account's customer linked to
//! it (a customer token, `Bearer::User`). Either way the answer is the Bearer token as JSON,
//! never a cookie, and the login is audited (`auth.login`). Off (404) unless configured.
//! `PUT`/`DELETE /v1/account/discord` link and unlink the admin's Discord user; customers are
//! linked through `/v1/customers`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use keyward_shared::store::tokens::{self, Bearer};
use keyward_shared::store::{account_users, accounts};
use keyward_shared::write::{Actor, Origin, WriteTx};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::auth::Auth;
use crate::discord::{Discord, DiscordError, Portal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use crate::AppState;

fn configured(state: &AppState) -> ApiResult<&Discord> {
    state.discord().ok_or_else(|| {
        ApiError::not_found(
            "Discord login is not configured on this server (KEYWARD_DISCORD_CLIENT_ID, \
             KEYWARD_DISCORD_CLIENT_SECRET, KEYWARD_DISCORD_REDIRECT_URL)",
        )
    })
}

#[derive(Deserialize)]
pub struct StartQuery {
    portal: Option<String>,
    /// The account (id or public id) whose customer logs in; the customer portal needs it.
    account: Option<String>,
}

/// `GET /v1/auth/discord`: a 302 to Discord's authorization page.
pub async fn start(
    State(state): State<AppState>,
    Query(q): Query<StartQuery>,
) -> ApiResult<Response> {
    let discord = configured(&state)?;
    let portal = q
        .portal
        .as_deref()
        .and_then(Portal::parse)
        .ok_or_else(|| ApiError::bad_request("portal must be admin or customer"))?;
    let account = match (portal, q.account.as_deref().map(str::trim)) {
        (Portal::Admin, _) => None,
        (Portal::Customer, None | Some("")) => {
            return Err(ApiError::bad_request(
                "account is required for the customer portal",
            ))
        }
        (Portal::Customer, Some(reference)) => {
            let client = state.client().await?;
            Some(
                accounts::resolve(&**client, reference)
                    .await?
                    .ok_or_else(|| ApiError::not_found("account not found"))?,
            )
        }
    };
    let url = discord
        .authorize(portal, account)
        .map_err(|e| ApiError::internal(format!("could not sign the login state: {e}")))?;
    let location = HeaderValue::from_str(&url)
        .map_err(|_| ApiError::internal("the authorize URL is not a valid header"))?;
    let mut resp = (StatusCode::FOUND, axum::Json(json!({"authorize_url": url}))).into_response();
    resp.headers_mut().insert(header::LOCATION, location);
    Ok(resp)
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    /// Discord's refusal (`access_denied` when the user cancels).
    error: Option<String>,
}

/// A login's answer: the Bearer token of the portal's session.
#[derive(Serialize)]
pub struct Session {
    token: String,
    token_type: &'static str,
    expires_at: DateTime<Utc>,
    portal: Portal,
    account_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_id: Option<Uuid>,
}

/// `GET /v1/auth/discord/callback`.
pub async fn callback(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> ApiResult<Json<Session>> {
    let discord = configured(&state)?;
    state.check_login_rate(peer.ip())?;
    let login = q
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("state is required"))?;
    let login = discord.check_state(login).ok_or_else(|| {
        ApiError::bad_request("state is invalid or expired; start the Discord login again")
    })?;
    if q.error.is_some() {
        return Err(ApiError::unauthorized(
            "Discord did not authorize the login",
        ));
    }
    let code = q
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 512)
        .ok_or_else(|| ApiError::bad_request("code is required (at most 512 characters)"))?;
    let discord_id = discord.user_of(code).await.map_err(|e| match e {
        DiscordError::Refused => ApiError::unauthorized(e.to_string()),
        DiscordError::Unavailable => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "DISCORD_UNAVAILABLE",
            e.to_string(),
        ),
    })?;
    let origin = Origin::new(
        Some(peer.ip()),
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    );
    let expires_at = Utc::now() + chrono::Duration::seconds(discord.session().as_secs() as i64);
    let mut client = state.client().await?;
    let details = json!({"method": "discord", "portal": login.portal.as_str(),
                         "discord_id": discord_id});
    match (login.portal, login.account) {
        (Portal::Admin, _) => {
            let account = accounts::find_by_discord(&**client, &discord_id)
                .await?
                .ok_or_else(|| {
                    ApiError::forbidden(
                        "this Discord account is not linked to an admin account \
                         (link it with PUT /v1/account/discord)",
                    )
                })?;
            let (token, expires_at) =
                state
                    .jwt()
                    .issue_for(account.id, &account.username, discord.session())?;
            let actor = Actor {
                account_id: account.id,
                label: format!("admin:{}", account.username),
                origin,
            };
            let mut w = WriteTx::begin(&mut client, actor).await?;
            w.audit(
                "account.login",
                "account",
                Some(account.id.to_string()),
                details,
            );
            w.commit().await?;
            Ok(Json(Session {
                token,
                token_type: "Bearer",
                expires_at,
                portal: Portal::Admin,
                account_id: account.id,
                customer_id: None,
            }))
        }
        (Portal::Customer, None) => Err(ApiError::bad_request(
            "state names no account; start the Discord login again",
        )),
        (Portal::Customer, Some(account)) => {
            let user = account_users::find_by_discord(&**client, account, &discord_id)
                .await?
                .ok_or_else(|| {
                    ApiError::forbidden(
                        "this Discord account is not linked to a customer of this account",
                    )
                })?;
            if user.banned {
                return Err(ApiError::forbidden("this customer is banned"));
            }
            let actor = Actor {
                account_id: account,
                label: format!("user:{}", user.email),
                origin,
            };
            let mut w = WriteTx::begin(&mut client, actor).await?;
            let (made, token) = tokens::create(
                &mut w,
                Bearer::User(user.id),
                Some("discord login"),
                Some(expires_at),
            )
            .await?;
            w.audit("account.login", "user", Some(user.id.to_string()), details);
            w.commit().await?;
            Ok(Json(Session {
                token,
                token_type: "Bearer",
                expires_at: made.expires_at.unwrap_or(expires_at),
                portal: Portal::Customer,
                account_id: account,
                customer_id: Some(user.id),
            }))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    discord_id: String,
}

#[derive(Serialize)]
pub struct Linked {
    discord_id: Option<String>,
}

/// Linking the admin's login identity is as strong as minting API keys: the same scope.
const LINK_SCOPE: &str = "api_keys:write";

/// `PUT /v1/account/discord`: the Discord user that logs in as this account's admin.
pub async fn link(
    State(state): State<AppState>,
    auth: Auth,
    Json(body): Json<Link>,
) -> ApiResult<Json<Linked>> {
    auth.require(LINK_SCOPE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let discord_id = accounts::set_discord_id(&mut w, Some(body.discord_id.trim())).await?;
    w.commit().await?;
    Ok(Json(Linked { discord_id }))
}

/// `DELETE /v1/account/discord`.
pub async fn unlink(State(state): State<AppState>, auth: Auth) -> ApiResult<StatusCode> {
    auth.require(LINK_SCOPE)?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    accounts::set_discord_id(&mut w, None).await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
