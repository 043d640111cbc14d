//! `POST /api/v1/whitelist/getKeyOpen {service, provider, identifier}` → 200 `text/plain`: the
//! link of the account's provider (by integer id or name), which the SDK hands over as the body
//! text. An unknown account or provider, or one without a link, is 404 `PROVIDER_NOT_FOUND`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use super::{field, identifier, json_body, plausible_name, text};
use crate::body::RequestBody;
use crate::error::ApiError;
use crate::State;

const NOT_FOUND: &str = "PROVIDER_NOT_FOUND";

pub fn rate_limited() -> Response<Full<Bytes>> {
    text(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITTED")
}

pub async fn get_key_open(state: &State, body: &mut RequestBody) -> Response<Full<Bytes>> {
    let body = match json_body(state, body).await {
        Ok(b) => b,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("BAD_REQUEST: {e}")),
    };
    let provider = field(&body, "provider").filter(|p| plausible_name(p));
    let (Some(account), Some(provider)) = (identifier(&body), provider) else {
        return text(StatusCode::NOT_FOUND, NOT_FOUND);
    };
    match state
        .caches
        .key_system
        .provider_link(account, &provider)
        .await
    {
        Ok(Some(link)) => text(StatusCode::OK, Bytes::copy_from_slice(link.as_bytes())),
        Ok(None) => text(StatusCode::NOT_FOUND, NOT_FOUND),
        Err(e) => {
            let e = ApiError::from(e);
            state.metrics.error(e.code);
            text(e.status, "SERVICE_UNAVAILABLE")
        }
    }
}
