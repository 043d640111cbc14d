//! `Authorization` on Keygen's client calls, checked before anything else in Keygen's order:
//! an unknown key is 401 `LICENSE_INVALID`; a suspended one, or an expired one whose policy
//! revokes access, 403; a policy that does not allow license authentication, 403
//! `LICENSE_NOT_ALLOWED`.

use std::sync::Arc;

use chrono::Utc;
use hyper::header::AUTHORIZATION;
use hyper::{HeaderMap, StatusCode};
use keyward_shared::policy::{AuthenticationStrategy, ExpirationStrategy};
use keyward_shared::store::license_details::LicenseDetail;
use uuid::Uuid;

use super::State;
use keyward_shared::keygen_doc::{KgError, Source};

pub enum Bearer<'a> {
    License(&'a str),
    /// A `Bearer` token: the control-plane's to check.
    Token,
}

pub fn bearer(headers: &HeaderMap) -> Result<Option<Bearer<'_>>, KgError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || {
        KgError::new(
            StatusCode::UNAUTHORIZED,
            "The Authorization header must be `License <key>` or `Bearer <token>`",
        )
        .code("TOKEN_FORMAT_INVALID")
        .source(Source::Header("Authorization"))
    };
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, credential) = value.trim().split_once(' ').ok_or_else(malformed)?;
    let credential = credential.trim();
    if credential.is_empty() {
        return Err(malformed());
    }
    if scheme.eq_ignore_ascii_case("license") {
        Ok(Some(Bearer::License(credential)))
    } else if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") {
        Ok(Some(Bearer::Token))
    } else {
        Err(malformed())
    }
}

/// The license with this key in `account` (any account when none is named: the key alone then
/// decides, and a key that several accounts use must be asked for under `/v1/accounts/{id}/`).
pub async fn find(
    state: &State,
    account: Option<Uuid>,
    key: &str,
) -> Result<Option<Arc<LicenseDetail>>, KgError> {
    let all = state
        .caches
        .details
        .by_key(key)
        .await
        .map_err(|e| super::unavailable(&e))?;
    let mut matching = all
        .iter()
        .filter(|d| account.is_none_or(|a| d.license.account_id == a));
    let first = matching.next().cloned();
    if first.is_some() && matching.next().is_some() {
        return Err(KgError::new(
            StatusCode::CONFLICT,
            "Several licenses have this key; name the account (/v1/accounts/{account}/…) and \
             the product (scope.product) to choose one",
        )
        .code("LICENSE_AMBIGUOUS"));
    }
    Ok(first)
}

/// A license bearer that may act: Keygen's checks, in its order.
pub async fn license(
    state: &State,
    account: Option<Uuid>,
    key: &str,
) -> Result<Arc<LicenseDetail>, KgError> {
    let Some(license) = find(state, account, key).await? else {
        return Err(KgError::license_invalid());
    };
    if license.owner_banned() {
        return Err(KgError::forbidden("License is banned").code("LICENSE_BANNED"));
    }
    if license.suspended() {
        return Err(KgError::forbidden("License is suspended").code("LICENSE_SUSPENDED"));
    }
    let expired = license.license.expires_at.is_some_and(|t| t <= Utc::now());
    if expired && license.policy.expiration_strategy == ExpirationStrategy::RevokeAccess {
        return Err(KgError::forbidden("License is expired").code("LICENSE_EXPIRED"));
    }
    if !matches!(
        license.policy.authentication_strategy,
        AuthenticationStrategy::License | AuthenticationStrategy::Mixed
    ) {
        return Err(
            KgError::forbidden("License key authentication is not allowed by policy")
                .code("LICENSE_NOT_ALLOWED"),
        );
    }
    Ok(license)
}
