//! Discord OAuth2 (authorization-code flow) for the admin and customer portals' login: the
//! authorize URL with a signed `state`, the code exchanged for an access token, and the Discord
//! user read with it. Who that user is in Keyward (an account, or a customer of one) is the
//! routes' business (`routes/discord.rs`).
//!
//! The `state` is a short JWT (HS256) holding the portal, the account and a nonce, signed with a
//! key derived from the control-plane's JWT secret: any instance can finish a flow another began,
//! with no shared memory, and a state can never pass for an admin JWT (another key).
//!
//! Calls go through `shared::outbound` (timeout, size cap, no redirects). Its SSRF guard is off
//! here: the endpoints are the operator's configuration (a stand-in on loopback, an egress proxy
//! on the LAN), never a tenant's. No secret, code or token is ever logged.

use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use keyward_shared::outbound::{check_target, Outbound, OutboundConfig, OutboundRequest};
use keyward_shared::secrets;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::DiscordOptions;

/// How long a login may take between the redirect to Discord and the callback.
const STATE_TTL_SECS: i64 = 600;
/// Discord's answers are small JSON documents.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Separates state tokens from anything else the JWT secret signs.
const STATE_AUDIENCE: &str = "keyward:discord-state";
/// The longest session a login may open (a year); chrono cannot hold arbitrary seconds.
const MAX_SESSION_SECS: u64 = 366 * 86_400;

/// Which portal a login is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Portal {
    Admin,
    Customer,
}

impl Portal {
    pub fn parse(s: &str) -> Option<Portal> {
        match s {
            "admin" => Some(Portal::Admin),
            "customer" => Some(Portal::Customer),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Portal::Admin => "admin",
            Portal::Customer => "customer",
        }
    }
}

/// What the signed `state` carries from the start of a login to its callback.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginState {
    pub portal: Portal,
    /// The account whose customer logs in (customer portal).
    pub account: Option<Uuid>,
    nonce: String,
    aud: String,
    iat: i64,
    exp: i64,
}

/// Why Discord did not tell who the user is.
#[derive(Debug, thiserror::Error)]
pub enum DiscordError {
    /// Discord refused the code (or the token it gave): an expired, used or forged code.
    #[error("Discord refused the authorization code")]
    Refused,
    /// Discord could not be reached or answered something unusable.
    #[error("Discord could not be reached or answered unexpectedly")]
    Unavailable,
}

/// The configured Discord login.
pub struct Discord {
    client_id: String,
    client_secret: String,
    redirect_url: String,
    token_url: String,
    user_url: String,
    authorize_url: String,
    session: Duration,
    http: Outbound,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
}

#[derive(Deserialize)]
struct UserAnswer {
    id: String,
}

impl Discord {
    /// The login, or `None` when it is not configured. A partial or malformed configuration is
    /// an error, so a typo stops the start instead of leaving the login silently off.
    pub fn new(o: &DiscordOptions, jwt_secret: &[u8]) -> anyhow::Result<Option<Discord>> {
        fn set(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|v| !v.is_empty())
        }
        let (id, secret, redirect) = match (
            set(&o.client_id),
            set(&o.client_secret),
            set(&o.redirect_url),
        ) {
            (None, None, None) => return Ok(None),
            (Some(i), Some(s), Some(r)) => (i, s, r),
            _ => anyhow::bail!(
                "Discord login needs KEYWARD_DISCORD_CLIENT_ID, KEYWARD_DISCORD_CLIENT_SECRET and \
                 KEYWARD_DISCORD_REDIRECT_URL together"
            ),
        };
        if !(60..=MAX_SESSION_SECS).contains(&o.session_secs) {
            anyhow::bail!("KEYWARD_DISCORD_SESSION_SECS must be between 60 and {MAX_SESSION_SECS}");
        }
        let base = o.api_base.trim().trim_end_matches('/');
        let (token_url, user_url) = (format!("{base}/oauth2/token"), format!("{base}/users/@me"));
        for (what, url) in [
            ("KEYWARD_DISCORD_API_BASE", token_url.as_str()),
            ("KEYWARD_DISCORD_AUTHORIZE_URL", o.authorize_url.trim()),
            ("KEYWARD_DISCORD_REDIRECT_URL", redirect),
        ] {
            check_target(url, true).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        }
        let http = Outbound::new(OutboundConfig {
            timeout: Duration::from_millis(o.timeout_ms.max(1)),
            max_response_bytes: MAX_RESPONSE_BYTES,
            allow_private: true,
            truncate_response: false,
        })?;
        let key = state_key(jwt_secret);
        Ok(Some(Discord {
            client_id: id.to_string(),
            client_secret: secret.to_string(),
            redirect_url: redirect.to_string(),
            token_url,
            user_url,
            authorize_url: o.authorize_url.trim().to_string(),
            session: Duration::from_secs(o.session_secs),
            http,
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
        }))
    }

    /// How long the session of a login lasts.
    pub fn session(&self) -> Duration {
        self.session
    }

    /// Discord's authorization URL for a new login, with its signed state.
    pub fn authorize(&self, portal: Portal, account: Option<Uuid>) -> anyhow::Result<String> {
        let now = Utc::now().timestamp();
        let claims = LoginState {
            portal,
            account,
            nonce: secrets::random_token(24),
            aud: STATE_AUDIENCE.into(),
            iat: now,
            exp: now + STATE_TTL_SECS,
        };
        let state = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("scope", "identify")
            .append_pair("redirect_uri", &self.redirect_url)
            .append_pair("state", &state)
            .finish();
        let sep = if self.authorize_url.contains('?') {
            '&'
        } else {
            '?'
        };
        Ok(format!("{}{sep}{query}", self.authorize_url))
    }

    /// The state of a login this deployment began, if it is genuine and not expired.
    pub fn check_state(&self, state: &str) -> Option<LoginState> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_audience(&[STATE_AUDIENCE]);
        v.leeway = 5;
        decode::<LoginState>(state, &self.decoding, &v)
            .ok()
            .map(|d| d.claims)
    }

    /// The Discord user id behind an authorization code: the code exchanged for an access token,
    /// then the user read with it.
    pub async fn user_of(&self, code: &str) -> Result<String, DiscordError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", &self.client_secret)
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &self.redirect_url)
            .finish();
        let token = self
            .http
            .call(&OutboundRequest {
                url: &self.token_url,
                body: Some(&body),
                content_type: Some("application/x-www-form-urlencoded"),
                user_agent: Some("Keyward (discord login)"),
                headers: &[("accept", "application/json")],
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable("token", &e))?;
        let token: TokenAnswer = answer("token", token.status, &token.body)?;
        let bearer = format!("Bearer {}", token.access_token);
        let user = self
            .http
            .call(&OutboundRequest {
                url: &self.user_url,
                authorization: Some(&bearer),
                user_agent: Some("Keyward (discord login)"),
                headers: &[("accept", "application/json")],
                ..Default::default()
            })
            .await
            .map_err(|e| unavailable("user", &e))?;
        let user: UserAnswer = answer("user", user.status, &user.body)?;
        Ok(user.id)
    }
}

