//! Keygen's response signatures (`Date`, `Digest`, `Keygen-Signature`): an Ed25519 signature over
//! the request target, host, date and body digest, which Keygen SDKs check on every answer, and
//! which webhooks carry too. Also the request header `Keygen-Accept-Signature`.
//!
//! Everything here works on the strings as they travel: the request target and host exactly as
//! received, because clients sign what they sent, byte for byte.

use std::time::SystemTime;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest as _, Sha256};

use crate::signing::Ed25519Signer;

/// The only algorithm served: SDKs pin an Ed25519 key (Keygen also offers ECDSA and RSA).
pub const ALGORITHM: &str = "ed25519";

/// The `headers` parameter: what the signing string covers, in this order.
pub const SIGNED_HEADERS: &str = "(request-target) host date digest";

/// `sha-256=<std base64 of sha256(body)>`, the `Digest` (and `Keygen-Digest`) value.
pub fn digest_header(body: &[u8]) -> String {
    format!("sha-256={}", STANDARD.encode(Sha256::digest(body)))
}

/// IMF-fixdate (`Sun, 22 Nov 2026 10:00:00 GMT`), the `Date` (and `Keygen-Date`) value.
pub fn http_date(t: SystemTime) -> String {
    DateTime::<Utc>::from(t)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// The string that is signed: four `name: value` lines joined by `\n`, without a final newline.
/// `request_target` is kept byte for byte (no decoding, a bare trailing `?` stays): clients sign
/// the target they sent.
pub fn signing_string(
    method: &str,
    request_target: &str,
    host: &str,
    date: &str,
    digest: &str,
) -> String {
    let target = if request_target.is_empty() {
        "/"
    } else {
        request_target
    };
    format!(
        "(request-target): {} {target}\nhost: {host}\ndate: {date}\ndigest: {digest}",
        method.to_ascii_lowercase()
    )
}

/// The three header values a signed answer carries (each also sent as its `Keygen-` twin for
/// `Date` and `Digest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    pub date: String,
    pub digest: String,
    /// The whole `Keygen-Signature` value.
    pub signature: String,
}

