//! The validate body `{"key", "ip"?, "hwid"?, "nonce"?}` (spec §3.2 rows 1–2), read without
//! building a JSON tree: strings borrowed from the body where they need no unescaping, every
//! other field skipped. Extra fields are ignored, as an Express handler would.
//!
//! - Not a JSON object, or `key` missing, not a string or empty after trimming: "License key
//!   is required".
//! - `ip`, `hwid` or `nonce` present but not a string, an `ip` that is not an IP address, a
//!   value a license could never hold (a NUL, a HWID over 256 bytes, a nonce over 200):
//!   "Invalid request body". A `null` or an empty-after-trimming value is absent (our choice:
//!   clients serialise an unset optional either way).
//! - `nonce` may come as the `Idempotency-Key` header instead.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use hyper::HeaderMap;
use keyward_shared::store::license_uses::MAX_NONCE_LEN;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

pub const MAX_HWID_LEN: usize = 256;

/// A checked request; strings trimmed.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub key: Cow<'a, str>,
    pub ip: Option<IpAddr>,
    pub hwid: Option<Cow<'a, str>>,
    pub nonce: Option<Cow<'a, str>>,
}

/// Why a body is refused (rows 1 and 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadBody {
    KeyRequired,
    Invalid,
}

/// A JSON value where a string is wanted: the string, `null`, or anything else.
#[derive(Debug, Default)]
enum Field<'a> {
    #[default]
    Absent,
    Str(Cow<'a, str>),
    Other,
}

impl<'a> Field<'a> {
    /// The trimmed string (`None` when absent, null or empty); `Err` for another type.
    fn text(self) -> Result<Option<Cow<'a, str>>, ()> {
        match self {
            Field::Absent => Ok(None),
            Field::Str(s) => Ok(Some(trim(s)).filter(|s| !s.is_empty())),
            Field::Other => Err(()),
        }
    }
}

