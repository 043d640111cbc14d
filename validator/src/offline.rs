//! The request paths without the network, for the criterion benches (feature `bench-support`):
//! a validator whose caches are primed and whose pool points nowhere, so a bench measures parse →
//! cache → verdict → serialise and nothing else.

use std::net::IpAddr;

use bytes::Bytes;
use keyward_shared::blacklist::BlacklistView;
use keyward_shared::model::{App, License};

use crate::compat::keyauth;
use crate::{validate, Config, State};

pub struct OfflineValidator {
    state: State,
}

impl OfflineValidator {
    /// A validator that knows `app` (with `blacklist`), `licenses` and that `absent_keys` do not
    /// exist, and believes itself connected, so cached answers are served as in production.
    pub async fn new(
        app: App,
        blacklist: BlacklistView,
        licenses: &[License],
        absent_keys: &[&str],
    ) -> anyhow::Result<Self> {
        // Nothing listens on port 1: a bench that misses the cache fails instead of measuring IO.
        let state = State::new(Config::new("postgres://bench@127.0.0.1:1/none"))?;
        state
            .caches
            .prime(app, blacklist, licenses, absent_keys)
            .await;
        state.health.set_connected();
        Ok(OfflineValidator { state })
    }

    /// `POST /v1/validate` from body to answer body; `Err` carries the error's message.
    pub async fn validate(&self, body: &[u8], ip: IpAddr) -> Result<Vec<u8>, String> {
        let parsed = validate::parse(body).map_err(|e| e.message)?;
        let checked = parsed.check().map_err(|e| e.message)?;
        validate::validate(&self.state, checked, ip)
            .await
            .map_err(|e| e.message)
    }
}

/// Parses client-API parameters as the KeyAuth routes do; returns how many `type`/`key`-style
/// lookups would find (so the work cannot be optimised away).
pub async fn keyauth_params(
    query: Option<&str>,
    content_type: Option<&str>,
    body: Bytes,
) -> Result<usize, String> {
    let p = keyauth::Params::parse(query, content_type, body)
        .await
        .map_err(|e| e.to_string())?;
    Ok(["type", "key", "hwid", "sessionid", "name", "ownerid"]
        .iter()
        .filter(|n| p.get(n).is_some())
        .count())
}
