//! CyberLicense's exports: `GET /api/export/licenses/csv|pdf` (`product`, `customer`, `active`,
//! `licenseType`) and `GET /api/export/transactions/csv` (`customer`, `status`, `startDate`,
//! `endDate`). Its query names become the core's filters; the rows, the audit entry and the
//! rendering are `crate::export`'s, which the native API shares.
//!
//! A malformed filter is 400 "Invalid query parameter: <name>", malformed ids included (an id
//! that cannot name anything is a mistake worth telling, not an empty file).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use keyward_shared::model::LicenseType;
use keyward_shared::store::license_exports::ExportFilter;
use keyward_shared::store::transactions::{TransactionFilter, TransactionStatus};
use uuid::Uuid;

use super::{ClAdmin, ClError, ClQuery, ClResult};
use crate::export::{self, Format};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/export/licenses/csv", get(licenses_csv))
        .route("/api/export/licenses/pdf", get(licenses_pdf))
        .route("/api/export/transactions/csv", get(transactions_csv))
}

async fn licenses_csv(
    State(state): State<AppState>,
    ClAdmin(auth): ClAdmin,
    q: ClQuery,
) -> ClResult<Response> {
    licenses(state, auth, q, Format::Csv).await
}

async fn licenses_pdf(
    State(state): State<AppState>,
    ClAdmin(auth): ClAdmin,
    q: ClQuery,
) -> ClResult<Response> {
    licenses(state, auth, q, Format::Pdf).await
}

async fn licenses(
    state: AppState,
    auth: crate::auth::Auth,
    q: ClQuery,
    format: Format,
) -> ClResult<Response> {
    let filter = ExportFilter {
        app_id: id(&q, "product")?,
        owner_id: id(&q, "customer")?,
        active: q.bool("active")?,
        license_type: q
            .get("licenseType")
            .map(|t| {
                LicenseType::parse(&t.to_ascii_lowercase())
                    .ok_or_else(|| ClError::bad_param("licenseType"))
            })
            .transpose()?,
    };
    let download = export::licenses(&state, auth.actor, &filter, format).await?;
    Ok(download.into_response())
}

async fn transactions_csv(
    State(state): State<AppState>,
    ClAdmin(auth): ClAdmin,
    q: ClQuery,
) -> ClResult<Response> {
    let end_is_date = q
        .get("endDate")
        .is_some_and(|v| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok());
    let filter = TransactionFilter {
        customer_id: id(&q, "customer")?,
        status: q
            .get("status")
            .map(|s| {
                TransactionStatus::parse(&s.to_ascii_lowercase())
                    .ok_or_else(|| ClError::bad_param("status"))
            })
            .transpose()?,
        since: q.date("startDate")?,
        until: q
            .date("endDate")?
            .map(|end| export::inclusive_end(end, end_is_date)),
        ..TransactionFilter::default()
    };
    let download = export::transactions(&state, auth.actor, &filter).await?;
    Ok(download.into_response())
}

/// An id filter: absent, or a well-formed id.
fn id(q: &ClQuery, name: &str) -> ClResult<Option<Uuid>> {
    match q.id(name) {
        None => Ok(None),
        Some(Ok(id)) => Ok(Some(id)),
        Some(Err(())) => Err(ClError::bad_param(name)),
    }
}
