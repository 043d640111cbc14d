//! Panda's query strings, parsed leniently: its clients (PandaAuthPy, the Java `PandaKey`, the
//! Lua loaders) concatenate `key`, `service` and `hwid` into the URL without encoding them. So
//! the query is split on `&`, each pair on its first `=` (a value may hold more), and a value's
//! valid `%XX` escapes are decoded while anything else (a stray `%`, a `+`) is kept as sent.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

pub struct Query<'a> {
    pairs: Vec<(&'a str, Cow<'a, str>)>,
}

impl<'a> Query<'a> {
    pub fn parse(query: Option<&'a str>) -> Query<'a> {
        let pairs = query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                (name, decode(value))
            })
            .collect();
        Query { pairs }
    }

    /// The first value of `name` (names compared ignoring ASCII case: `apiKey`, `apikey`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// The first value of `name`, trimmed, when not empty.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }
}

/// Decodes the valid escapes; a value whose escapes do not decode to UTF-8 is kept raw.
fn decode(value: &str) -> Cow<'_, str> {
    if !value.contains('%') {
        return Cow::Borrowed(value);
    }
    percent_decode_str(value)
        .decode_utf8()
        .unwrap_or(Cow::Borrowed(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unencoded_values_arrive_as_sent() {
        let q = Query::parse(Some(
            "hwid=ab+cd/ef==&service=my-svc&key=KEY123&x&hwid=second",
        ));
        assert_eq!(
            q.get("hwid"),
            Some("ab+cd/ef=="),
            "first '=' splits, first pair wins"
        );
        assert_eq!(q.get("service"), Some("my-svc"));
        assert_eq!(q.get("KEY"), Some("KEY123"));
        assert_eq!(q.get("x"), Some(""));
        assert_eq!(q.value("x"), None);
        assert_eq!(q.get("missing"), None);
    }

    #[test]
    fn percent_escapes_are_tolerated_not_required() {
        let q = Query::parse(Some("a=%41%2Fb&b=100%&c=%zz&d=%C3%A9&e=%FF"));
        assert_eq!(q.get("a"), Some("A/b"));
        assert_eq!(q.get("b"), Some("100%"), "a stray % stays");
        assert_eq!(q.get("c"), Some("%zz"));
        assert_eq!(q.get("d"), Some("é"));
        assert_eq!(q.get("e"), Some("%FF"), "not UTF-8: kept raw");
        assert_eq!(Query::parse(None).get("a"), None);
    }
}