/// The state's signing key: derived from the JWT secret, so it is never the admin JWTs' key.
fn state_key(jwt_secret: &[u8]) -> Vec<u8> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(jwt_secret);
    secrets::sha256(&format!("{STATE_AUDIENCE}\n{encoded}"))
}

/// A failed call, logged without its URL's or body's secrets (the error types carry none).
fn unavailable(call: &str, e: &keyward_shared::outbound::OutboundError) -> DiscordError {
    tracing::warn!(call, error = %e, "Discord login: call to Discord failed");
    DiscordError::Unavailable
}

/// Discord's answer as `T`: a 4xx is a refusal of the code or token, anything else unusable is
/// an outage.
fn answer<T: serde::de::DeserializeOwned>(
    call: &str,
    status: u16,
    body: &str,
) -> Result<T, DiscordError> {
    match status {
        200..=299 => serde_json::from_str(body).map_err(|_| {
            tracing::warn!(
                call,
                "Discord login: Discord's answer is not the expected JSON"
            );
            DiscordError::Unavailable
        }),
        400..=499 => {
            tracing::info!(call, status, "Discord login: Discord refused");
            Err(DiscordError::Refused)
        }
        _ => {
            tracing::warn!(call, status, "Discord login: Discord answered an error");
            Err(DiscordError::Unavailable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> DiscordOptions {
        DiscordOptions {
            client_id: Some("123".into()),
            client_secret: Some("shh".into()),
            redirect_url: Some("https://portal.example/callback".into()),
            ..DiscordOptions::default()
        }
    }

    #[test]
    fn off_unless_all_three_are_set() {
        let secret = [7u8; 32];
        assert!(Discord::new(&DiscordOptions::default(), &secret)
            .expect("off")
            .is_none());
        let partial = DiscordOptions {
            client_secret: None,
            ..options()
        };
        assert!(Discord::new(&partial, &secret).is_err());
        assert!(Discord::new(&options(), &secret).expect("on").is_some());
        let bad = DiscordOptions {
            api_base: "ftp://x".into(),
            ..options()
        };
        assert!(Discord::new(&bad, &secret).is_err());
    }

    #[test]
    fn state_round_trips_and_is_bound_to_the_key() {
        let d = Discord::new(&options(), &[7u8; 32])
            .expect("config")
            .expect("on");
        let account = Uuid::new_v4();
        let url = d
            .authorize(Portal::Customer, Some(account))
            .expect("authorize");
        let query = url.split_once('?').expect("query").1;
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(get("response_type"), "code");
        assert_eq!(get("client_id"), "123");
        assert_eq!(get("scope"), "identify");
        assert_eq!(get("redirect_uri"), "https://portal.example/callback");
        let state = d.check_state(&get("state")).expect("valid state");
        assert_eq!(state.portal, Portal::Customer);
        assert_eq!(state.account, Some(account));
        // Another deployment's key, or a tampered state, is refused.
        let other = Discord::new(&options(), &[8u8; 32])
            .expect("config")
            .expect("on");
        assert!(other.check_state(&get("state")).is_none());
        assert!(d.check_state(&format!("{}x", get("state"))).is_none());
        // An admin JWT made with the same secret is not a state.
        let jwt = crate::auth::JwtKeys::new(&[7u8; 32], Duration::from_secs(60))
            .issue_for(account, "alice", Duration::from_secs(60))
            .expect("jwt")
            .0;
        assert!(d.check_state(&jwt).is_none());
    }
}
