//! Junkie's request bodies: snake_case fields read one by one, so that a wrong type is a 400
//! naming the field, and an absent field can be told from an explicit `null` (Junkie's
//! `validity_minutes: null` means forever, while an absent one takes the provider's default).
//! Unknown fields are ignored, as Junkie's clients send extras.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{JkError, JkResult};

/// A field as sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<T> {
    Absent,
    Null,
    Set(T),
}

impl<T> Field<T> {
    /// The value, or `None` when absent or null.
    pub fn value(self) -> Option<T> {
        match self {
            Field::Set(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }

    /// `None` when absent; `Some(None)` for null (a patch that clears).
    pub fn patch(self) -> Option<Option<T>> {
        match self {
            Field::Absent => None,
            Field::Null => Some(None),
            Field::Set(v) => Some(Some(v)),
        }
    }
}

pub struct Body<'a>(pub &'a Map<String, Value>);

impl Body<'_> {
    fn field<T>(
        &self,
        name: &str,
        what: &str,
        read: impl Fn(&Value) -> Option<T>,
    ) -> JkResult<Field<T>> {
        match self.0.get(name) {
            None => Ok(Field::Absent),
            Some(Value::Null) => Ok(Field::Null),
            Some(v) => read(v)
                .map(Field::Set)
                .ok_or_else(|| JkError::bad_request(format!("{name} must be {what}"))),
        }
    }

    pub fn int(&self, name: &str) -> JkResult<Field<i64>> {
        self.field(name, "an integer", Value::as_i64)
    }

    pub fn bool(&self, name: &str) -> JkResult<Option<bool>> {
        Ok(self.field(name, "true or false", Value::as_bool)?.value())
    }

    pub fn string(&self, name: &str) -> JkResult<Field<String>> {
        self.field(name, "a string", |v| v.as_str().map(str::to_string))
    }

    pub fn strings(&self, name: &str) -> JkResult<Field<Vec<String>>> {
        self.field(name, "an array of strings", |v| {
            v.as_array()?
                .iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect()
        })
    }

    pub fn ints(&self, name: &str) -> JkResult<Field<Vec<i64>>> {
        self.field(name, "an array of integers", |v| {
            v.as_array()?.iter().map(Value::as_i64).collect()
        })
    }

    pub fn time(&self, name: &str) -> JkResult<Field<DateTime<Utc>>> {
        self.field(name, "an ISO-8601 date-time", |v| parse_time(v.as_str()?))
    }
}

/// An ISO-8601 date-time (RFC 3339, `Z` or an offset), or a bare date (midnight UTC).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    // An offset's `+` sent unencoded in a query string arrives as a space.
    let s = s.replace(' ', "+");
    let s = s.as_str();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_tell_absent_from_null_and_name_the_wrong_type() {
        let m = json!({"a": null, "b": 5, "c": "x", "d": ["h1"], "e": 1.5})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let b = Body(&m);
        assert_eq!(b.int("a").ok(), Some(Field::Null));
        assert_eq!(b.int("b").ok(), Some(Field::Set(5)));
        assert_eq!(b.int("z").ok(), Some(Field::Absent));
        assert!(b
            .int("e")
            .is_err_and(|e| e.message.contains("e must be an integer")));
        assert_eq!(b.strings("d").ok(), Some(Field::Set(vec!["h1".into()])));
        assert!(b.strings("c").is_err());
    }

    #[test]
    fn times_are_rfc3339_or_dates() {
        assert!(parse_time("2030-01-02T03:04:05.000Z").is_some());
        assert!(parse_time("2030-01-02T03:04:05+02:00").is_some());
        assert_eq!(
            parse_time("2030-01-02T03:04:05 02:00"),
            parse_time("2030-01-02T03:04:05+02:00")
        );
        assert_eq!(
            parse_time("2030-01-02").map(|t| t.to_rfc3339()),
            Some("2030-01-02T00:00:00+00:00".into())
        );
        assert!(parse_time("tomorrow").is_none());
    }
}
