//! Keygen license and machine files (check-out): a dataset signed with the deployment's Ed25519
//! key, optionally encrypted with the license key, that a client verifies offline.
//!
//! The certificate is `-----BEGIN LICENSE FILE-----`, the base64 of `{"enc","sig","alg"}` in lines
//! of 60 characters, and `-----END LICENSE FILE-----` (`MACHINE FILE` for machines), where
//! `sig = ed25519("license/" + enc)` (`"machine/"`), and `enc` is the base64 dataset or, encrypted,
//! `b64(ciphertext).b64(iv).b64(tag)` under AES-256-GCM with key `sha256(secret)`.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest as _, Sha256};

use crate::signing::Ed25519Signer;

/// The width of the certificate's base64 lines, as Keygen writes them.
const LINE_WIDTH: usize = 60;
const TAG_LEN: usize = 16;

/// A license file or a machine file: what the signature's prefix and the armor say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    License,
    Machine,
}

impl FileKind {
    /// What the signature covers before `enc`.
    pub fn prefix(self) -> &'static str {
        match self {
            FileKind::License => "license/",
            FileKind::Machine => "machine/",
        }
    }

    /// The label between `-----BEGIN ` and `-----`.
    pub fn armor(self) -> &'static str {
        match self {
            FileKind::License => "LICENSE FILE",
            FileKind::Machine => "MACHINE FILE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAlgorithm {
    Base64Ed25519,
    Aes256GcmEd25519,
}

impl FileAlgorithm {
    pub fn parse(s: &str) -> Result<FileAlgorithm, LicenseFileError> {
        match s {
            "base64+ed25519" => Ok(FileAlgorithm::Base64Ed25519),
            "aes-256-gcm+ed25519" => Ok(FileAlgorithm::Aes256GcmEd25519),
            other => Err(LicenseFileError::UnknownAlgorithm(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FileAlgorithm::Base64Ed25519 => "base64+ed25519",
            FileAlgorithm::Aes256GcmEd25519 => "aes-256-gcm+ed25519",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LicenseFileError {
    #[error(
        "not a license file: expected -----BEGIN LICENSE FILE----- (or MACHINE FILE), base64 \
         lines, then the matching -----END … FILE----- line"
    )]
    BadArmor,
    #[error("the file's {0} is not valid base64")]
    BadBase64(&'static str),
    #[error("the file's content is not the expected JSON {{enc, sig, alg}}: {0}")]
    BadPayload(String),
    #[error("unknown algorithm {0:?} (expected base64+ed25519 or aes-256-gcm+ed25519)")]
    UnknownAlgorithm(String),
    #[error("the public key must be 64 hex characters (a raw Ed25519 public key)")]
    BadPublicKey,
    #[error(
        "the signature does not match this public key: the file was altered, or signed by \
         another key"
    )]
    SignatureMismatch,
    #[error(
        "the file is encrypted: the license key (and, for a machine file, the machine's \
         fingerprint) is needed to decrypt it"
    )]
    KeyRequired,
    #[error(
        "wrong key to decrypt the file: it needs the license key (and, for a machine file, the \
         machine's fingerprint)"
    )]
    WrongKey,
    #[error("the encrypted content is malformed: {0}")]
    BadCiphertext(&'static str),
    #[error("the file's dataset is not valid JSON: {0}")]
    BadDataset(String),
    #[error("meta.{field} in the dataset is not an RFC 3339 timestamp: {value}")]
    BadTimestamp { field: &'static str, value: String },
    #[error("the file expired at {}", .expiry.to_rfc3339_opts(SecondsFormat::Secs, true))]
    Expired { expiry: DateTime<Utc> },
    #[error("encryption failed")]
    Encrypt,
}

/// Issues a certificate over `dataset` (the JSON document). `secret` is the license key (machine
/// file: license key followed by the fingerprint) and only read when encrypting.
pub fn issue(
    signer: &Ed25519Signer,
    kind: FileKind,
    algorithm: FileAlgorithm,
    dataset: &[u8],
    secret: &[u8],
) -> Result<String, LicenseFileError> {
    // A file no client could parse must not leave the server.
    serde_json::from_slice::<serde::de::IgnoredAny>(dataset)
        .map_err(|e| LicenseFileError::BadDataset(e.to_string()))?;
    let enc = match algorithm {
        FileAlgorithm::Base64Ed25519 => STANDARD.encode(dataset),
        FileAlgorithm::Aes256GcmEd25519 => {
            if secret.is_empty() {
                return Err(LicenseFileError::KeyRequired);
            }
            let iv = crate::secrets::random_bytes::<NONCE_LEN>();
            let mut ciphertext = dataset.to_vec();
            let tag = aead_key(secret)
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(iv),
                    Aad::empty(),
                    &mut ciphertext,
                )
                .map_err(|_| LicenseFileError::Encrypt)?;
            format!(
                "{}.{}.{}",
                STANDARD.encode(&ciphertext),
                STANDARD.encode(iv),
                STANDARD.encode(tag.as_ref())
            )
        }
    };
    let sig = STANDARD.encode(signer.sign_bytes(signed_message(kind, &enc).as_bytes()));
    // Key order as Keygen writes it (serde_json keeps insertion order in this workspace).
    let payload = serde_json::json!({ "enc": enc, "sig": sig, "alg": algorithm.as_str() });
    let body = STANDARD.encode(payload.to_string());

    let label = kind.armor();
    let mut out = String::with_capacity(body.len() + body.len() / LINE_WIDTH + 64);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut rest = body.as_str();
    while !rest.is_empty() {
        // Base64 is ASCII, so any byte index is a character boundary.
        let (line, tail) = rest.split_at(rest.len().min(LINE_WIDTH));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    Ok(out)
}

/// A certificate that verified: its dataset (the JSON:API document with `meta`) and the times it
/// states.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub kind: FileKind,
    pub algorithm: FileAlgorithm,
    pub dataset: serde_json::Value,
    pub issued: Option<DateTime<Utc>>,
    pub expiry: Option<DateTime<Utc>>,
}