fn trim(s: Cow<'_, str>) -> Cow<'_, str> {
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
        Cow::Owned(o) if o.trim().len() == o.len() => Cow::Owned(o),
        Cow::Owned(o) => Cow::Owned(o.trim().to_string()),
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Field<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Field<'a>, E> {
                Ok(Field::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field<'a>, E> {
                Ok(Field::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Field<'a>, E> {
                Ok(Field::Str(Cow::Owned(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Field<'a>, E> {
                Ok(Field::Absent)
            }
            fn visit_none<E: de::Error>(self) -> Result<Field<'a>, E> {
                Ok(Field::Absent)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Field<'a>, E> {
                Ok(Field::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Field<'a>, E> {
                Ok(Field::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Field<'a>, E> {
                Ok(Field::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Field<'a>, E> {
                Ok(Field::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field<'a>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field<'a>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::Other)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow, default)]
    key: Field<'a>,
    #[serde(borrow, default)]
    ip: Field<'a>,
    #[serde(borrow, default)]
    hwid: Field<'a>,
    #[serde(borrow, default)]
    nonce: Field<'a>,
}

pub fn parse<'a>(body: &'a [u8], headers: &HeaderMap) -> Result<Request<'a>, BadBody> {
    // A derived struct would also take a JSON array (its fields by position).
    let is_object = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if !is_object {
        return Err(BadBody::KeyRequired);
    }
    let Ok(b) = serde_json::from_slice::<Body<'a>>(body) else {
        return Err(BadBody::KeyRequired);
    };
    let Ok(Some(key)) = b.key.text() else {
        return Err(BadBody::KeyRequired);
    };
    let ip = b.ip.text().map_err(|_| BadBody::Invalid)?;
    let hwid = b.hwid.text().map_err(|_| BadBody::Invalid)?;
    let nonce = match b.nonce.text().map_err(|_| BadBody::Invalid)? {
        Some(n) => Some(n),
        // The header lives in the request head, not the body: copied.
        None => idempotency_key(headers)?.map(|k| Cow::Owned(k.to_string())),
    };
    let ip = match ip {
        // IPv4-mapped IPv6 names the IPv4 address.
        Some(ip) => Some(
            ip.parse::<IpAddr>()
                .map_err(|_| BadBody::Invalid)?
                .to_canonical(),
        ),
        None => None,
    };
    if hwid
        .as_deref()
        .is_some_and(|h| h.len() > MAX_HWID_LEN || h.contains('\0'))
        || nonce
            .as_deref()
            .is_some_and(|n| n.len() > MAX_NONCE_LEN || n.contains('\0'))
    {
        return Err(BadBody::Invalid);
    }
    Ok(Request {
        key,
        ip,
        hwid,
        nonce,
    })
}

/// `Idempotency-Key`, when sent and not blank; a value that is not text is a bad request.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, BadBody> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            Ok(Some(v.to_str().map_err(|_| BadBody::Invalid)?.trim()).filter(|v| !v.is_empty()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn p(body: &str) -> Result<Request<'_>, BadBody> {
        parse(body.as_bytes(), &HeaderMap::new())
    }

    #[test]
    fn key_required_unless_a_non_empty_string_in_an_object() {
        for body in [
            "",
            "null",
            "[\"K\"]",
            "\"K\"",
            "{",
            "not json",
            "{}",
            r#"{"key":null}"#,
            r#"{"key":5}"#,
            r#"{"key":["K"]}"#,
            r#"{"key":"   "}"#,
            r#"{"key":""}"#,
        ] {
            assert_eq!(p(body), Err(BadBody::KeyRequired), "{body}");
        }
    }

    #[test]
    fn the_key_error_comes_before_the_field_errors() {
        assert_eq!(p(r#"{"ip":5}"#), Err(BadBody::KeyRequired));
    }

    #[test]
    fn ip_and_hwid_must_be_strings_and_ip_an_address() {
        for body in [
            r#"{"key":"K","ip":5}"#,
            r#"{"key":"K","hwid":true}"#,
            r#"{"key":"K","hwid":{"a":1}}"#,
            r#"{"key":"K","ip":"not-an-ip"}"#,
            r#"{"key":"K","ip":"1.2.3.4.5"}"#,
            r#"{"key":"K","nonce":7}"#,
        ] {
            assert_eq!(p(body), Err(BadBody::Invalid), "{body}");
        }
        let long = format!(r#"{{"key":"K","hwid":"{}"}}"#, "h".repeat(MAX_HWID_LEN + 1));
        assert_eq!(p(&long), Err(BadBody::Invalid));
        assert_eq!(p(r#"{"key":"K","hwid":"a\u0000b"}"#), Err(BadBody::Invalid));
    }

    #[test]
    fn values_are_trimmed_and_blank_or_null_ones_absent() {
        let r =
            p(r#"{"key":"  K-1 ","ip":" ::ffff:192.0.2.7 ","hwid":"\tPC\n","extra":[1,{"x":2}]}"#)
                .unwrap();
        assert_eq!(r.key, "K-1");
        assert_eq!(r.ip, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(r.hwid.as_deref(), Some("PC"));
        assert_eq!(r.nonce, None);
        let r = p(r#"{"key":"K","ip":"  ","hwid":null,"nonce":""}"#).unwrap();
        assert_eq!((r.ip, r.hwid, r.nonce), (None, None, None));
    }

    #[test]
    fn the_nonce_from_the_body_or_the_idempotency_key() {
        let mut h = HeaderMap::new();
        h.insert("idempotency-key", HeaderValue::from_static(" retry-1 "));
        let r = parse(br#"{"key":"K"}"#, &h).unwrap();
        assert_eq!(r.nonce.as_deref(), Some("retry-1"));
        let r = parse(br#"{"key":"K","nonce":"n-2"}"#, &h).unwrap();
        assert_eq!(r.nonce.as_deref(), Some("n-2"));
        let long = format!(
            r#"{{"key":"K","nonce":"{}"}}"#,
            "n".repeat(MAX_NONCE_LEN + 1)
        );
        assert_eq!(parse(long.as_bytes(), &h), Err(BadBody::Invalid));
    }
}