/// Signs an answer: `host` is the `Host` header as received (port included), `keyid` the account id.
pub fn sign_response(
    signer: &Ed25519Signer,
    keyid: &str,
    method: &str,
    request_target: &str,
    host: &str,
    body: &[u8],
    now: SystemTime,
) -> SignatureHeaders {
    let date = http_date(now);
    let digest = digest_header(body);
    let signed = signing_string(method, request_target, host, &date, &digest);
    let sig = STANDARD.encode(signer.sign_bytes(signed.as_bytes()));
    let signature = format!(
        r#"keyid="{keyid}", algorithm="{ALGORITHM}", signature="{sig}", headers="{SIGNED_HEADERS}""#
    );
    SignatureHeaders {
        date,
        digest,
        signature,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the public key must be 64 hex characters (a raw Ed25519 public key)")]
    BadPublicKey,
    #[error("malformed Keygen-Signature header")]
    Malformed,
    #[error("the Keygen-Signature header has no {0} parameter")]
    MissingParameter(&'static str),
    #[error("unsupported signature algorithm {0:?} (only ed25519)")]
    UnsupportedAlgorithm(String),
    #[error("signed headers {0:?} are not \"(request-target) host date digest\"")]
    UnsupportedHeaders(String),
    #[error("the signature is not the standard base64 of 64 bytes")]
    BadSignatureEncoding,
    #[error("the Digest header does not match the body")]
    DigestMismatch,
    #[error("the signature does not match this public key")]
    Mismatch,
}

/// Checks a signed answer (or webhook) as a client does: the digest against the body, then the
/// signature over the signing string rebuilt from the given values.
// Eight arguments: one per value the receiver holds; a struct would only rename them.
#[allow(clippy::too_many_arguments)]
pub fn verify_response(
    public_key_hex: &str,
    method: &str,
    request_target: &str,
    host: &str,
    date: &str,
    digest: &str,
    signature_header: &str,
    body: &[u8],
) -> Result<(), SignatureError> {
    let key = parse_public_key(public_key_hex).ok_or(SignatureError::BadPublicKey)?;
    let params = parse_params(signature_header).ok_or(SignatureError::Malformed)?;
    let algorithm =
        param(&params, "algorithm")?.ok_or(SignatureError::MissingParameter("algorithm"))?;
    if !algorithm.eq_ignore_ascii_case(ALGORITHM) {
        return Err(SignatureError::UnsupportedAlgorithm(algorithm.to_owned()));
    }
    let headers = param(&params, "headers")?.ok_or(SignatureError::MissingParameter("headers"))?;
    if !headers
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .eq(SIGNED_HEADERS.split(' '))
    {
        return Err(SignatureError::UnsupportedHeaders(headers.to_owned()));
    }
    let sig = param(&params, "signature")?.ok_or(SignatureError::MissingParameter("signature"))?;
    let sig = STANDARD
        .decode(sig)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .ok_or(SignatureError::BadSignatureEncoding)?;

    // The label's case is not part of the digest (RFC 3230 algorithm names are case-insensitive).
    let expected = digest_header(body);
    let (got, want) = (digest.as_bytes(), expected.as_bytes());
    let matches = got.len() == want.len()
        && got[..8].eq_ignore_ascii_case(&want[..8])
        && got[8..] == want[8..];
    if !matches {
        return Err(SignatureError::DigestMismatch);
    }

    let signed = signing_string(method, request_target, host, date, digest);
    key.verify_strict(signed.as_bytes(), &Signature::from_bytes(&sig))
        .map_err(|_| SignatureError::Mismatch)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AcceptSignatureError {
    #[error("invalid accept-signature header (malformed)")]
    Malformed,
    #[error("invalid accept-signature header (unsupported algorithm)")]
    UnsupportedAlgorithm,
    #[error("invalid accept-signature header (keyid not found)")]
    KeyIdNotFound,
}

/// Checks a request's `Keygen-Accept-Signature`: `[keyid="…", ]algorithm="ed25519"`, parameters in
/// any order. A missing `algorithm` means the default, ed25519; a `keyid` must be `account_id`.
/// Unknown parameters are ignored, so a client that adds one keeps working.
pub fn parse_accept_signature(value: &str, account_id: &str) -> Result<(), AcceptSignatureError> {
    let params = parse_params(value).ok_or(AcceptSignatureError::Malformed)?;
    if params.is_empty() {
        return Err(AcceptSignatureError::Malformed);
    }
    let algorithm = param(&params, "algorithm").map_err(|_| AcceptSignatureError::Malformed)?;
    let keyid = param(&params, "keyid").map_err(|_| AcceptSignatureError::Malformed)?;
    if let Some(a) = algorithm {
        if !a.eq_ignore_ascii_case(ALGORITHM) {
            return Err(AcceptSignatureError::UnsupportedAlgorithm);
        }
    }
    match keyid {
        Some(k) if k != account_id => Err(AcceptSignatureError::KeyIdNotFound),
        _ => Ok(()),
    }
}

fn parse_public_key(hex_key: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// A parameter by (case-insensitive) name; a repeated one is malformed, since which of the two a
/// peer would honour is unknowable.
fn param<'a>(params: &'a [(&str, String)], name: &str) -> Result<Option<&'a str>, SignatureError> {
    let mut found = params
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str());
    let first = found.next();
    match found.next() {
        Some(_) => Err(SignatureError::Malformed),
        None => Ok(first),
    }
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Parses `name="value", name=value, …` (the auth-param list both headers use): optional
/// whitespace around `=` and `,`, quoted strings with `\` escapes, empty list elements skipped.
/// `None` when it is not such a list.
fn parse_params(input: &str) -> Option<Vec<(&str, String)>> {
    let mut out = Vec::new();
    let mut rest = input.trim_matches(is_ows);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start_matches(is_ows);
            continue;
        }
        let eq = rest.find('=')?;
        let name = rest[..eq].trim_end_matches(is_ows);
        if name.is_empty() || !name.chars().all(is_token_char) {
            return None;
        }
        rest = rest[eq + 1..].trim_start_matches(is_ows);
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i + 1,
                    (_, '\\') => value.push(chars.next()?.1),
                    (_, c) => value.push(c),
                }
            };
            rest = &quoted[end..];
            value
        } else {
            let end = rest
                .find(|c: char| c == ',' || is_ows(c))
                .unwrap_or(rest.len());
            let token = &rest[..end];
            // Base64 values are always quoted, so a bare one is a token (plus `/` and `=`).
            if token.is_empty()
                || !token
                    .chars()
                    .all(|c| is_token_char(c) || c == '/' || c == '=')
            {
                return None;
            }
            rest = &rest[end..];
            token.to_owned()
        };
        out.push((name, value));
        rest = rest.trim_start_matches(is_ows);
        match rest.strip_prefix(',') {
            Some(r) => rest = r.trim_start_matches(is_ows),
            None if rest.is_empty() => {}
            None => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey, Verifier as _};
    use std::time::{Duration, UNIX_EPOCH};

    const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const ACCOUNT: &str = "1fddcec8-8dd3-4d8d-9b16-215cac0f9b52";

    fn signer() -> Ed25519Signer {
        Ed25519Signer::from_seed_hex(SEED).unwrap()
    }

    /// 2026-11-22T10:00:00Z, a Sunday.
    fn sunday() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_341_600)
    }

    const BODY: &[u8] = br#"{"data":null,"meta":{"valid":false,"code":"NOT_FOUND"}}"#;
    const TARGET: &str = "/v1/licenses/actions/validate-key";
    const HOST: &str = "127.0.0.1:8080";

    fn signed() -> SignatureHeaders {
        sign_response(&signer(), ACCOUNT, "POST", TARGET, HOST, BODY, sunday())
    }

    fn verify(
        headers: &SignatureHeaders,
        target: &str,
        host: &str,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        verify_response(
            &signer().public_key_hex(),
            "POST",
            target,
            host,
            &headers.date,
            &headers.digest,
            &headers.signature,
            body,
        )
    }

    #[test]
    fn digest_of_empty_body_is_the_documented_one() {
        assert_eq!(
            digest_header(b""),
            "sha-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn http_date_is_imf_fixdate() {
        assert_eq!(http_date(sunday()), "Sun, 22 Nov 2026 10:00:00 GMT");
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_millis(5_999)),
            "Thu, 01 Jan 1970 00:00:05 GMT"
        );
    }

    #[test]
    fn signing_string_is_four_lines_without_trailing_newline() {
        assert_eq!(
            signing_string(
                "GET",
                "/v1/me",
                "licensing.example.com",
                "Sun, 22 Nov 2026 10:00:00 GMT",
                "sha-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            ),
            "(request-target): get /v1/me\n\
             host: licensing.example.com\n\
             date: Sun, 22 Nov 2026 10:00:00 GMT\n\
             digest: sha-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert!(signing_string("GET", "", "h", "d", "x").starts_with("(request-target): get /\n"));
    }

    #[test]
    fn request_target_is_kept_byte_for_byte() {
        let target = "/v1/licenses/abc/actions/check-out?algorithm=aes-256-gcm%2Bed25519&x=%2f";
        let s = signing_string("post", target, "h:1", "d", "g");
        assert!(s.starts_with(&format!("(request-target): post {target}\n")));
        let bare = "/v1/licenses/abc/actions/check-out?";
        let s = signing_string("POST", bare, "h", "d", "g");
        assert!(s.starts_with("(request-target): post /v1/licenses/abc/actions/check-out?\n"));

        // And the signature binds them: decoding `%2B` or dropping the `?` breaks it.
        for (signed_target, other) in [
            (
                target,
                "/v1/licenses/abc/actions/check-out?algorithm=aes-256-gcm+ed25519&x=%2f",
            ),
            (bare, "/v1/licenses/abc/actions/check-out"),
        ] {
            let h = sign_response(
                &signer(),
                ACCOUNT,
                "POST",
                signed_target,
                HOST,
                b"",
                sunday(),
            );
            verify(&h, signed_target, HOST, b"").unwrap();
            assert_eq!(verify(&h, other, HOST, b""), Err(SignatureError::Mismatch));
        }
    }

    #[test]
    fn header_has_the_four_parameters() {
        let h = signed();
        assert_eq!(h.date, "Sun, 22 Nov 2026 10:00:00 GMT");
        assert_eq!(h.digest, digest_header(BODY));
        let params = parse_params(&h.signature).unwrap();
        let names: Vec<&str> = params.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["keyid", "algorithm", "signature", "headers"]);
        assert_eq!(params[0].1, ACCOUNT);
        assert_eq!(params[1].1, "ed25519");
        assert_eq!(STANDARD.decode(&params[2].1).unwrap().len(), 64);
        assert_eq!(params[3].1, "(request-target) host date digest");
        assert!(h.signature.starts_with(&format!(
            r#"keyid="{ACCOUNT}", algorithm="ed25519", signature=""#
        )));
    }

    #[test]
    fn sign_then_verify_round_trips() {
        verify(&signed(), TARGET, HOST, BODY).unwrap();
        // A 204: the empty body's digest.
        let h = sign_response(
            &signer(),
            ACCOUNT,
            "DELETE",
            "/v1/machines/x",
            HOST,
            b"",
            sunday(),
        );
        assert_eq!(
            h.digest,
            "sha-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        verify_response(
            &signer().public_key_hex(),
            "delete",
            "/v1/machines/x",
            HOST,
            &h.date,
            &h.digest,
            &h.signature,
            b"",
        )
        .unwrap();
    }

    #[test]
    fn tampering_with_anything_signed_fails() {
        let h = signed();
        assert_eq!(
            verify(&h, TARGET, HOST, br#"{"data":null,"meta":{"valid":true}}"#),
            Err(SignatureError::DigestMismatch)
        );
        // A body and digest both replaced: the digest matches, the signature does not.
        let other = br#"{"meta":{"valid":true}}"#;
        let forged = SignatureHeaders {
            digest: digest_header(other),
            ..h.clone()
        };
        assert_eq!(
            verify(&forged, TARGET, HOST, other),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&h, TARGET, "127.0.0.1", BODY),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&h, "/v1/licenses/actions/validate-key?", HOST, BODY),
            Err(SignatureError::Mismatch)
        );
        let later = SignatureHeaders {
            date: "Sun, 22 Nov 2026 10:00:01 GMT".into(),
            ..h.clone()
        };
        assert_eq!(
            verify(&later, TARGET, HOST, BODY),
            Err(SignatureError::Mismatch)
        );
        let other_key = Ed25519Signer::generate().public_key_hex();
        assert_eq!(
            verify_response(
                &other_key,
                "POST",
                TARGET,
                HOST,
                &h.date,
                &h.digest,
                &h.signature,
                BODY
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn verify_rejects_bad_headers_and_keys() {
        let h = signed();
        let key = signer().public_key_hex();
        let check =
            |sig: &str| verify_response(&key, "POST", TARGET, HOST, &h.date, &h.digest, sig, BODY);
        let with = |from: &str, to: &str| h.signature.replace(from, to);
        assert_eq!(
            check(&with(r#"algorithm="ed25519""#, r#"algorithm="rsa-sha256""#)),
            Err(SignatureError::UnsupportedAlgorithm("rsa-sha256".into()))
        );
        assert_eq!(
            check(&with(" host date digest", " date digest")),
            Err(SignatureError::UnsupportedHeaders(
                "(request-target) date digest".into()
            ))
        );
        assert_eq!(
            check(&with(r#"signature=""#, r#"signature="AAAA"#)),
            Err(SignatureError::BadSignatureEncoding)
        );
        assert_eq!(
            check(r#"keyid="a", algorithm="ed25519", headers="(request-target) host date digest""#),
            Err(SignatureError::MissingParameter("signature"))
        );
        assert_eq!(
            check(&with("\", headers", "\" headers")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            check(r#"algorithm="ed25519"#),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_response(
                "abcd",
                "POST",
                TARGET,
                HOST,
                &h.date,
                &h.digest,
                &h.signature,
                BODY
            ),
            Err(SignatureError::BadPublicKey)
        );
        // Header names and the digest label are case-insensitive; the signing string uses the
        // digest as received, so an upper-case label must have been what was signed.
        let upper = sign_with_digest("SHA-256=".to_owned() + &h.digest[8..]);
        assert_eq!(
            verify_response(&key, "POST", TARGET, HOST, &h.date, &upper.0, &upper.1, BODY),
            Ok(())
        );
    }

    /// Signs by hand with ed25519-dalek (not `sign_response`), for a given digest value.
    fn sign_with_digest(digest: String) -> (String, String) {
        let dalek = SigningKey::from_bytes(&signer().seed());
        let s = signing_string(
            "POST",
            TARGET,
            HOST,
            "Sun, 22 Nov 2026 10:00:00 GMT",
            &digest,
        );
        let sig = STANDARD.encode(dalek.sign(s.as_bytes()).to_bytes());
        let header = format!(
            r#"KeyId="x",  Algorithm=ed25519 ,Signature="{sig}",headers="(request-target) host date digest""#
        );
        (digest, header)
    }

    #[test]
    fn signature_verifies_with_ed25519_dalek() {
        let h = signed();
        let params = parse_params(&h.signature).unwrap();
        let sig = STANDARD.decode(&params[2].1).unwrap();
        let sig = Signature::from_slice(&sig).unwrap();
        let key = SigningKey::from_bytes(&signer().seed()).verifying_key();
        let expected = format!(
            "(request-target): post {TARGET}\nhost: {HOST}\ndate: Sun, 22 Nov 2026 10:00:00 GMT\ndigest: {}",
            digest_header(BODY)
        );
        key.verify(expected.as_bytes(), &sig).unwrap();
        // Ed25519 is deterministic: the very bytes ed25519-dalek produces.
        let dalek = SigningKey::from_bytes(&signer().seed());
        assert_eq!(
            params[2].1,
            STANDARD.encode(dalek.sign(expected.as_bytes()).to_bytes())
        );
    }

    #[test]
    fn accept_signature_accepts_ed25519_with_or_without_keyid() {
        for ok in [
            r#"algorithm="ed25519""#,
            r#"keyid="1fddcec8-8dd3-4d8d-9b16-215cac0f9b52", algorithm="ed25519""#,
            r#"algorithm="ed25519",keyid="1fddcec8-8dd3-4d8d-9b16-215cac0f9b52""#,
            r#"  algorithm = "ed25519" ,  keyid = "1fddcec8-8dd3-4d8d-9b16-215cac0f9b52"  "#,
            "algorithm=ed25519",
            r#"algorithm="ED25519""#,
            r#"keyid="1fddcec8-8dd3-4d8d-9b16-215cac0f9b52""#,
        ] {
            assert_eq!(parse_accept_signature(ok, ACCOUNT), Ok(()), "{ok}");
        }
    }

    #[test]
    fn accept_signature_errors_have_keygen_texts() {
        use AcceptSignatureError::*;
        for (value, err) in [
            ("", Malformed),
            ("ed25519", Malformed),
            (r#"algorithm="ed25519"#, Malformed),
            (r#"algorithm="ed25519" keyid="x""#, Malformed),
            (r#"algorithm="ed25519", algorithm="ed25519""#, Malformed),
            (r#"="ed25519""#, Malformed),
            (r#"algorithm="rsa-sha256""#, UnsupportedAlgorithm),
            (r#"algorithm="ecdsa-p256", keyid="x""#, UnsupportedAlgorithm),
            (
                r#"keyid="someone-else", algorithm="ed25519""#,
                KeyIdNotFound,
            ),
        ] {
            assert_eq!(parse_accept_signature(value, ACCOUNT), Err(err), "{value}");
        }
        assert_eq!(
            Malformed.to_string(),
            "invalid accept-signature header (malformed)"
        );
        assert_eq!(
            UnsupportedAlgorithm.to_string(),
            "invalid accept-signature header (unsupported algorithm)"
        );
        assert_eq!(
            KeyIdNotFound.to_string(),
            "invalid accept-signature header (keyid not found)"
        );
    }

    #[test]
    fn params_parse_quoted_escapes_and_skip_empty_elements() {
        let p = parse_params(r#"a="x\"y", , b=c/d=,"#).unwrap();
        assert_eq!(p, [("a", "x\"y".to_owned()), ("b", "c/d=".to_owned())]);
        assert_eq!(parse_params(r#"a="unterminated"#), None);
        assert_eq!(parse_params("a=b c=d"), None);
        assert_eq!(parse_params("a b=c"), None);
    }
}