/// Verifies a certificate as a client does: armor, signature over prefix + `enc` (before anything
/// inside is trusted), decryption with `secret` when encrypted, the dataset, and `meta.expiry`
/// against `now` (a null or absent expiry never expires).
pub fn verify(
    certificate: &str,
    public_key_hex: &str,
    secret: Option<&[u8]>,
    now: DateTime<Utc>,
) -> Result<Verified, LicenseFileError> {
    let key = parse_public_key(public_key_hex)?;
    let (kind, body) = unarmor(certificate)?;
    let payload = STANDARD
        .decode(body)
        .map_err(|_| LicenseFileError::BadBase64("content"))?;
    let payload: Payload = serde_json::from_slice(&payload)
        .map_err(|e| LicenseFileError::BadPayload(e.to_string()))?;
    let algorithm = FileAlgorithm::parse(&payload.alg)?;

    let sig = STANDARD
        .decode(&payload.sig)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .ok_or(LicenseFileError::BadBase64("signature"))?;
    key.verify_strict(
        signed_message(kind, &payload.enc).as_bytes(),
        &Signature::from_bytes(&sig),
    )
    .map_err(|_| LicenseFileError::SignatureMismatch)?;

    let dataset = match algorithm {
        FileAlgorithm::Base64Ed25519 => STANDARD
            .decode(&payload.enc)
            .map_err(|_| LicenseFileError::BadBase64("enc"))?,
        FileAlgorithm::Aes256GcmEd25519 => decrypt(&payload.enc, secret)?,
    };
    let dataset: serde_json::Value = serde_json::from_slice(&dataset)
        .map_err(|e| LicenseFileError::BadDataset(e.to_string()))?;
    let issued = meta_time(&dataset, "issued")?;
    let expiry = meta_time(&dataset, "expiry")?;
    if let Some(expiry) = expiry {
        // Valid up to and including the expiry instant, as keygen-sdk checks `now > expiry`.
        if now > expiry {
            return Err(LicenseFileError::Expired { expiry });
        }
    }
    Ok(Verified {
        kind,
        algorithm,
        dataset,
        issued,
        expiry,
    })
}

