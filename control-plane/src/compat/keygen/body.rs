//! Keygen's request documents: `{data:{type, attributes, relationships}}` for resources and
//! `{meta:{…}}` for actions. The type may be singular or plural; unknown attributes are ignored
//! (Keygen refuses them; clients written against Keygen never send any, and ignoring them keeps
//! newer clients working).

use axum::body::Bytes;
use axum::http::StatusCode;
use keyward_shared::keygen_doc::{KgError, Source};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The body as a JSON object (empty → `{}`).
pub fn parse(bytes: &Bytes) -> Result<Value, KgError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(bad("The request body must be a JSON object", "/")),
        Err(e) => Err(bad(format!("The request body is not valid JSON: {e}"), "/")),
    }
}

fn bad(detail: impl Into<String>, pointer: &'static str) -> KgError {
    KgError::bad_request(detail, Source::Pointer(pointer))
}

/// The resource object of a create or update request, checked to be of `plural`'s type.
pub struct Resource {
    pub attributes: Map<String, Value>,
    pub relationships: Map<String, Value>,
}

pub fn resource(body: &Value, plural: &str) -> Result<Resource, KgError> {
    let data = body
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("The request body must have a data object", "/data"))?;
    let ty = data
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("type is required", "/data/type"))?;
    let singular = plural.strip_suffix("ies").map_or_else(
        || plural.trim_end_matches('s').to_owned(),
        |stem| format!("{stem}y"),
    );
    if ty != plural && ty != singular {
        return Err(KgError::new(
            StatusCode::CONFLICT,
            format!("type mismatch (expected '{plural}', got '{ty}')"),
        )
        .source(Source::Pointer("/data/type")));
    }
    let object = |key: &str, pointer: &'static str| match data.get(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(bad(format!("{key} must be an object"), pointer)),
    };
    Ok(Resource {
        attributes: object("attributes", "/data/attributes")?,
        relationships: object("relationships", "/data/relationships")?,
    })
}

impl Resource {
    /// The id of a to-one relationship (`relationships.{name}.data.id`); `None` when absent.
    /// An unparsable id is reported against its pointer as not found.
    pub fn related(
        &self,
        name: &str,
        not_found: &'static str,
        pointer: &'static str,
    ) -> Result<Option<Uuid>, KgError> {
        let Some(rel) = self.relationships.get(name) else {
            return Ok(None);
        };
        let id = rel.get("data").and_then(|d| d.get("id"));
        match id {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Uuid::parse_str(s).map(Some).map_err(|_| {
                super::unprocessable(format!("{name} must exist"), pointer).code(not_found)
            }),
            Some(_) => Err(bad(format!("{name} id must be a string"), pointer)),
        }
    }
}

/// `meta.{key}` of an action request.
pub fn meta<'a>(body: &'a Value, key: &str) -> Option<&'a Value> {
    body.get("meta").and_then(|m| m.get(key))
}

/// The ids of a to-many request body `{data:[{type, id}, …]}` (entitlement attach/detach).
pub fn linkage(body: &Value, plural: &str) -> Result<Vec<Uuid>, KgError> {
    let items = body
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("data must be an array of resource identifiers", "/data"))?;
    if items.is_empty() || items.len() > 100 {
        return Err(bad("data must name 1 to 100 resources", "/data"));
    }
    items
        .iter()
        .map(|item| {
            let ty = item.get("type").and_then(Value::as_str);
            let id = item.get("id").and_then(Value::as_str);
            match (ty, id.and_then(|s| Uuid::parse_str(s).ok())) {
                (Some(t), Some(id)) if t == plural || plural.starts_with(t) => Ok(id),
                _ => Err(bad(
                    format!("each item must be {{\"type\":\"{plural}\",\"id\":<uuid>}}"),
                    "/data",
                )),
            }
        })
        .collect()
}
