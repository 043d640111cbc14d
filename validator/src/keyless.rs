//! Keyless validations for the key-system facades (Panda's `key=keyless`, Junkie's keyless
//! services): the HWID's entry from the cache, the core's decision
//! (`verdict::keyless::decide_keyless`), and the entry made or refreshed when the core asks.

use chrono::{DateTime, Utc};
use keyward_shared::model::App;
use keyward_shared::store::keyless::{self, KeylessEntry};
use keyward_shared::verdict::keyless::{decide_keyless, Keyless};
use keyward_shared::verdict::{Code, RequestFacts};
use keyward_shared::write::{Actor, WriteTx};
use keyward_shared::StoreError;

use crate::cache::AppView;
use crate::error::ApiError;
use crate::health::Freshness;
use crate::State;

/// The keyless answer for this request, counted per app and minute like every verdict (no
/// entry and no keyless mode counts as `not_found`: there was no key to let in). A refresh the
/// core asks for is written first, and the answer then carries the refreshed entry; one that
/// cannot be written (PostgreSQL away) does not change the answer, since keyless mode lets the
/// request in either way.
pub async fn run_keyless(
    state: &State,
    app: &AppView,
    facts: RequestFacts<'_>,
    now: DateTime<Utc>,
) -> Result<Keyless, ApiError> {
    let answer = answer(state, app, facts, now).await?;
    let code = match &answer {
        Keyless::Valid { .. } => Code::Valid,
        Keyless::Disabled => Code::NotFound,
        Keyless::Refused(v) => v.code,
    };
    state.validation_counts.verdict(&app.app, code, now);
    Ok(answer)
}

async fn answer(
    state: &State,
    app: &AppView,
    facts: RequestFacts<'_>,
    now: DateTime<Utc>,
) -> Result<Keyless, ApiError> {
    let entry = match facts.hwid {
        Some(hwid) => state.caches.key_system.keyless(app.app.id, hwid).await?,
        None => None,
    };
    let answer = decide_keyless(&app.app, entry.as_deref(), &app.blacklist, facts, now);
    let (Keyless::Valid { refresh: true, .. }, Some(hwid)) = (&answer, facts.hwid) else {
        return Ok(answer);
    };
    if state.health.freshness() != Freshness::Live {
        return Ok(answer);
    }
    match refresh(state, &app.app, hwid).await {
        Ok(e) => Ok(Keyless::Valid {
            premium: e.premium,
            expires_at: Some(e.expires_at),
            refresh: true,
        }),
        Err(e) => {
            tracing::warn!(error = %e, app = %app.app.id, "could not refresh a keyless entry");
            Ok(answer)
        }
    }
}

async fn refresh(state: &State, app: &App, hwid: &str) -> Result<KeylessEntry, StoreError> {
    let mut client = keyward_shared::db::checkout(&state.pool).await?;
    let actor = Actor {
        origin: Default::default(),
        account_id: app.account_id,
        label: "validator".into(),
    };
    let mut wtx = WriteTx::begin(&mut client, actor).await?;
    let entry = keyless::refresh(&mut wtx, app.id, hwid, app.key_system.keyless_ttl_secs).await?;
    wtx.commit().await?;
    state.caches.key_system.forget_keyless(app.id, hwid);
    Ok(entry)
}
