use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap};
use keyward_shared::model::Account;
use keyward_shared::secrets;
use keyward_shared::store::{accounts, audit};
use keyward_shared::write::{Actor, Origin, WriteTx};
use serde::{Deserialize, Serialize};

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Username or email.
    username: String,
    password: String,
    /// A shorter token than the server's default (the admin UI asks for 30 minutes).
    ttl_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    ttl_secs: Option<u64>,
}

#[derive(Serialize)]
pub struct RefreshResponse {
    token: String,
    token_type: &'static str,
    expires_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Serialize)]
pub struct LoginResponse {
    token: String,
    token_type: &'static str,
    expires_at: chrono::DateTime<chrono::Utc>,
    account: Account,
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    let origin = Origin::new(
        Some(peer.ip()),
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    );
    state.check_login_rate(peer.ip())?;
    if req.username.len() > 256 || req.password.len() > 1024 {
        return Err(ApiError::bad_request("username or password is too long"));
    }
    let ttl = state.jwt().lifetime(req.ttl_secs)?;
    let found = {
        let client = state.client().await?;
        accounts::find_for_login(&**client, req.username.trim()).await?
    };
    // Unknown accounts are verified against a dummy hash so both cost the same time. argon2 is
    // CPU-heavy: keep it off the async workers.
    let hash = found.as_ref().map_or_else(
        || secrets::dummy_password_hash().to_string(),
        |(_, h)| h.clone(),
    );
    let password = req.password;
    let ok = tokio::task::spawn_blocking(move || secrets::verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::internal(format!("password check failed: {e}")))?;
    let account = match found {
        Some((account, _)) if ok => account,
        Some((account, _)) => {
            // Recorded behind the answer, which must not take longer for a known account
            // than for an unknown one (unknown ones have no audit log to record in).
            let state = state.clone();
            tokio::spawn(async move {
                if let Err(e) = audit_login(&state, &account, origin, false).await {
                    tracing::warn!(error = %e.message, "could not record a refused login");
                }
            });
            return Err(ApiError::unauthorized("wrong username or password"));
        }
        None => return Err(ApiError::unauthorized("wrong username or password")),
    };
    audit_login(&state, &account, origin, true).await?;
    let (token, expires_at) = state.jwt().issue_for(account.id, &account.username, ttl)?;
    Ok(Json(LoginResponse {
        token,
        token_type: "Bearer",
        expires_at,
        account,
    }))
}

/// `POST /v1/auth/refresh`: a fresh login token for the admin whose token this is (the UI renews
/// its short tokens while the admin works). API keys are not renewed: they do not expire this way.
pub async fn refresh(
    State(state): State<AppState>,
    auth: Auth,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<Json<RefreshResponse>> {
    if !auth.is_login() {
        return Err(ApiError::forbidden("only a login token can be renewed"));
    }
    let ttl = state.jwt().lifetime(req.ttl_secs)?;
    let account = {
        let client = state.client().await?;
        accounts::get(&**client, auth.account_id()).await?
    };
    let (token, expires_at) = state.jwt().issue_for(account.id, &account.username, ttl)?;
    Ok(Json(RefreshResponse {
        token,
        token_type: "Bearer",
        expires_at,
    }))
}

/// Records a password login to the account in its audit log (`account.login`), as the actor its
/// token will be.
async fn audit_login(
    state: &AppState,
    account: &Account,
    origin: Origin,
    success: bool,
) -> ApiResult<()> {
    let actor = Actor {
        account_id: account.id,
        label: format!("admin:{}", account.username),
        origin,
    };
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, actor).await?;
    audit::record_login(&mut w, success, serde_json::json!({"method": "password"})).await?;
    w.commit().await?;
    Ok(())
}

/// `GET /v1/account`: the account, its integer id (what Junkie's end users send as
/// `identifier`, and its REST answers show as `user_id`) and the Discord user linked for the
/// admin portal's Discord login.
#[derive(Serialize)]
pub struct AccountView {
    #[serde(flatten)]
    account: Account,
    num_id: i64,
    discord_id: Option<String>,
}

pub async fn account(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<AccountView>> {
    let client = state.read_client().await?;
    let account = accounts::get(&**client, auth.account_id()).await?;
    let num_id = accounts::num_id(&**client, account.id).await?;
    let discord_id = accounts::discord_id(&**client, account.id).await?;
    Ok(Json(AccountView {
        account,
        num_id,
        discord_id,
    }))
}
