//! Who is calling the Keygen admin API: a Keygen token (admin or product), or, as our choice, a
//! Keyward API key (with its scopes) or admin JWT acting as an admin token. `Authorization:
//! License` belongs to the client set, which the validator serves.

use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use keyward_shared::keygen_doc::{time, KgError, Source};
use keyward_shared::store::license_details::LicenseDetail;
use keyward_shared::store::{account_users, accounts, api_keys, tokens};
use serde_json::json;
use uuid::Uuid;

use super::{store_error, Answer, Ctx, Handled};
use crate::AppState;

const BEARER_CHALLENGE: &str = "Bearer realm=\"keygen\"";

/// The authenticated bearer of a request.
#[derive(Debug, Clone)]
pub enum Bearer {
    /// An admin token, an admin's JWT or an unscoped (`*`) API key: the whole account.
    Admin { account: Uuid, token: Option<Uuid> },
    /// A product token: one app of the account.
    Product {
        account: Uuid,
        app: Uuid,
        token: Uuid,
    },
    /// A scoped Keyward API key: the account, within its scopes.
    ApiKey { account: Uuid, scopes: Vec<String> },
    /// A user token: the licenses the user owns and their machines, and the user itself.
    User {
        account: Uuid,
        user: Uuid,
        token: Uuid,
    },
}

impl Bearer {
    pub fn account(&self) -> Uuid {
        match self {
            Bearer::Admin { account, .. }
            | Bearer::Product { account, .. }
            | Bearer::ApiKey { account, .. }
            | Bearer::User { account, .. } => *account,
        }
    }

    /// The app a product token is limited to.
    pub fn product(&self) -> Option<Uuid> {
        match self {
            Bearer::Product { app, .. } => Some(*app),
            _ => None,
        }
    }

    /// The token the request was made with, when it is a Keygen token.
    pub fn token(&self) -> Option<Uuid> {
        match self {
            Bearer::Admin { token, .. } => *token,
            Bearer::Product { token, .. } | Bearer::User { token, .. } => Some(*token),
            Bearer::ApiKey { .. } => None,
        }
    }

    /// Refuses what the bearer's API-key scopes do not grant (tokens carry no scopes).
    pub fn require(&self, scope: &str) -> Result<(), KgError> {
        match self {
            Bearer::ApiKey { scopes, .. } if !api_keys::allows(scopes, scope) => Err(
                KgError::forbidden(format!("This API key lacks the '{scope}' scope"))
                    .code("TOKEN_NOT_ALLOWED"),
            ),
            _ => Ok(()),
        }
    }

    /// Refuses product and user tokens: what only an admin may do (products, tokens of
    /// others, …).
    pub fn require_admin(&self) -> Result<(), KgError> {
        match self {
            Bearer::Product { .. } | Bearer::User { .. } => Err(access_denied()),
            _ => Ok(()),
        }
    }

    /// The user of a user token.
    pub fn user(&self) -> Option<Uuid> {
        match self {
            Bearer::User { user, .. } => Some(*user),
            _ => None,
        }
    }

    /// The license is within the bearer's reach: its product's for a product token, owned by
    /// the user for a user token, any of the account's otherwise.
    pub fn reaches(&self, d: &LicenseDetail) -> bool {
        match self {
            Bearer::User { user, .. } => d.owner.as_ref().is_some_and(|o| o.0 == *user),
            _ => self.sees(d.license.app_id),
        }
    }

    /// A resource of `app` is visible to the bearer (a product token sees its app only; to
    /// anyone else's eyes the resource does not exist).
    pub fn sees(&self, app: Uuid) -> bool {
        self.product().is_none_or(|p| p == app)
    }
}

pub fn access_denied() -> KgError {
    KgError::forbidden("You do not have permission to complete the request")
}

fn unauthorized(detail: &str, code: &'static str) -> KgError {
    KgError::new(StatusCode::UNAUTHORIZED, detail)
        .code(code)
        .source(Source::Header("Authorization"))
        .challenge(BEARER_CHALLENGE)
}

/// The account a path names (`/v1/accounts/{id|public id}/…`); 404 when there is none.
pub async fn named_account(state: &AppState, reference: &str) -> Result<Uuid, KgError> {
    let client = state.client().await.map_err(|_| unavailable())?;
    accounts::resolve(&**client, reference)
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            KgError::not_found(format!("The requested account '{reference}' was not found"))
        })
}

fn unavailable() -> KgError {
    KgError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "The database is unreachable; retry shortly",
    )
    .code("UNAVAILABLE")
}

