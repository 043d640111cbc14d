//! Request parameters as KeyAuth reads them: each one from the POST body, else from the query
//! string (PHP's `$_POST[x] ?? $_GET[x]`), whatever the body's encoding (urlencoded, multipart,
//! JSON). Values are trimmed and an empty value counts as absent, as KeyAuth's `sanitize` does.
//! Bytes that are not UTF-8 are replaced (U+FFFD), never a failure.

use std::convert::Infallible;
use std::ops::Range;

use bytes::Bytes;

/// At most this many parameters are kept; the rest are ignored.
const MAX_PARAMS: usize = 64;

/// Names and values side by side in one buffer, found by a scan: a call has a handful of
/// parameters, and a map with two `String`s per entry was a dozen allocations per request.
#[derive(Debug, Default)]
pub struct Params {
    text: String,
    /// (name, value) ranges in `text`; a name appears once (a later value replaces it).
    entries: Vec<(Range<usize>, Range<usize>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    #[error("the request body is not valid JSON: {0}")]
    Json(String),
    #[error("parameter '{0}' must be a string, a number or a boolean")]
    WrongType(String),
    #[error("the request body must be a JSON object")]
    NotAnObject,
    #[error("the multipart body is malformed: {0}")]
    Multipart(String),
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entry(name)
            .map(|i| &self.text[self.entries[i].1.clone()])
    }

