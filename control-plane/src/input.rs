//! Where every request's input enters, before any handler or facade runs:
//! - the body is read whole, up to the cap and within a deadline, so that no answer (a 401, a
//!   429, a 404 on a bad id) leaves unread bytes on a keep-alive connection; a body that cannot
//!   be read whole is refused with `Connection: close`, never by silently dropping the connection;
//! - a NUL character anywhere in the path, the query or a JSON or form body is refused with a 400
//!   naming its field. PostgreSQL text cannot hold NUL: left in, the statement fails (a 500), and
//!   no stored value can contain one anyway.
//!
//! The error is rendered in the shape of the facade that owns the path (see `routes::reject`).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::{BodyExt, Limited};
use serde_json::Value;

use crate::error::ApiError;

/// How a body may be sent.
#[derive(Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    /// A client that has not sent its whole body by then is cut off (slow-body protection).
    pub deadline: Duration,
}

pub async fn guard(State(limits): State<BodyLimits>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    match checked(req, limits).await {
        Ok(req) => next.run(req).await,
        Err(refusal) => {
            let mut resp = crate::routes::reject(&path, refusal.error);
            if refusal.close {
                // Bytes of this request are still unread: the connection cannot be reused, and
                // the client is told so instead of finding it closed.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            resp
        }
    }
}

struct Refusal {
    error: ApiError,
    close: bool,
}

impl Refusal {
    fn keep(error: ApiError) -> Refusal {
        Refusal {
            error,
            close: false,
        }
    }

    fn close(error: ApiError) -> Refusal {
        Refusal { error, close: true }
    }
}

async fn checked(req: Request, limits: BodyLimits) -> Result<Request, Refusal> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_bytes as u64) {
        return Err(Refusal::close(ApiError::payload_too_large()));
    }
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(
        limits.deadline,
        Limited::new(body, limits.max_bytes).collect(),
    )
    .await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Refusal::close(ApiError::payload_too_large()))
        }
        Ok(Err(e)) => {
            return Err(Refusal::close(ApiError::bad_request(format!(
                "could not read the request body: {e}"
            ))))
        }
        Err(_) => {
            return Err(Refusal::close(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "REQUEST_TIMEOUT",
                format!(
                    "the request body did not arrive within {} s",
                    limits.deadline.as_secs()
                ),
            )))
        }
    };
    let template = parts
        .extensions
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    if let Some(field) = nul_in_path(parts.uri.path(), template) {
        return Err(Refusal::keep(nul_error(&field)));
    }
    if let Some(field) = parts
        .uri
        .query()
        .and_then(|q| nul_in_form(q.as_bytes(), "query parameter"))
    {
        return Err(Refusal::keep(nul_error(&field)));
    }
    if let Some(field) = nul_in_body(&parts.headers, &bytes) {
        return Err(Refusal::keep(nul_error(&field)));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn nul_error(field: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{field} contains a NUL character (\\u0000), which no value may hold"
    ))
}

/// The path parameter (named after the route's template) whose decoded value holds a NUL.
fn nul_in_path(path: &str, template: Option<&str>) -> Option<String> {
    let mut names = template.map(|t| t.split('/'));
    for (index, segment) in path.split('/').enumerate() {
        let name = names.as_mut().and_then(Iterator::next);
        if percent_encoding::percent_decode_str(segment).any(|b| b == 0) {
            // A facade that routes by itself (Keygen's catch-all) names its own parameters.
            if let Some(n) = crate::compat::keygen::path_parameter(path, index) {
                return Some(format!("path parameter '{n}'"));
            }
            return Some(match name.and_then(|n| n.strip_prefix('{')) {
                Some(n) => format!(
                    "path parameter '{}'",
                    n.trim_end_matches('}').trim_start_matches('*')
                ),
                None => "the path".to_string(),
            });
        }
    }
    None
}

