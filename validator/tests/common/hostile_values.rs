//! Hostile values the validator's sweeps send: strings (with whether they hold a NUL), JSON-only
//! values, and their URL encoding.

use serde_json::{json, Value};

/// (label, value, holds a NUL)
pub fn hostile_strings() -> Vec<(&'static str, String, bool)> {
    vec![
        ("NUL", "a\0b".into(), true),
        ("only NUL", "\0".into(), true),
        ("60 kB", "x".repeat(60_000), false),
        ("70 kB", "x".repeat(70_000), false),
        ("30 kB of 2-byte chars", "é".repeat(15_000), false),
        (
            "control characters",
            "\u{1}\u{8}\u{1b}[2J\r\n\t\u{7f}".into(),
            false,
        ),
        (
            "bidi and astral",
            "\u{202e}\u{1F600}\u{FEFF}\u{FFFF}".into(),
            false,
        ),
        ("SQL", "' OR '1'='1'; --".into(), false),
        ("path traversal", "../../../etc/passwd".into(), false),
        ("percent escapes", "%00%ff%".into(), false),
        ("huge number", "99999999999999999999999999".into(), false),
        ("negative", "-1".into(), false),
        ("whitespace", "   ".into(), false),
    ]
}

pub fn deep(n: usize) -> Value {
    let mut v = json!("x");
    for _ in 0..n {
        v = json!({ "a": v });
    }
    v
}

/// JSON-only values: (label, value)
pub fn hostile_json() -> Vec<(&'static str, Value)> {
    vec![
        ("i64::MAX", json!(i64::MAX)),
        ("u64::MAX", json!(u64::MAX)),
        ("1e308", json!(1e308)),
        ("fraction", json!(1.5)),
        ("true", json!(true)),
        ("null", Value::Null),
        ("array", json!(["x"])),
        ("object", json!({"k": "v"})),
        ("100-deep object", deep(100)),
    ]
}

pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