pub async fn bearer(state: &AppState, headers: &HeaderMap) -> Result<Bearer, KgError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(unauthorized(
            "An authentication token is required",
            "TOKEN_MISSING",
        ));
    };
    let value = value
        .to_str()
        .map_err(|_| unauthorized("Token format is invalid", "TOKEN_FORMAT_INVALID"))?;
    let (scheme, credential) = value
        .split_once(' ')
        .map(|(s, c)| (s, c.trim()))
        .unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("license") {
        return Err(KgError::forbidden(
            "License key authentication is served by the validator (the client API); the admin \
             API needs `Authorization: Bearer <token>`",
        )
        .code("LICENSE_NOT_ALLOWED"));
    }
    if !scheme.eq_ignore_ascii_case("bearer") || credential.is_empty() {
        return Err(unauthorized(
            "Token format is invalid (expected 'Bearer <token>')",
            "TOKEN_FORMAT_INVALID",
        ));
    }
    let client = state.client().await.map_err(|_| unavailable())?;
    if credential.starts_with("kw_") {
        let (account, key) = api_keys::authenticate(&**client, credential)
            .await
            .map_err(store_error)?
            .ok_or_else(|| unauthorized("Token is invalid", "TOKEN_INVALID"))?;
        return Ok(if key.scopes.iter().any(|s| s == "*") {
            Bearer::Admin {
                account,
                token: None,
            }
        } else {
            Bearer::ApiKey {
                account,
                scopes: key.scopes,
            }
        });
    }
    if credential.ends_with("v3") {
        return match tokens::authenticate(&**client, credential)
            .await
            .map_err(store_error)?
        {
            tokens::Presented::Valid(t) => Ok(match t.bearer {
                tokens::Bearer::Admin => Bearer::Admin {
                    account: t.account_id,
                    token: Some(t.id),
                },
                tokens::Bearer::Product(app) => Bearer::Product {
                    account: t.account_id,
                    app,
                    token: t.id,
                },
                tokens::Bearer::User(user) => {
                    let u = account_users::find(&**client, t.account_id, &user.to_string())
                        .await
                        .map_err(store_error)?;
                    if u.banned {
                        return Err(KgError::forbidden("User is banned").code("USER_BANNED"));
                    }
                    Bearer::User {
                        account: t.account_id,
                        user,
                        token: t.id,
                    }
                }
            }),
            tokens::Presented::Expired => Err(unauthorized("Token is expired", "TOKEN_EXPIRED")),
            tokens::Presented::Unknown => Err(unauthorized("Token is invalid", "TOKEN_INVALID")),
        };
    }
    // An admin's login JWT (the native API's) acts as an admin token.
    match state.jwt().account_of(credential) {
        Some(account) => Ok(Bearer::Admin {
            account,
            token: None,
        }),
        None => Err(unauthorized("Token is invalid", "TOKEN_INVALID")),
    }
}

/// `GET /v1/me`: the bearer. An admin is shown as Keygen's admin user (the account's owner), a
/// product token as its product.
pub async fn me(ctx: &Ctx<'_>) -> Handled {
    let client = ctx.state.client().await.map_err(|_| unavailable())?;
    match &ctx.bearer {
        Bearer::User { user, .. } => {
            let u = account_users::find(&**client, ctx.account, &user.to_string())
                .await
                .map_err(store_error)?;
            let doc = json!({"data": keyward_shared::keygen_doc::user(&u, &ctx.links)});
            Ok(Answer::ok(&doc))
        }
        Bearer::Product { app, .. } => {
            let app = keyward_shared::store::apps::get(&**client, ctx.account, *app)
                .await
                .map_err(store_error)?;
            let doc = json!({"data": keyward_shared::keygen_doc::product(&app, &ctx.links)});
            Ok(Answer::ok(&doc))
        }
        _ => {
            let account = accounts::get(&**client, ctx.account)
                .await
                .map_err(store_error)?;
            let id = account.id.to_string();
            let doc = json!({"data": {
                "id": id,
                "type": "users",
                "attributes": {
                    "fullName": account.username,
                    "firstName": account.username,
                    "lastName": serde_json::Value::Null,
                    "email": account.email,
                    "status": "ACTIVE",
                    "role": "admin",
                    "permissions": ["*"],
                    "metadata": {},
                    "created": time(account.created_at),
                    "updated": time(account.created_at),
                },
                "relationships": {"account": ctx.links.account()},
                "links": {"self": ctx.links.of("users", account.id)},
            }});
            Ok(Answer::ok(&doc))
        }
    }
}
