//! A client-API answer and its bytes as KeyAuth SDKs expect them: keys in KeyAuth's order, PHP
//! `json_encode` escaping (`\/` and `\uXXXX`, so every body is pure ASCII and the C# SDK's
//! code-page conversion cannot break a signature), and for 1.3 `code` second and `ownerid` last.

use std::io;

use serde::ser::{SerializeMap, Serializer};
use serde_json::ser::Formatter;
use serde_json::Value;

use super::Api;

/// `code` of a successful 1.3 answer (the C++ SDK requires exactly this).
pub const SUCCESS_CODE: i64 = 68;

/// Which HMAC key signs a 1.2 answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignWith {
    /// Pre-dispatch errors and "Session not found": the client cannot know any key of ours yet.
    Nothing,
    /// `init`: the app secret.
    AppSecret,
    /// Everything after `init`: the session's `<enckey>-<secret>`.
    Session,
}

#[derive(Debug)]
pub enum Body {
    Json {
        success: bool,
        message: String,
        fields: Vec<(&'static str, Value)>,
        /// 1.3 `code` of a failure (success is always 68).
        failure_code: i64,
        nonce: bool,
        /// `invalidver` is the one answer PHP encodes with JSON_UNESCAPED_SLASHES.
        unescaped_slashes: bool,
    },
    /// `KeyAuth_Invalid` (unknown app): plain text, as the SDKs compare it.
    Text(&'static str),
    /// `log`: an empty body.
    Empty,
}

#[derive(Debug)]
pub struct Reply {
    pub body: Body,
    pub sign: SignWith,
    pub status: u16,
    pub retry_after_secs: Option<u64>,
}

impl Reply {
    fn json(success: bool, message: impl Into<String>, failure_code: i64) -> Reply {
        Reply {
            body: Body::Json {
                success,
                message: message.into(),
                fields: Vec::new(),
                failure_code,
                nonce: success,
                unescaped_slashes: false,
            },
            sign: SignWith::Session,
            status: 200,
            retry_after_secs: None,
        }
    }

    pub fn ok(message: impl Into<String>) -> Reply {
        Reply::json(true, message, SUCCESS_CODE)
    }

    /// A failure with its 1.3 `code` (see `Why`).
    pub fn fail(why: super::Why, message: impl Into<String>) -> Reply {
        Reply::json(false, message, why.code())
    }

    pub fn text(text: &'static str) -> Reply {
        Reply {
            body: Body::Text(text),
            sign: SignWith::Nothing,
            status: 200,
            retry_after_secs: None,
        }
    }

    pub fn empty() -> Reply {
        Reply {
            body: Body::Empty,
            sign: SignWith::Session,
            status: 200,
            retry_after_secs: None,
        }
    }

    pub fn field(mut self, key: &'static str, value: impl Into<Value>) -> Reply {
        if let Body::Json { fields, .. } = &mut self.body {
            fields.push((key, value.into()));
        }
        self
    }

    pub fn signed_with(mut self, sign: SignWith) -> Reply {
        self.sign = sign;
        self
    }

    pub fn status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Reply {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    pub fn unescaped_slashes(mut self) -> Reply {
        if let Body::Json {
            unescaped_slashes, ..
        } = &mut self.body
        {
            *unescaped_slashes = true;
        }
        self
    }

    /// The failure's 1.3 `code` (`None` for a success or a non-JSON answer).
    pub fn failure(&self) -> Option<i64> {
        match &self.body {
            Body::Json {
                success: false,
                failure_code,
                ..
            } => Some(*failure_code),
            _ => None,
        }
    }

    pub fn is_success(&self) -> bool {
        matches!(self.body, Body::Json { success: true, .. })
    }

    /// The exact bytes to send (and sign).
    pub fn render(&self, api: Api, ownerid: &str) -> Vec<u8> {
        match &self.body {
            Body::Text(t) => t.as_bytes().to_vec(),
            Body::Empty => Vec::new(),
            Body::Json {
                success,
                message,
                fields,
                failure_code,
                nonce,
                unescaped_slashes,
            } => {
                let mut out = Vec::with_capacity(128);
                let formatter = PhpFormatter {
                    escape_slashes: !unescaped_slashes,
                };
                let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
                let entries = Entries {
                    api,
                    success: *success,
                    code: if *success {
                        SUCCESS_CODE
                    } else {
                        *failure_code
                    },
                    message,
                    fields,
                    nonce: nonce.then(|| keyward_shared::secrets::random_token(32)),
                    ownerid,
                };
                // Strings, numbers and JSON values only: serialising into a Vec cannot fail.
                if let Ok(mut map) = ser.serialize_map(None) {
                    if entries.write(&mut map).is_ok() {
                        let _ = SerializeMap::end(map);
                    }
                }
                out
            }
        }
    }
}

struct Entries<'a> {
    api: Api,
    success: bool,
    code: i64,
    message: &'a str,
    fields: &'a [(&'static str, Value)],
    nonce: Option<String>,
    ownerid: &'a str,
}

impl Entries<'_> {
    fn write<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        map.serialize_entry("success", &self.success)?;
        if self.api == Api::V1_3 {
            map.serialize_entry("code", &self.code)?;
        }
        map.serialize_entry("message", self.message)?;
        for (k, v) in self.fields {
            map.serialize_entry(k, v)?;
        }
        if let Some(n) = &self.nonce {
            map.serialize_entry("nonce", n)?;
        }
        if self.api == Api::V1_3 {
            map.serialize_entry("ownerid", self.ownerid)?;
        }
        Ok(())
    }
}

/// PHP `json_encode` defaults: `/` as `\/`, everything outside ASCII as `\uXXXX` (UTF-16).
#[derive(Clone, Copy)]
pub struct PhpFormatter {
    escape_slashes: bool,
}

impl Formatter for PhpFormatter {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let mut start = 0;
        for (i, ch) in fragment.char_indices() {
            let escaped = (ch == '/' && self.escape_slashes) || !ch.is_ascii();
            if !escaped {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..i])?;
            if ch == '/' {
                writer.write_all(b"\\/")?;
            } else {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
            start = i + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}