    fn entry(&self, name: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|(n, _)| &self.text[n.clone()] == name)
    }

    fn push(&mut self, s: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push_str(s);
        start..self.text.len()
    }

    /// Later sources overwrite earlier ones, so parse the query first and the body second.
    fn insert(&mut self, name: &str, value: &str) {
        let existing = self.entry(name);
        if self.entries.len() >= MAX_PARAMS && existing.is_none() {
            return;
        }
        // PostgreSQL text cannot hold NUL: kept, it would fail the lookup or write the value
        // reaches (a 500 for the caller's typo); dropped, the value is what the client meant.
        let cleaned;
        let value = if value.contains('\0') {
            cleaned = value.replace('\0', "");
            &cleaned
        } else {
            value
        };
        let v = value.trim();
        if v.is_empty() {
            // An empty POST value does not hide the query's (PHP: `"" ?? x` keeps "", but
            // sanitize then turns it into NULL, which is what every handler sees).
            return;
        }
        let value = self.push(v);
        match existing {
            Some(i) => self.entries[i].1 = value,
            None => {
                let name = self.push(name);
                self.entries.push((name, value));
            }
        }
    }

    pub async fn parse(
        query: Option<&str>,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Params, ParamsError> {
        let mut p = Params {
            text: String::with_capacity(query.map_or(0, str::len) + body.len()),
            entries: Vec::with_capacity(8),
        };
        if let Some(q) = query {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                p.insert(&k, &v);
            }
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(p);
        }
        let mime = content_type
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "multipart/form-data" => p.multipart(content_type.unwrap_or(""), body).await?,
            "application/json" => p.json(&body)?,
            // urlencoded, and what clients send without a content type (curl -d, the Go SDK).
            _ if body.first() == Some(&b'{') && mime.is_empty() => p.json(&body)?,
            _ => {
                for (k, v) in form_urlencoded::parse(&body) {
                    p.insert(&k, &v);
                }
            }
        }
        Ok(p)
    }

    fn json(&mut self, body: &[u8]) -> Result<(), ParamsError> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| ParamsError::Json(e.to_string()))?;
        let serde_json::Value::Object(map) = value else {
            return Err(ParamsError::NotAnObject);
        };
        for (k, v) in map {
            match v {
                serde_json::Value::String(s) => self.insert(&k, &s),
                serde_json::Value::Number(n) => self.insert(&k, &n.to_string()),
                serde_json::Value::Bool(b) => self.insert(&k, if b { "1" } else { "0" }),
                serde_json::Value::Null => {}
                _ => return Err(ParamsError::WrongType(k)),
            }
        }
        Ok(())
    }

    async fn multipart(&mut self, content_type: &str, body: Bytes) -> Result<(), ParamsError> {
        let boundary = multer::parse_boundary(content_type)
            .map_err(|e| ParamsError::Multipart(e.to_string()))?;
        let stream = futures_util::stream::once(async move { Ok::<_, Infallible>(body) });
        let mut form = multer::Multipart::new(stream, boundary);
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| ParamsError::Multipart(e.to_string()))?
        {
            let Some(name) = field.name().map(str::to_string) else {
                continue;
            };
            let bytes = field
                .bytes()
                .await
                .map_err(|e| ParamsError::Multipart(e.to_string()))?;
            self.insert(&name, &String::from_utf8_lossy(&bytes));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(query: Option<&str>, ct: Option<&str>, body: &'static [u8]) -> Params {
        Params::parse(query, ct, Bytes::from_static(body))
            .await
            .expect("parses")
    }

    #[tokio::test]
    async fn body_wins_over_query_and_values_are_trimmed() {
        let p = parse(
            Some("type=init&name=q&ownerid=abc"),
            Some("application/x-www-form-urlencoded"),
            b"name=+My%20App+&hwid=abc%0A&empty=%20",
        )
        .await;
        assert_eq!(p.get("name"), Some("My App"));
        assert_eq!(p.get("type"), Some("init"));
        assert_eq!(p.get("hwid"), Some("abc"));
        assert_eq!(p.get("empty"), None);
    }

    #[tokio::test]
    async fn nul_characters_are_dropped() {
        let p = parse(
            Some("key=K%00EY&pass=%00"),
            Some("application/json"),
            br#"{"hwid":"m\u00001","user":"\u0000"}"#,
        )
        .await;
        assert_eq!(
            (p.get("key"), p.get("hwid"), p.get("pass"), p.get("user")),
            (Some("KEY"), Some("m1"), None, None)
        );
    }

    #[tokio::test]
    async fn json_and_multipart_and_bare_bodies() {
        let p = parse(
            None,
            Some("application/json; charset=utf-8"),
            br#"{"type":"license","key":" K ","n":5,"b":true,"z":null}"#,
        )
        .await;
        assert_eq!(
            (p.get("key"), p.get("n"), p.get("b"), p.get("z")),
            (Some("K"), Some("5"), Some("1"), None)
        );
        let p = parse(
            None,
            Some("multipart/form-data; boundary=XyZ"),
            b"--XyZ\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\ninit\r\n--XyZ\r\nContent-Disposition: form-data; name=\"ver\"\r\n\r\n1.0\r\n--XyZ--\r\n",
        )
        .await;
        assert_eq!((p.get("type"), p.get("ver")), (Some("init"), Some("1.0")));
        let p = parse(None, None, br#"{"type":"check"}"#).await;
        assert_eq!(p.get("type"), Some("check"));
    }

    #[tokio::test]
    async fn hostile_bodies_are_errors_or_replacements_never_panics() {
        let bad_json = Params::parse(None, Some("application/json"), Bytes::from_static(b"{"));
        assert!(matches!(bad_json.await, Err(ParamsError::Json(_))));
        let nested = Params::parse(
            None,
            Some("application/json"),
            Bytes::from_static(br#"{"type":["init"]}"#),
        );
        assert!(matches!(nested.await, Err(ParamsError::WrongType(k)) if k == "type"));
        let bad_mp = Params::parse(
            None,
            Some("multipart/form-data"),
            Bytes::from_static(b"--x\r\n"),
        );
        assert!(matches!(bad_mp.await, Err(ParamsError::Multipart(_))));
        let p = parse(
            None,
            Some("application/x-www-form-urlencoded"),
            b"name=\xff\xfeapp&type=init",
        )
        .await;
        assert_eq!(p.get("name"), Some("\u{fffd}\u{fffd}app"));
    }
}