/// The urlencoded pair (query or form body) whose decoded name or value holds a NUL.
fn nul_in_form(encoded: &[u8], what: &str) -> Option<String> {
    form_urlencoded::parse(encoded).find_map(|(name, value)| {
        if name.contains('\0') {
            Some(format!("a {what} name"))
        } else if value.contains('\0') {
            Some(format!("{what} '{name}'"))
        } else {
            None
        }
    })
}

fn nul_in_body(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if mime.starts_with("application/x-www-form-urlencoded") {
        return nul_in_form(body, "form field");
    }
    // A NUL can only reach a JSON value as the escape `\u0000` (a raw one is invalid JSON, which
    // the extractors refuse); only bodies that hold the escape are looked at more closely.
    if !body.windows(6).any(|w| w == br"\u0000") {
        return None;
    }
    let value: Value = serde_json::from_slice(body).ok()?;
    nul_in_json(&value, "")
}

/// The JSON field (`name`, `scopes[0]`, `messages.keynotfound`) whose string holds a NUL.
fn nul_in_json(v: &Value, at: &str) -> Option<String> {
    let inside = |at: &str| {
        if at.is_empty() {
            String::new()
        } else {
            format!(" inside '{at}'")
        }
    };
    match v {
        Value::String(s) if s.contains('\0') => Some(if at.is_empty() {
            "the body".to_string()
        } else {
            format!("field '{at}'")
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_in_json(item, &format!("{at}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(k, item)| {
            if k.contains('\0') {
                return Some(format!("a field name{}", inside(at)));
            }
            let path = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            nul_in_json(item, &path)
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn path_parameters_are_named_from_the_template() {
        let t = Some("/api/dashboard/licenses/{appId}/{licenseId}");
        assert_eq!(
            nul_in_path("/api/dashboard/licenses/abc/x%00y", t).as_deref(),
            Some("path parameter 'licenseId'")
        );
        assert_eq!(nul_in_path("/api/dashboard/licenses/abc/xy", t), None);
        assert_eq!(
            nul_in_path("/nowhere/%00", None).as_deref(),
            Some("the path")
        );
        // An overlong encoding is not a NUL (and not UTF-8: the extractors refuse it).
        assert_eq!(nul_in_path("/v1/apps/%C0%80", Some("/v1/apps/{id}")), None);
    }

    #[test]
    fn query_and_form_pairs_name_their_parameter() {
        assert_eq!(
            nul_in_form(b"limit=5&search=a%00b", "query parameter").as_deref(),
            Some("query parameter 'search'")
        );
        assert_eq!(
            nul_in_form(b"a%00=1", "query parameter").as_deref(),
            Some("a query parameter name")
        );
        assert_eq!(nul_in_form(b"search=a+b%25", "query parameter"), None);
    }

    #[test]
    fn json_fields_are_named_by_their_path() {
        let cases = [
            (json!({"name": "a\0"}), Some("field 'name'")),
            (json!({"scopes": ["ok", "\0"]}), Some("field 'scopes[1]'")),
            (
                json!({"messages": {"keynotfound": "x\0"}}),
                Some("field 'messages.keynotfound'"),
            ),
            (
                json!({"messages": {"\0": "x"}}),
                Some("a field name inside 'messages'"),
            ),
            (json!("\0"), Some("the body")),
            (json!({"name": "fine", "n": 1}), None),
        ];
        for (v, want) in cases {
            assert_eq!(nul_in_json(&v, "").as_deref(), want, "{v}");
        }
    }

    #[test]
    fn only_bodies_with_the_escape_are_parsed() {
        let json = HeaderMap::new();
        assert_eq!(
            nul_in_body(&json, br#"{"name":"\\u0000"}"#),
            None,
            "an escaped backslash"
        );
        assert_eq!(
            nul_in_body(&json, br#"{"name":"\u0000"}"#).as_deref(),
            Some("field 'name'")
        );
        let mut form = HeaderMap::new();
        form.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        assert_eq!(
            nul_in_body(&form, b"user=a%00").as_deref(),
            Some("form field 'user'")
        );
    }
}
