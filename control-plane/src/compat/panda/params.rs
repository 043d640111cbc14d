//! Panda's parameters, read leniently: every route takes them from the query or the body (JSON
//! object, or a urlencoded form), the query first. Real clients send `isPremium` and `count` as
//! strings (`"true"`, `"5"`) as well as JSON bools and numbers, so both are accepted. Messages
//! never echo the value sent (it may be a key of another tenant's).

use std::ops::RangeInclusive;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use super::PandaError;

pub struct Params {
    query: Vec<(String, String)>,
    /// The body's fields, or why the body could not be read (reported once it matters).
    body: Result<Map<String, Value>, String>,
}

impl Params {
    pub fn parse(query: Option<&str>, content_type: Option<&str>, body: &[u8]) -> Params {
        let query = query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        Params {
            query,
            body: parse_body(content_type, body),
        }
    }

    /// Fails when the body was sent but is not a JSON object or a form.
    pub fn check_body(&self) -> Result<(), PandaError> {
        self.body
            .as_ref()
            .map(drop)
            .map_err(|e| PandaError::bad_request(e.clone()))
    }

    /// A field from the query, else from a readable body.
    fn raw(&self, name: &str) -> Option<Raw<'_>> {
        if let Some((_, v)) = self.query.iter().find(|(k, _)| k == name) {
            return Some(Raw::Text(v));
        }
        match self.body.as_ref().ok()?.get(name)? {
            Value::Null => None,
            Value::String(s) => Some(Raw::Text(s)),
            v => Some(Raw::Json(v)),
        }
    }

    /// A text field; numbers and bools are taken as their text. Empty text is absent.
    pub fn text(&self, name: &str) -> Result<Option<String>, PandaError> {
        let s = match self.raw(name) {
            None => return Ok(None),
            Some(Raw::Text(s)) => s.to_string(),
            Some(Raw::Json(v @ (Value::Number(_) | Value::Bool(_)))) => v.to_string(),
            Some(Raw::Json(_)) => {
                return Err(PandaError::bad_request(format!("{name} must be a string")))
            }
        };
        Ok(Some(s).filter(|s| !s.is_empty()))
    }

    /// Whether the field was sent as empty text (`note=`, `"note": ""`).
    pub fn is_empty_text(&self, name: &str) -> bool {
        matches!(self.raw(name), Some(Raw::Text("")))
    }

    pub fn required_text(&self, name: &str, what: &str) -> Result<String, PandaError> {
        self.text(name)?
            .ok_or_else(|| PandaError::bad_request(format!("{name} is required ({what})")))
    }

    /// `true`/`false` as JSON or text (any case).
    pub fn bool(&self, name: &str) -> Result<Option<bool>, PandaError> {
        let bad = || PandaError::bad_request(format!("{name} must be true or false"));
        match self.raw(name) {
            None => Ok(None),
            Some(Raw::Json(Value::Bool(b))) => Ok(Some(*b)),
            Some(Raw::Text(s)) if s.trim().eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Raw::Text(s)) if s.trim().eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(Raw::Text("")) => Ok(None),
            Some(_) => Err(bad()),
        }
    }

    /// A whole number within `range`, as a JSON number or numeric text.
    pub fn int(&self, name: &str, range: RangeInclusive<i64>) -> Result<Option<i64>, PandaError> {
        let n = match self.raw(name) {
            None => return Ok(None),
            Some(Raw::Text("")) => return Ok(None),
            Some(Raw::Text(s)) => s.trim().parse::<i64>().ok(),
            Some(Raw::Json(Value::Number(n))) => n.as_i64(),
            Some(Raw::Json(_)) => None,
        };
        match n {
            Some(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(PandaError::bad_request(format!(
                "{name} must be between {} and {}",
                range.start(),
                range.end()
            ))),
        }
    }

    /// A `YYYY-MM-DD` date, as midnight UTC of that day.
    pub fn date(&self, name: &str) -> Result<Option<DateTime<Utc>>, PandaError> {
        let Some(s) = self.text(name)? else {
            return Ok(None);
        };
        parse_date(&s)
            .map(Some)
            .ok_or_else(|| PandaError::bad_request(format!("{name} must be a date as YYYY-MM-DD")))
    }
}

enum Raw<'a> {
    Text(&'a str),
    Json(&'a Value),
}

/// `YYYY-MM-DD` exactly (four-digit years: the answers print `yyyy-MM-dd'T'…`).
fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shaped {
        return None;
    }
    let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(day.and_hms_opt(0, 0, 0)?.and_utc())
}

fn parse_body(content_type: Option<&str>, body: &[u8]) -> Result<Map<String, Value>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let mime = content_type.unwrap_or("").to_ascii_lowercase();
    if mime.starts_with("application/x-www-form-urlencoded") {
        return Ok(form_urlencoded::parse(body)
            .into_owned()
            .map(|(k, v)| (k, Value::String(v)))
            .collect());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err("the request body must be a JSON object".into()),
        Err(e) => Err(format!("the request body is not valid JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(query: &str, body: &str) -> Params {
        Params::parse(Some(query), Some("application/json"), body.as_bytes())
    }

    #[test]
    fn strings_stand_for_bools_and_numbers() {
        let q = p("isPremium=TRUE&count=5&days=x", "");
        assert_eq!(q.bool("isPremium").unwrap(), Some(true));
        assert_eq!(q.int("count", 1..=100).unwrap(), Some(5));
        assert!(q.int("days", 1..=9).is_err());
        let b = p("", r#"{"isPremium":"false","count":"7","n":3,"f":1.5}"#);
        assert_eq!(b.bool("isPremium").unwrap(), Some(false));
        assert_eq!(b.int("count", 1..=100).unwrap(), Some(7));
        assert_eq!(b.int("n", 1..=100).unwrap(), Some(3));
        assert!(b.int("f", 1..=100).is_err());
        assert!(b.int("n", 4..=100).is_err());
        assert!(p("", r#"{"isPremium":"yes"}"#).bool("isPremium").is_err());
    }

    #[test]
    fn the_query_comes_before_the_body() {
        let b = p("apiKey=q", r#"{"apiKey":"b","keyValue":"K","note":null}"#);
        assert_eq!(b.text("apiKey").unwrap().as_deref(), Some("q"));
        assert_eq!(b.text("keyValue").unwrap().as_deref(), Some("K"));
        assert_eq!(b.text("note").unwrap(), None);
        assert!(p("", r#"{"keyValue":[1]}"#).text("keyValue").is_err());
    }

    #[test]
    fn dates_are_exactly_yyyy_mm_dd() {
        let ok = p("expire=2024-12-31", "").date("expire").unwrap().unwrap();
        assert_eq!(ok.to_rfc3339(), "2024-12-31T00:00:00+00:00");
        for bad in ["2024-13-01", "2024-2-01", "12024-01-01", "2024-02-30", "x"] {
            assert!(
                p(&format!("expire={bad}"), "").date("expire").is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn bodies_are_objects_or_forms() {
        assert!(p("", "[1]").check_body().is_err());
        assert!(p("", "{").check_body().is_err());
        assert!(p("", "  ").check_body().is_ok());
        let form = Params::parse(
            None,
            Some("application/x-www-form-urlencoded"),
            b"keyValue=a+b",
        );
        assert_eq!(form.text("keyValue").unwrap().as_deref(), Some("a b"));
    }
}
