use axum::extract::State;
use axum::http::StatusCode;
use keyward_shared::model::{present, License};
use keyward_shared::store::key_system::{self, TraitsPatch};
use keyward_shared::store::license_bulk::{self, BulkAction, BulkRequest};
use keyward_shared::store::licenses::{
    self, Count, CountQuery, Extension, GenerateSpec, LicensePatch, ListQuery,
};
use keyward_shared::write::WriteTx;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::webhooks::emit;
use crate::AppState;

#[derive(Serialize)]
pub struct Generated {
    licenses: Vec<License>,
}

#[derive(Serialize)]
pub struct Page {
    items: Vec<License>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    reason: Option<String>,
}

pub async fn generate(
    State(state): State<AppState>,
    auth: Auth,
    Path(app_id): Path<Uuid>,
    Json(spec): Json<GenerateSpec>,
) -> ApiResult<(StatusCode, Json<Generated>)> {
    auth.require("licenses:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let licenses = licenses::generate(&mut w, app_id, &spec).await?;
    let ids: Vec<Uuid> = licenses.iter().map(|l| l.id).collect();
    emit::licenses(&mut w, "license.created", &ids).await?;
    w.commit().await?;
    Ok((StatusCode::CREATED, Json(Generated { licenses })))
}

pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Page>> {
    auth.require("licenses:read")?;
    let client = state.read_client().await?;
    let page = licenses::list(&**client, auth.account_id(), &q).await?;
    Ok(Json(Page {
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// How many licenses the list's filters keep, in all and per app.
pub async fn count(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<CountQuery>,
) -> ApiResult<Json<Count>> {
    auth.require("licenses:read")?;
    let client = state.read_client().await?;
    Ok(Json(
        licenses::count(&**client, auth.account_id(), &q).await?,
    ))
}

/// A license as its detail shows it: with the vendor's metadata.
#[derive(Serialize)]
pub struct Detail {
    #[serde(flatten)]
    license: License,
    metadata: Map<String, Value>,
}

pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Detail>> {
    auth.require("licenses:read")?;
    let client = state.read_client().await?;
    let license = licenses::get(&**client, auth.account_id(), id).await?;
    let metadata = licenses::metadata(&**client, auth.account_id(), id).await?;
    Ok(Json(Detail { license, metadata }))
}

/// Runs one license write in its own transaction, with its webhook event, and answers the
/// license as it now is.
macro_rules! license_write {
    ($state:expr, $auth:expr, $id:expr, $event:expr, |$w:ident| $write:expr) => {{
        $auth.require("licenses:write")?;
        let account = $auth.account_id();
        let mut client = $state.client().await?;
        let mut $w = WriteTx::begin(&mut client, $auth.actor).await?;
        $write.await?;
        emit::license(&mut $w, $event, $id).await?;
        $w.commit().await?;
        Ok(Json(licenses::get(&**client, account, $id).await?))
    }};
}

/// The key-system traits a PATCH may carry besides a `LicensePatch`'s fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraitsBody {
    premium: Option<bool>,
    hwid_check: Option<bool>,
    one_time_use: Option<bool>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    discord_id: Option<Option<String>>,
    /// `null`: no longer attributed to a provider.
    #[serde(default, deserialize_with = "present")]
    provider_id: Option<Option<i64>>,
}

const TRAITS: [&str; 5] = [
    "premium",
    "hwid_check",
    "one_time_use",
    "discord_id",
    "provider_id",
];

/// Splits a PATCH body into the license's fields and its key-system traits, each refusing
/// unknown fields.
fn split_patch(
    mut body: Map<String, Value>,
) -> ApiResult<(Option<LicensePatch>, Option<TraitsBody>)> {
    let traits: Map<String, Value> = TRAITS
        .iter()
        .filter_map(|k| body.remove(*k).map(|v| (k.to_string(), v)))
        .collect();
    fn parse<T: serde::de::DeserializeOwned>(m: Map<String, Value>) -> ApiResult<T> {
        serde_json::from_value(Value::Object(m))
            .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
    }
    let traits: Option<TraitsBody> = (!traits.is_empty()).then(|| parse(traits)).transpose()?;
    // An empty body still writes (and audits) an empty license patch, as it always did.
    let license = (!body.is_empty() || traits.is_none())
        .then(|| parse(body))
        .transpose()?;
    Ok((license, traits))
}

pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
    Json(body): Json<Map<String, Value>>,
) -> ApiResult<Json<License>> {
    auth.require("licenses:write")?;
    let (patch, traits) = split_patch(body)?;
    let account = auth.account_id();
    let mut client = state.client().await?;
    // One transaction: both halves of the PATCH commit together or not at all.
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    if let Some(patch) = &patch {
        licenses::update(&mut w, id, patch).await?;
    }
    if let Some(t) = traits {
        let p = TraitsPatch {
            premium: t.premium,
            hwid_check: t.hwid_check,
            one_time_use: t.one_time_use,
            discord_id: t.discord_id,
            provider_id: t.provider_id,
            ..TraitsPatch::default()
        };
        key_system::update_traits(&mut w, id, &p).await?;
    }
    emit::license(&mut w, "license.updated", id).await?;
    w.commit().await?;
    Ok(Json(licenses::get(&**client, account, id).await?))
}

pub async fn ban(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
    Json(req): Json<BanRequest>,
) -> ApiResult<Json<License>> {
    license_write!(state, auth, id, "license.suspended", |w| licenses::ban(
        &mut w,
        id,
        req.reason.as_deref()
    ))
}

pub async fn unban(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<License>> {
    license_write!(state, auth, id, "license.reinstated", |w| licenses::unban(
        &mut w, id
    ))
}

pub async fn revoke(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<License>> {
    license_write!(state, auth, id, "license.updated", |w| licenses::revoke(
        &mut w, id
    ))
}

pub async fn disable(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<License>> {
    license_write!(state, auth, id, "license.updated", |w| licenses::disable(
        &mut w, id
    ))
}

pub async fn enable(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<License>> {
    license_write!(state, auth, id, "license.updated", |w| licenses::enable(
        &mut w, id
    ))
}

/// A new key (`<the app's license_prefix>-XXXXXX-XXXXXX`); the old one is refused at once.
pub async fn rotate(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<License>> {
    license_write!(state, auth, id, "license.updated", |w| async {
        licenses::rotate_key(&mut w, id).await.map(drop)
    })
}

/// Its bound HWIDs and recorded IPs go.
pub async fn clear(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<License>> {
    license_write!(state, auth, id, "license.updated", |w| {
        licenses::clear_usage(&mut w, id)
    })
}

pub async fn extend(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
    Json(ext): Json<Extension>,
) -> ApiResult<Json<License>> {
    license_write!(state, auth, id, "license.renewed", |w| licenses::extend(
        &mut w, id, &ext
    ))
}

pub async fn reset_hwids(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<License>> {
    // Its machines go: the license's document shows none.
    license_write!(state, auth, id, "license.updated", |w| {
        licenses::reset_hwids(&mut w, id)
    })
}

/// Unbinds one HWID; the others stay.
pub async fn remove_hwid(
    State(state): State<AppState>,
    auth: Auth,
    Path((id, hwid)): Path<(Uuid, String)>,
) -> ApiResult<Json<License>> {
    license_write!(state, auth, id, "license.updated", |w| {
        licenses::remove_hwid(&mut w, id, &hwid)
    })
}

#[derive(Serialize)]
pub struct BulkDone {
    count: usize,
}

/// One action on up to 100 licenses, all or none, each with its webhook event.
pub async fn bulk(
    State(state): State<AppState>,
    auth: Auth,
    Json(req): Json<BulkRequest>,
) -> ApiResult<Json<BulkDone>> {
    auth.require("licenses:write")?;
    let ids = req.checked_ids()?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    let event = match req.action {
        BulkAction::Ban => "license.suspended",
        BulkAction::Unban => "license.reinstated",
        BulkAction::Extend => "license.renewed",
        BulkAction::ResetHwids => "license.updated",
        BulkAction::Delete => "license.deleted",
    };
    // A deleted license is rendered before it goes, in the same transaction.
    if req.action == BulkAction::Delete {
        emit::licenses(&mut w, event, &ids).await?;
    }
    license_bulk::apply(&mut w, &ids, &req).await?;
    if req.action != BulkAction::Delete {
        emit::licenses(&mut w, event, &ids).await?;
    }
    w.commit().await?;
    Ok(Json(BulkDone { count: ids.len() }))
}

pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    auth.require("licenses:write")?;
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, auth.actor).await?;
    // Rendered before it goes; the same transaction, so it is what is deleted.
    emit::license(&mut w, "license.deleted", id).await?;
    licenses::delete(&mut w, id).await?;
    w.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The filters of `GET /v1/licenses/export` (CyberLicense's export for the admin UI).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// Default csv.
    format: Option<crate::export::Format>,
    app_id: Option<Uuid>,
    owner_id: Option<Uuid>,
    /// Status active (true) or not (false).
    active: Option<bool>,
    license_type: Option<keyward_shared::model::LicenseType>,
}

/// The licenses as a CSV or PDF attachment, like CyberLicense's export (audited).
pub async fn export(
    State(state): State<AppState>,
    auth: Auth,
    Query(q): Query<ExportQuery>,
) -> ApiResult<crate::export::Download> {
    auth.require("licenses:read")?;
    let filter = keyward_shared::store::license_exports::ExportFilter {
        app_id: q.app_id,
        owner_id: q.owner_id,
        active: q.active,
        license_type: q.license_type,
    };
    let format = q.format.unwrap_or(crate::export::Format::Csv);
    crate::export::licenses(&state, auth.actor, &filter, format).await
}
