//! Reads about the service itself: its execution count (pushed to the validators, written behind)
//! and whether an identifier names a service of the caller's account.

use axum::response::Response;
use keyward_shared::store::{apps, usage};
use keyward_shared::StoreError;
use serde::Serialize;

use super::{ok, Call, PandaResult};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExecutionCount {
    execution_count: i64,
}

pub async fn execution_count(call: Call) -> PandaResult<Response> {
    let Call { caller, client, .. } = call;
    let n = usage::execution_count(&**client, caller.account_id, caller.app_id).await?;
    Ok(ok(ExecutionCount { execution_count: n }))
}

#[derive(Serialize)]
struct IdentifierCheck {
    exists: bool,
    message: &'static str,
}

/// `exists` is true only for a service id of the caller's own account: another tenant's reads
/// as unknown.
pub async fn identifier_check(call: Call) -> PandaResult<Response> {
    let Call {
        caller,
        params,
        client,
    } = call;
    let identifier = params.required_text("identifier", "the service identifier to look up")?;
    let exists = match apps::id_by_service(&**client, &identifier).await? {
        Some(app) => match apps::get(&**client, caller.account_id, app).await {
            Ok(_) => true,
            Err(StoreError::NotFound(_)) => false,
            Err(e) => return Err(e.into()),
        },
        None => false,
    };
    Ok(ok(IdentifierCheck {
        exists,
        message: if exists {
            "Identifier exists in the system."
        } else {
            "Identifier does not exist."
        },
    }))
}
