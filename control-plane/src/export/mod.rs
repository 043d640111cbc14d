//! Exports for people and spreadsheets: licenses as CSV or PDF, transactions as CSV. CyberLicense's
//! facade and the native API both end here: one transaction reads the rows and appends the
//! export's audit entry, then the rows are rendered (a PDF off the async workers) and sent as an
//! attachment named `licenses-{Unix ms}.csv|pdf` or `transactions-{Unix ms}.csv`.

pub mod csv;
pub mod pdf;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use keyward_shared::store::license_exports::{self, ExportFilter};
use keyward_shared::store::transactions::{self, TransactionFilter};
use keyward_shared::store::{account_users, apps};
use keyward_shared::write::{Actor, WriteTx};
use keyward_shared::StoreError;
use serde::Deserialize;
use serde_json::json;
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// Set (to `true`) on an export that holds only the newest of more matching rows.
pub const TRUNCATED_HEADER: &str = "x-export-truncated";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Pdf,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Pdf => "pdf",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Pdf => "application/pdf",
        }
    }
}

/// A rendered export, answered as an attachment.
pub struct Download {
    format: Format,
    filename: String,
    body: Vec<u8>,
    truncated: bool,
}

impl Download {
    fn new(
        name: &str,
        format: Format,
        at: DateTime<Utc>,
        body: Vec<u8>,
        truncated: bool,
    ) -> Download {
        Download {
            format,
            filename: format!("{name}-{}.{}", at.timestamp_millis(), format.extension()),
            body,
            truncated,
        }
    }
}

impl IntoResponse for Download {
    fn into_response(self) -> Response {
        let disposition = format!("attachment; filename={}", self.filename);
        let mut resp = self.body.into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.format.content_type()),
        );
        if let Ok(v) = HeaderValue::from_str(&disposition) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        // Customers' data: no shared cache keeps a copy.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.truncated {
            h.insert(TRUNCATED_HEADER, HeaderValue::from_static("true"));
        }
        resp
    }
}

/// The account's licenses matching `filter`, newest first, as CSV or PDF; audited as
/// `license.export` with the filters and the row count.
pub async fn licenses(
    state: &AppState,
    actor: Actor,
    filter: &ExportFilter,
    format: Format,
) -> ApiResult<Download> {
    let at = Utc::now();
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, actor).await?;
    let account = w.account_id();
    let export = license_exports::list(w.tx(), account, filter).await?;
    let filters = match format {
        Format::Pdf => describe(w.tx(), account, filter).await?,
        Format::Csv => Vec::new(),
    };
    w.audit(
        "license.export",
        "license",
        None,
        json!({"filters": filter, "format": format.extension(),
               "rows": export.rows.len(), "truncated": export.truncated}),
    );
    w.commit().await?;
    let truncated = export.truncated;
    let body = match format {
        Format::Csv => csv::licenses(&export.rows).into_bytes(),
        Format::Pdf => {
            let heading = pdf::Heading {
                generated_at: at,
                filters,
                truncated,
            };
            tokio::task::spawn_blocking(move || pdf::licenses(&export.rows, &heading))
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "rendering a PDF export failed");
                    ApiError::internal("the PDF could not be rendered")
                })?
        }
    };
    Ok(Download::new("licenses", format, at, body, truncated))
}

/// The filters in words for the PDF's heading: the product's name and the customer's e-mail
/// rather than their ids (an id that names nothing is shown as it is).
async fn describe<C: GenericClient + Sync>(
    c: &C,
    account: Uuid,
    f: &ExportFilter,
) -> ApiResult<Vec<String>> {
    let mut words = Vec::new();
    if let Some(id) = f.app_id {
        words.push(match apps::get(c, account, id).await {
            Ok(app) => format!("product \"{}\"", app.name),
            Err(StoreError::NotFound(_)) => format!("product {id}"),
            Err(e) => return Err(e.into()),
        });
    }
    if let Some(id) = f.owner_id {
        words.push(
            match account_users::find(c, account, &id.to_string()).await {
                Ok(user) => format!("customer {}", user.email),
                Err(StoreError::NotFound(_)) => format!("customer {id}"),
                Err(e) => return Err(e.into()),
            },
        );
    }
    match f.active {
        Some(true) => words.push("active only".into()),
        Some(false) => words.push("inactive only".into()),
        None => {}
    }
    if let Some(t) = f.license_type {
        words.push(format!("type {}", t.as_str()));
    }
    Ok(words)
}

/// The account's transactions matching `filter` (its `limit` and `cursor` unused), newest
/// first, as CSV; audited as `transaction.export`.
pub async fn transactions(
    state: &AppState,
    actor: Actor,
    filter: &TransactionFilter,
) -> ApiResult<Download> {
    let at = Utc::now();
    let mut client = state.client().await?;
    let mut w = WriteTx::begin(&mut client, actor).await?;
    let account = w.account_id();
    let (rows, truncated) = transactions::export(w.tx(), account, filter).await?;
    w.audit(
        "transaction.export",
        "transaction",
        None,
        json!({"filters": {"customer_id": filter.customer_id,
                           "status": filter.status.map(|s| s.as_str()),
                           "since": filter.since, "until": filter.until},
               "format": "csv", "rows": rows.len(), "truncated": truncated}),
    );
    w.commit().await?;
    let body = csv::transactions(&rows).into_bytes();
    Ok(Download::new(
        "transactions",
        Format::Csv,
        at,
        body,
        truncated,
    ))
}

/// The end of a range given inclusively (`endDate`), as the exclusive bound the store takes: a
/// bare date includes its whole day, a time itself (the store keeps microseconds).
pub fn inclusive_end(end: DateTime<Utc>, bare_date: bool) -> DateTime<Utc> {
    if bare_date {
        end + Duration::days(1)
    } else {
        end + Duration::microseconds(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inclusive_ends_become_exclusive_bounds() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            inclusive_end(t("2024-03-31T00:00:00Z"), true),
            t("2024-04-01T00:00:00Z")
        );
        assert_eq!(
            inclusive_end(t("2024-03-31T12:00:00Z"), false),
            t("2024-03-31T12:00:00.000001Z")
        );
    }

    #[test]
    fn downloads_are_named_attachments() {
        let at = DateTime::from_timestamp_millis(1_733_000_000_123).unwrap();
        let r = Download::new("licenses", Format::Pdf, at, b"%PDF-".to_vec(), true).into_response();
        let h = r.headers();
        assert_eq!(h[header::CONTENT_TYPE], "application/pdf");
        assert_eq!(
            h[header::CONTENT_DISPOSITION],
            "attachment; filename=licenses-1733000000123.pdf"
        );
        assert_eq!(h[TRUNCATED_HEADER], "true");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
    }
}
