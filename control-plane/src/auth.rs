//! Bearer authentication: an admin JWT (all scopes) or an API key (`kw_…`, its own scopes). Both
//! resolve to an [`Actor`], which scopes every query to the caller's tenant and labels the audit
//! log.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use keyward_shared::store::api_keys;
use keyward_shared::write::{Actor, Origin};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::AppState;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    username: String,
    iat: i64,
    exp: i64,
}

/// The shortest token a login may ask for.
const MIN_TOKEN_SECS: u64 = 60;

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl: Duration) -> JwtKeys {
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl,
        }
    }

    /// The lifetime of a token a client asked for: never longer than the configured one (the
    /// admin UI asks for a short one and renews it while in use).
    pub fn lifetime(&self, asked_secs: Option<u64>) -> ApiResult<Duration> {
        match asked_secs {
            None => Ok(self.ttl),
            Some(s) if s < MIN_TOKEN_SECS => Err(ApiError::bad_request(format!(
                "ttl_secs must be at least {MIN_TOKEN_SECS}"
            ))),
            Some(s) => Ok(Duration::from_secs(s).min(self.ttl)),
        }
    }

    pub fn issue_for(
        &self,
        account: Uuid,
        username: &str,
        ttl: Duration,
    ) -> ApiResult<(String, DateTime<Utc>)> {
        let now = Utc::now();
        let expires = now + chrono::Duration::seconds(ttl.as_secs() as i64);
        let claims = Claims {
            sub: account,
            username: username.to_string(),
            iat: now.timestamp(),
            exp: expires.timestamp(),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::internal(format!("could not sign token: {e}")))?;
        Ok((token, expires))
    }

    /// The account an admin's login token acts for, when it is valid.
    pub fn account_of(&self, token: &str) -> Option<Uuid> {
        self.verify(token).map(|c| c.sub)
    }

    fn verify(&self, token: &str) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        decode::<Claims>(token, &self.decoding, &validation)
            .ok()
            .map(|d| d.claims)
    }
}

/// The authenticated caller.
pub struct Auth {
    pub actor: Actor,
    /// `None` for admin JWTs, which may do everything.
    scopes: Option<Vec<String>>,
}

impl Auth {
    pub fn account_id(&self) -> Uuid {
        self.actor.account_id
    }

    /// Whether this is an admin's login token (not an API key): only those may be renewed.
    pub fn is_login(&self) -> bool {
        self.scopes.is_none()
    }

    pub fn require(&self, scope: &str) -> ApiResult<()> {
        match &self.scopes {
            Some(granted) if !api_keys::allows(granted, scope) => Err(ApiError::forbidden(
                format!("this API key lacks the '{scope}' scope"),
            )),
            _ => Ok(()),
        }
    }
}

/// The request's peer address and user agent, for the audit entries its writes make.
pub fn origin(parts: &Parts) -> Origin {
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let user_agent = parts
        .headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    Origin::new(peer, user_agent)
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized(
                "missing credentials: send 'Authorization: Bearer <token or API key>'",
            )
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be 'Bearer <token>'")
            })?;
        if token.starts_with("kw_") {
            let client = state.client().await?;
            let (account_id, key) = api_keys::authenticate(&**client, token)
                .await?
                .ok_or_else(|| ApiError::unauthorized("invalid or revoked API key"))?;
            return Ok(Auth {
                actor: Actor {
                    origin: origin(parts),
                    account_id,
                    label: format!("api_key:{}", key.prefix),
                },
                scopes: Some(key.scopes),
            });
        }
        let claims = state
            .jwt()
            .verify(token)
            .ok_or_else(|| ApiError::unauthorized("invalid or expired token; log in again"))?;
        Ok(Auth {
            actor: Actor {
                origin: origin(parts),
                account_id: claims.sub,
                label: format!("admin:{}", claims.username),
            },
            scopes: None,
        })
    }
}
