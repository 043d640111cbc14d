//! License keys generated from masks.
//!
//! A mask is a template: `X` becomes a random character from `A-Z0-9`, `x` from `a-z0-9`, `#` a
//! random digit, `*` (KeyAuth's masks: `KW-****-****`) like `X`; every other character is kept
//! literally (`KW-XXXX-XXXX`). Randomness comes from
//! a CSPRNG (`rand::rng()`, ChaCha seeded from the OS).

use rand::Rng;

pub const DEFAULT_MASK: &str = "XXXXX-XXXXX-XXXXX-XXXXX-XXXXX";
pub const MAX_KEY_LEN: usize = 128;
/// Fewer random positions would make keys guessable and collisions likely in large batches.
pub const MIN_RANDOM_CHARS: usize = 8;

const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const DIGITS: &[u8] = b"0123456789";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    #[error("mask must not be empty")]
    Empty,
    #[error("key would be {0} characters long; the maximum is {MAX_KEY_LEN}")]
    TooLong(usize),
    #[error(
        "mask has {0} random positions (X, x, # or *); at least {MIN_RANDOM_CHARS} are required"
    )]
    TooFewRandom(usize),
    #[error("mask and prefix may only contain printable ASCII without spaces")]
    BadCharacter,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    template: Vec<u8>,
}

impl Mask {
    /// Parses `prefix` + `mask`. The prefix is always literal, even if it contains `X`.
    pub fn parse(mask: &str, prefix: Option<&str>) -> Result<Mask, MaskError> {
        if mask.is_empty() {
            return Err(MaskError::Empty);
        }
        let prefix = prefix.unwrap_or("");
        let total = prefix.len() + mask.len();
        if total > MAX_KEY_LEN {
            return Err(MaskError::TooLong(total));
        }
        let printable = |b: &u8| b.is_ascii_graphic();
        if !mask.bytes().all(|b| printable(&b)) || !prefix.bytes().all(|b| printable(&b)) {
            return Err(MaskError::BadCharacter);
        }
        let random = mask
            .bytes()
            .filter(|b| matches!(b, b'X' | b'x' | b'#' | b'*'))
            .count();
        if random < MIN_RANDOM_CHARS {
            return Err(MaskError::TooFewRandom(random));
        }
        // Prefix bytes are escaped with a marker so generation keeps them literal.
        let mut template = Vec::with_capacity(total);
        template.extend(prefix.bytes().map(|b| b | 0x80));
        template.extend(mask.bytes());
        Ok(Mask { template })
    }

    pub fn generate(&self) -> String {
        let mut rng = rand::rng();
        let out: String = self
            .template
            .iter()
            .map(|&b| {
                let mut pick = |set: &[u8]| set[rng.random_range(0..set.len())] as char;
                match b {
                    b'X' | b'*' => pick(UPPER),
                    b'x' => pick(LOWER),
                    b'#' => pick(DIGITS),
                    other => (other & 0x7f) as char,
                }
            })
            .collect();
        out
    }

    /// True when `key` could have been produced by this mask.
    pub fn matches(&self, key: &str) -> bool {
        key.len() == self.template.len()
            && self
                .template
                .iter()
                .zip(key.bytes())
                .all(|(&t, k)| match t {
                    b'X' | b'*' => UPPER.contains(&k),
                    b'x' => LOWER.contains(&k),
                    b'#' => k.is_ascii_digit(),
                    lit => (lit & 0x7f) == k,
                })
    }
}

/// The random part of a prefixed key (CyberLicense's `LIC-ABC123-XYZ789`).
pub const PREFIXED_MASK: &str = "XXXXXX-XXXXXX";

/// A key `<prefix>-XXXXXX-XXXXXX` (upper-case letters and digits from the CSPRNG): what a
/// rotation gives a license, `prefix` being its app's `license_prefix`.
pub fn prefixed_key(prefix: &str) -> Result<String, MaskError> {
    Ok(Mask::parse(PREFIXED_MASK, Some(&format!("{prefix}-")))?.generate())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn default_mask_shape() {
        let m = Mask::parse(DEFAULT_MASK, None).unwrap();
        let k = m.generate();
        assert_eq!(k.len(), 29);
        assert!(m.matches(&k));
        assert_eq!(k.matches('-').count(), 4);
    }

    #[test]
    fn prefix_is_literal() {
        let m = Mask::parse("XXXX-XXXX", Some("XKW-")).unwrap();
        let k = m.generate();
        assert!(k.starts_with("XKW-"), "{k}");
        assert!(m.matches(&k));
        assert!(!m.matches("AKW-ABCD-EFGH"));
    }

    #[test]
    fn rejects_weak_or_bad_masks() {
        assert_eq!(Mask::parse("", None), Err(MaskError::Empty));
        assert_eq!(Mask::parse("XXXX", None), Err(MaskError::TooFewRandom(4)));
        assert_eq!(Mask::parse("XXXX XXXX", None), Err(MaskError::BadCharacter));
        assert!(matches!(
            Mask::parse(&"X".repeat(200), None),
            Err(MaskError::TooLong(200))
        ));
    }

    #[test]
    fn stars_are_random_like_x() {
        let m = Mask::parse("KW-****-****", None).unwrap();
        let k = m.generate();
        assert!(m.matches(&k), "{k}");
        assert!(k.starts_with("KW-") && !k.contains('*'), "{k}");
        assert!(
            k[3..].bytes().all(|b| b == b'-' || UPPER.contains(&b)),
            "{k}"
        );
        assert_eq!(Mask::parse("KW-***", None), Err(MaskError::TooFewRandom(3)));
        // A prefix keeps its stars.
        assert!(Mask::parse("XXXXXXXX", Some("*-"))
            .unwrap()
            .generate()
            .starts_with("*-"));
    }

    #[test]
    fn prefixed_keys() {
        let k = prefixed_key("LIC").unwrap();
        let (prefix, rest) = k.split_once('-').unwrap();
        assert_eq!(prefix, "LIC");
        let parts: Vec<&str> = rest.split('-').collect();
        assert_eq!(parts.len(), 2, "{k}");
        for p in parts {
            assert_eq!(p.len(), 6, "{k}");
            assert!(p.bytes().all(|b| UPPER.contains(&b)), "{k}");
        }
        // An `X` in the prefix stays literal.
        assert!(prefixed_key("XYZ9").unwrap().starts_with("XYZ9-"));
        assert_ne!(prefixed_key("A").unwrap(), prefixed_key("A").unwrap());
    }

    #[test]
    fn batch_is_distinct() {
        let m = Mask::parse("XXXX-XXXX-XXXX", None).unwrap();
        let keys: HashSet<String> = (0..5000).map(|_| m.generate()).collect();
        assert_eq!(keys.len(), 5000);
    }

    proptest! {
        #[test]
        fn generated_keys_match_their_mask(mask in "[Xx#A-Z-]{8,40}", prefix in proptest::option::of("[A-Z]{0,5}-")) {
            match Mask::parse(&mask, prefix.as_deref()) {
                Ok(m) => {
                    let k = m.generate();
                    prop_assert!(m.matches(&k));
                    prop_assert_eq!(k.len(), mask.len() + prefix.as_deref().map_or(0, str::len));
                }
                Err(MaskError::TooFewRandom(_)) => {}
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
    }
}