#[derive(serde::Deserialize)]
struct Payload {
    enc: String,
    sig: String,
    alg: String,
}

fn signed_message(kind: FileKind, enc: &str) -> String {
    let mut msg = String::with_capacity(kind.prefix().len() + enc.len());
    msg.push_str(kind.prefix());
    msg.push_str(enc);
    msg
}

/// AES-256-GCM keyed by sha256(secret).
fn aead_key(secret: &[u8]) -> LessSafeKey {
    match UnboundKey::new(&AES_256_GCM, Sha256::digest(secret).as_slice()) {
        Ok(k) => LessSafeKey::new(k),
        Err(_) => unreachable!("a SHA-256 digest is an AES-256 key"),
    }
}

fn parse_public_key(hex_key: &str) -> Result<VerifyingKey, LicenseFileError> {
    hex::decode(hex_key.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or(LicenseFileError::BadPublicKey)
}

/// The kind and the joined base64 between the armor lines. Tolerates `\r\n`, indentation and
/// blank lines (files pasted through editors and mail), but nothing after the END line, so a
/// second certificate appended is not silently ignored.
fn unarmor(certificate: &str) -> Result<(FileKind, String), LicenseFileError> {
    let mut lines = certificate.lines().map(str::trim).filter(|l| !l.is_empty());
    let kind = match lines.next() {
        Some("-----BEGIN LICENSE FILE-----") => FileKind::License,
        Some("-----BEGIN MACHINE FILE-----") => FileKind::Machine,
        _ => return Err(LicenseFileError::BadArmor),
    };
    let end = format!("-----END {}-----", kind.armor());
    let mut body = String::with_capacity(certificate.len());
    loop {
        match lines.next() {
            Some(line) if line == end => break,
            Some(line) if !line.starts_with('-') => body.push_str(line),
            _ => return Err(LicenseFileError::BadArmor),
        }
    }
    if lines.next().is_some() || body.is_empty() {
        return Err(LicenseFileError::BadArmor);
    }
    Ok((kind, body))
}

fn decrypt(enc: &str, secret: Option<&[u8]>) -> Result<Vec<u8>, LicenseFileError> {
    let secret = secret
        .filter(|s| !s.is_empty())
        .ok_or(LicenseFileError::KeyRequired)?;
    let mut parts = enc.split('.');
    let (Some(ciphertext), Some(iv), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(LicenseFileError::BadCiphertext(
            "expected ciphertext.iv.tag",
        ));
    };
    let decode = |part: &str| {
        STANDARD
            .decode(part)
            .map_err(|_| LicenseFileError::BadBase64("enc"))
    };
    let iv: [u8; NONCE_LEN] = decode(iv)?
        .try_into()
        .map_err(|_| LicenseFileError::BadCiphertext("the IV is not 12 bytes"))?;
    let tag = decode(tag)?;
    if tag.len() != TAG_LEN {
        return Err(LicenseFileError::BadCiphertext("the tag is not 16 bytes"));
    }
    let mut buf = decode(ciphertext)?;
    buf.extend_from_slice(&tag);
    // The signature already vouched for these bytes, so a failed tag means the wrong key.
    let len = aead_key(secret)
        .open_in_place(Nonce::assume_unique_for_key(iv), Aad::empty(), &mut buf)
        .map_err(|_| LicenseFileError::WrongKey)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

fn meta_time(
    dataset: &serde_json::Value,
    field: &'static str,
) -> Result<Option<DateTime<Utc>>, LicenseFileError> {
    let value = match dataset.get("meta").and_then(|m| m.get(field)) {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(v) => v,
    };
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| Some(t.with_timezone(&Utc)))
        .ok_or_else(|| LicenseFileError::BadTimestamp {
            field,
            value: value.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use ed25519_dalek::Verifier as _;
    use serde_json::{json, Value};

    const KEY: &str = "ABCD-EFGH-IJKL-MNOP";
    const FINGERPRINT: &str = "4f:9a:21:c3:de:ad:be:ef";

    fn signer() -> Ed25519Signer {
        Ed25519Signer::from_seed_hex(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        )
        .unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
    }

    /// A license dataset issued an hour ago for a month, padded so the certificate spans lines.
    fn dataset(expiry: Value) -> Vec<u8> {
        json!({
            "data": {
                "id": "8c7a2a47-5f8a-4f41-9f0e-6f3c5e0b8d11",
                "type": "licenses",
                "attributes": {"key": KEY, "name": "Pro seat", "metadata": {"plan": "pro"}},
                "relationships": {"account": {"data": {"type": "accounts", "id": "acme"}}}
            },
            "included": [],
            "meta": {"issued": "2026-11-22T09:00:00.000Z", "expiry": expiry, "ttl": 2629746}
        })
        .to_string()
        .into_bytes()
    }

    /// An unencrypted file of `kind` with a dataset that never expires.
    fn plain(kind: FileKind) -> String {
        issue(
            &signer(),
            kind,
            FileAlgorithm::Base64Ed25519,
            &dataset(Value::Null),
            b"",
        )
        .unwrap()
    }

    fn secret(kind: FileKind) -> Vec<u8> {
        match kind {
            FileKind::License => KEY.as_bytes().to_vec(),
            FileKind::Machine => format!("{KEY}{FINGERPRINT}").into_bytes(),
        }
    }

    /// The certificate's inner `{enc, sig, alg}`.
    fn payload(cert: &str) -> Value {
        let (_, body) = unarmor(cert).unwrap();
        serde_json::from_slice(&STANDARD.decode(body).unwrap()).unwrap()
    }

    /// Re-armors a (modified) payload the way `issue` does.
    fn armor(kind: FileKind, payload: &Value) -> String {
        let body = STANDARD.encode(payload.to_string());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(LINE_WIDTH)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {0}-----\n{1}\n-----END {0}-----\n",
            kind.armor(),
            lines.join("\n")
        )
    }

    const ALL: [(FileKind, FileAlgorithm); 4] = [
        (FileKind::License, FileAlgorithm::Base64Ed25519),
        (FileKind::License, FileAlgorithm::Aes256GcmEd25519),
        (FileKind::Machine, FileAlgorithm::Base64Ed25519),
        (FileKind::Machine, FileAlgorithm::Aes256GcmEd25519),
    ];

    #[test]
    fn round_trips_both_algorithms_and_kinds() {
        let data = dataset(json!("2026-12-22T09:00:00Z"));
        for (kind, alg) in ALL {
            let s = secret(kind);
            let cert = issue(&signer(), kind, alg, &data, &s).unwrap();
            let v = verify(&cert, &signer().public_key_hex(), Some(&s), now()).unwrap();
            assert_eq!(v.kind, kind);
            assert_eq!(v.algorithm, alg);
            assert_eq!(v.dataset, serde_json::from_slice::<Value>(&data).unwrap());
            assert_eq!(v.issued, Some(at("2026-11-22T09:00:00Z")));
            assert_eq!(v.expiry, Some(at("2026-12-22T09:00:00Z")));
            assert_eq!(payload(&cert)["alg"], alg.as_str());
        }
    }

    #[test]
    fn certificate_layout_is_keygens() {
        for (kind, alg) in ALL {
            let cert = issue(&signer(), kind, alg, &dataset(Value::Null), &secret(kind)).unwrap();
            let label = kind.armor();
            assert!(cert.starts_with(&format!("-----BEGIN {label}-----\n")));
            assert!(cert.ends_with(&format!("\n-----END {label}-----\n")));
            assert!(!cert.contains('\r'));
            let lines: Vec<&str> = cert.lines().collect();
            let body = &lines[1..lines.len() - 1];
            assert!(body.len() > 2, "the test dataset spans several lines");
            let (last, full) = body.split_last().unwrap();
            assert!(full.iter().all(|l| l.len() == 60));
            assert!(!last.is_empty() && last.len() <= 60);
            // Keys in Keygen's order.
            let json = String::from_utf8(STANDARD.decode(body.concat()).unwrap()).unwrap();
            assert!(json.starts_with(r#"{"enc":""#), "{json}");
            let (sig, alg) = (
                json.find(r#""sig":"#).unwrap(),
                json.find(r#""alg":"#).unwrap(),
            );
            assert!(sig < alg);
        }
    }

    #[test]
    fn signature_is_ed25519_over_prefix_and_enc() {
        // Checked with ed25519-dalek, independently of `verify`.
        let dalek = ed25519_dalek::SigningKey::from_bytes(&signer().seed()).verifying_key();
        for (kind, alg) in ALL {
            let cert = issue(&signer(), kind, alg, &dataset(Value::Null), &secret(kind)).unwrap();
            let p = payload(&cert);
            let enc = p["enc"].as_str().unwrap();
            let sig = STANDARD.decode(p["sig"].as_str().unwrap()).unwrap();
            let sig = Signature::from_slice(&sig).unwrap();
            let msg = format!("{}{enc}", kind.prefix());
            dalek.verify(msg.as_bytes(), &sig).unwrap();
            if alg == FileAlgorithm::Base64Ed25519 {
                assert_eq!(STANDARD.decode(enc).unwrap(), dataset(Value::Null));
            }
        }
    }

    #[test]
    fn encrypted_enc_is_ciphertext_iv_tag() {
        let data = dataset(Value::Null);
        let cert = issue(
            &signer(),
            FileKind::License,
            FileAlgorithm::Aes256GcmEd25519,
            &data,
            KEY.as_bytes(),
        )
        .unwrap();
        let p = payload(&cert);
        let parts: Vec<Vec<u8>> = p["enc"]
            .as_str()
            .unwrap()
            .split('.')
            .map(|part| STANDARD.decode(part).unwrap())
            .collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].len(), data.len(), "GCM keeps the length");
        assert_ne!(parts[0], data);
        assert_eq!(parts[1].len(), 12);
        assert_eq!(parts[2].len(), 16);
        // A fresh IV each time: the same dataset never encrypts the same way twice.
        let again = issue(
            &signer(),
            FileKind::License,
            FileAlgorithm::Aes256GcmEd25519,
            &data,
            KEY.as_bytes(),
        )
        .unwrap();
        assert_ne!(payload(&again)["enc"], p["enc"]);
    }

    #[test]
    fn tolerates_crlf_and_surrounding_whitespace() {
        let cert = plain(FileKind::Machine);
        let crlf = format!("\r\n  {}\r\n\r\n", cert.replace('\n', "\r\n"));
        let v = verify(&crlf, &signer().public_key_hex(), None, now()).unwrap();
        assert_eq!(v.kind, FileKind::Machine);
    }

    #[test]
    fn wrong_public_key_fails() {
        let cert = plain(FileKind::License);
        let other = Ed25519Signer::generate().public_key_hex();
        let err = verify(&cert, &other, None, now()).unwrap_err();
        assert!(matches!(err, LicenseFileError::SignatureMismatch), "{err}");
        assert!(err.to_string().contains("does not match this public key"));
        let err = verify(&cert, "not-hex", None, now()).unwrap_err();
        assert!(matches!(err, LicenseFileError::BadPublicKey), "{err}");
    }

    #[test]
    fn tampered_enc_or_relabelled_armor_fails() {
        for (kind, alg) in ALL {
            let cert = issue(&signer(), kind, alg, &dataset(Value::Null), &secret(kind)).unwrap();
            let mut p = payload(&cert);
            // Swap one base64 character of the dataset for another.
            let enc = p["enc"].as_str().unwrap().to_owned();
            let c = if enc.as_bytes()[10] == b'A' { "B" } else { "A" };
            p["enc"] = json!(format!("{}{c}{}", &enc[..10], &enc[11..]));
            let err = verify(
                &armor(kind, &p),
                &signer().public_key_hex(),
                Some(&secret(kind)),
                now(),
            )
            .unwrap_err();
            assert!(matches!(err, LicenseFileError::SignatureMismatch), "{err}");

            // A machine file passed off as a license file (or back): the prefix is signed.
            let other = match kind {
                FileKind::License => FileKind::Machine,
                FileKind::Machine => FileKind::License,
            };
            let relabelled = armor(other, &payload(&cert));
            let err = verify(
                &relabelled,
                &signer().public_key_hex(),
                Some(&secret(kind)),
                now(),
            )
            .unwrap_err();
            assert!(matches!(err, LicenseFileError::SignatureMismatch), "{err}");
        }
    }

    #[test]
    fn encrypted_file_needs_the_right_secret() {
        for kind in [FileKind::License, FileKind::Machine] {
            let cert = issue(
                &signer(),
                kind,
                FileAlgorithm::Aes256GcmEd25519,
                &dataset(Value::Null),
                &secret(kind),
            )
            .unwrap();
            let public = signer().public_key_hex();
            let err = verify(&cert, &public, None, now()).unwrap_err();
            assert!(matches!(err, LicenseFileError::KeyRequired), "{err}");
            let err = verify(&cert, &public, Some(b""), now()).unwrap_err();
            assert!(matches!(err, LicenseFileError::KeyRequired), "{err}");
            let err = verify(&cert, &public, Some(b"WXYZ-EFGH-IJKL-MNOP"), now()).unwrap_err();
            assert!(matches!(err, LicenseFileError::WrongKey), "{err}");
            assert!(err.to_string().starts_with("wrong key to decrypt"));
        }
        // A machine file is keyed by key + fingerprint: the license key alone is not enough.
        let cert = issue(
            &signer(),
            FileKind::Machine,
            FileAlgorithm::Aes256GcmEd25519,
            &dataset(Value::Null),
            &secret(FileKind::Machine),
        )
        .unwrap();
        let err = verify(
            &cert,
            &signer().public_key_hex(),
            Some(KEY.as_bytes()),
            now(),
        );
        assert!(matches!(err, Err(LicenseFileError::WrongKey)));
        // Issuing an encrypted file without a key is refused rather than keyed by sha256("").
        let err = issue(
            &signer(),
            FileKind::License,
            FileAlgorithm::Aes256GcmEd25519,
            &dataset(Value::Null),
            b"",
        );
        assert!(matches!(err, Err(LicenseFileError::KeyRequired)));
    }

    #[test]
    fn expired_file_says_when() {
        let cert = issue(
            &signer(),
            FileKind::License,
            FileAlgorithm::Base64Ed25519,
            &dataset(json!("2026-11-22T09:30:00.000Z")),
            b"",
        )
        .unwrap();
        let public = signer().public_key_hex();
        let err = verify(&cert, &public, None, now()).unwrap_err();
        assert!(matches!(err, LicenseFileError::Expired { .. }), "{err}");
        assert_eq!(err.to_string(), "the file expired at 2026-11-22T09:30:00Z");
        // Valid up to the very instant.
        assert!(verify(&cert, &public, None, at("2026-11-22T09:30:00Z")).is_ok());
        // No expiry (ttl null) never expires.
        let perpetual = plain(FileKind::License);
        let v = verify(&perpetual, &public, None, at("2126-01-01T00:00:00Z")).unwrap();
        assert_eq!(v.expiry, None);
    }

    #[test]
    fn malformed_files_get_clear_errors() {
        let public = signer().public_key_hex();
        let cert = plain(FileKind::License);
        let check = |text: &str| verify(text, &public, None, now()).unwrap_err();

        assert!(matches!(check(""), LicenseFileError::BadArmor));
        assert!(matches!(check("hello"), LicenseFileError::BadArmor));
        let no_end = cert.replace("-----END LICENSE FILE-----\n", "");
        assert!(matches!(check(&no_end), LicenseFileError::BadArmor));
        let mismatched = cert.replace("END LICENSE", "END MACHINE");
        assert!(matches!(check(&mismatched), LicenseFileError::BadArmor));
        let twice = format!("{cert}{cert}");
        assert!(matches!(check(&twice), LicenseFileError::BadArmor));
        let empty = "-----BEGIN LICENSE FILE-----\n-----END LICENSE FILE-----\n";
        assert!(matches!(check(empty), LicenseFileError::BadArmor));

        let garbled = cert.replacen("\n", "\n#", 1);
        assert!(matches!(check(&garbled), LicenseFileError::BadBase64(_)));
        let not_json = armor(FileKind::License, &json!("just a string"));
        assert!(matches!(check(&not_json), LicenseFileError::BadPayload(_)));

        let mut p = payload(&cert);
        p["alg"] = json!("rsa-pss-sha256+base64");
        let err = check(&armor(FileKind::License, &p));
        assert!(
            matches!(err, LicenseFileError::UnknownAlgorithm(ref a) if a == "rsa-pss-sha256+base64")
        );

        // A signed dataset that is not JSON, or has a bad timestamp, is still refused.
        let bad = issue_unchecked(FileKind::License, b"not json");
        assert!(matches!(check(&bad), LicenseFileError::BadDataset(_)));
        let bad = issue_unchecked(FileKind::License, br#"{"meta":{"expiry":"tomorrow"}}"#);
        let err = check(&bad);
        assert!(
            matches!(
                err,
                LicenseFileError::BadTimestamp {
                    field: "expiry",
                    ..
                }
            ),
            "{err}"
        );
        let bad = issue_unchecked(FileKind::License, br#"{"meta":{"issued":12}}"#);
        assert!(matches!(
            check(&bad),
            LicenseFileError::BadTimestamp {
                field: "issued",
                ..
            }
        ));

        // An encrypted enc without its three parts.
        let mut p = payload(&cert);
        let enc = "AAAA.AAAA";
        p["enc"] = json!(enc);
        p["alg"] = json!("aes-256-gcm+ed25519");
        p["sig"] = json!(STANDARD.encode(signer().sign_bytes(format!("license/{enc}").as_bytes())));
        let err = verify(&armor(FileKind::License, &p), &public, Some(b"k"), now()).unwrap_err();
        assert!(matches!(err, LicenseFileError::BadCiphertext(_)), "{err}");
    }

    /// Signs an arbitrary dataset, bypassing `issue`'s JSON check.
    fn issue_unchecked(kind: FileKind, data: &[u8]) -> String {
        let enc = STANDARD.encode(data);
        let sig =
            STANDARD.encode(signer().sign_bytes(format!("{}{enc}", kind.prefix()).as_bytes()));
        armor(
            kind,
            &json!({"enc": enc, "sig": sig, "alg": "base64+ed25519"}),
        )
    }

    #[test]
    fn issue_refuses_a_dataset_that_is_not_json() {
        let err = issue(
            &signer(),
            FileKind::License,
            FileAlgorithm::Base64Ed25519,
            b"{",
            b"",
        );
        assert!(matches!(err, Err(LicenseFileError::BadDataset(_))));
    }

    #[test]
    fn algorithm_names() {
        for alg in [
            FileAlgorithm::Base64Ed25519,
            FileAlgorithm::Aes256GcmEd25519,
        ] {
            assert_eq!(FileAlgorithm::parse(alg.as_str()).unwrap(), alg);
        }
        assert_eq!(FileAlgorithm::Base64Ed25519.as_str(), "base64+ed25519");
        assert_eq!(
            FileAlgorithm::Aes256GcmEd25519.as_str(),
            "aes-256-gcm+ed25519"
        );
        assert!(matches!(
            FileAlgorithm::parse("aes-256-gcm%2Bed25519"),
            Err(LicenseFileError::UnknownAlgorithm(_))
        ));
        assert_eq!(FileKind::License.prefix(), "license/");
        assert_eq!(FileKind::Machine.prefix(), "machine/");
    }
}
