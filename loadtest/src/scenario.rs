//! What the virtual clients send: native validations (one key, keys drawn uniformly, or a mixed
//! fleet), KeyAuth flows (init → license → check on 1.2 or 1.3, answers verified), Keygen's
//! signed `validate-key` (a sample of answers verified), Panda's legacy `v2_validation` and
//! execution pushes, Junkie's `verifyOpen`, and CyberLicense's `/api/license/validate`. Each
//! connection drives its own [`Client`], which writes the next request, whole, into a buffer it
//! reuses (no allocation per request; a fixed request is built once) and judges its answer.

use std::borrow::Cow;
use std::io::Write as _;
use std::sync::Arc;

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::http1::Answer;
use crate::stats::ErrorKind;

/// Which KeyAuth step a flow repeats once it is logged in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// init → license → check, again and again (each iteration a new session).
    Flow,
    /// init → license, then `license` on the same session (an already activated key).
    License,
    /// init → license, then `check` on the same session.
    Check,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAuthVersion {
    V1_2,
    V1_3,
}

#[derive(Clone)]
pub enum Scenario {
    /// `POST /v1/validate` with keys drawn uniformly from `keys` (one key: the cache-hit case;
    /// more keys than the cache holds: the cold-key case).
    Validate {
        app: String,
        keys: Arc<Vec<String>>,
        hwid: Option<String>,
    },
    /// A fleet: most requests validate known keys, `unknown` of them send keys that do not exist
    /// and `activations` of them bind a new HWID (a write; use keys without a HWID limit).
    Mixed {
        app: String,
        keys: Arc<Vec<String>>,
        unknown: f64,
        activations: f64,
    },
    /// Every key once, in order, across all connections (a shared cursor): fills a cache with
    /// distinct keys. With `spoof_addresses`, each request claims a new client address in
    /// `X-Forwarded-For` (for a validator that trusts this host as a proxy).
    Sweep {
        app: String,
        keys: Arc<Vec<String>>,
        cursor: Arc<std::sync::atomic::AtomicUsize>,
        spoof_addresses: bool,
    },
    /// KeyAuth's client flow with already activated keys: each iteration is init → license →
    /// check, each step measured on its own; every answer's signature is verified.
    KeyAuth {
        version: KeyAuthVersion,
        name: String,
        owner: String,
        secret: String,
        keys: Arc<Vec<String>>,
        hwid: String,
        /// 1.3: the deployment's Ed25519 public key (`GET /v1/signing-keys`).
        public_key: Option<Box<VerifyingKey>>,
        repeat: Repeat,
        /// Verify the signature of one answer in this many (1: every answer). Verifying an
        /// Ed25519 signature costs the generator about twice what signing costs the server, so a
        /// 1.3 run that checks every answer measures the generator; the report says how many
        /// were verified.
        verify_every: u32,
    },
    /// Keygen's `POST /keygen/v1/licenses/actions/validate-key` (`{"meta":{"key":…}}`, no
    /// `Authorization`: the key is the credential), keys drawn uniformly. Every answer is a 200
    /// signed JSON:API document; one in `verify_every` has its `Keygen-Signature` (and `Digest`)
    /// verified and its `meta` read: a bad signature is a `signature` error, anything but
    /// `"valid":true,"code":"VALID"` a `refused` one.
    KeygenValidateKey {
        keys: Arc<Vec<String>>,
        /// The deployment's Ed25519 public key, hex (`GET /v1/signing-keys`).
        public_key: String,
        verify_every: u32,
    },
    /// Panda Auth's legacy `GET /v2_validation?key=K&service=S&hwid=H`, the query concatenated
    /// unencoded as Panda's clients send it, keys drawn uniformly. One answer in `verify_every`
    /// is parsed: anything but `"V2_Authentication":"success"` is a `refused` error.
    PandaV2Validation {
        service: String,
        keys: Arc<Vec<String>>,
        hwid: String,
        verify_every: u32,
    },
    /// Junkie's `POST /api/v1/whitelist/verifyOpen` `{key, service, identifier, hwid}` (the
    /// `identifier`, the account's integer id, as its SDK sends it: a string), keys drawn
    /// uniformly. One answer in `verify_every` must say `"valid":true` and `"KEY_VALID"`.
    JunkieVerifyOpen {
        service: String,
        identifier: String,
        keys: Arc<Vec<String>>,
        hwid: String,
        verify_every: u32,
    },
    /// Panda's `POST /api/push-execution-count?apiKey=K` (no body): every answer must say
    /// `"success":true`.
    PandaPushExecution { api_key: String },
    /// CyberLicense's `POST /api/license/validate` `{key, ip, hwid}`, keys drawn uniformly. One
    /// answer in `verify_every` must say `"success":true` and `"valid":true`. `consumption`:
    /// the keys are consumption licenses, each valid answer spending a credit (the write path);
    /// it names the step `cyberlicense-consumption` instead of `cyberlicense-validate`.
    CyberLicenseValidate {
        keys: Arc<Vec<String>>,
        ip: String,
        hwid: String,
        consumption: bool,
        verify_every: u32,
    },
}

/// CyberLicense's validation, under the validator's root.
pub const CYBERLICENSE_VALIDATE: &str = "/api/license/validate";

/// Junkie's open verification, under the validator's root.
pub const JUNKIE_VERIFY_OPEN: &str = "/api/v1/whitelist/verifyOpen";

/// The request target of Keygen's validate-key under the validator's `/keygen` base URL: what
/// the answer's signature covers, with the `Host` as sent.
pub const KEYGEN_VALIDATE_KEY: &str = "/keygen/v1/licenses/actions/validate-key";

impl Scenario {
    /// The virtual client of one connection to `authority` (the `Host` it sends).
    pub fn client(&self, seed: u64, authority: &str) -> Client {
        let head = |path: &str, content_type: &str| {
            format!("POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: {content_type}\r\n")
                .into_bytes()
        };
        let keyauth_path = match self {
            Scenario::KeyAuth {
                version: KeyAuthVersion::V1_3,
                ..
            } => "/api/1.3/",
            _ => "/api/1.2/",
        };
        let mut keygen_head = head(KEYGEN_VALIDATE_KEY, "application/vnd.api+json");
        keygen_head.extend_from_slice(b"accept: application/vnd.api+json\r\n");
        Client {
            scenario: self.clone(),
            rng: SmallRng::seed_from_u64(seed),
            phase: Phase::Init,
            session: String::new(),
            enckey: format!("{:016x}", seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            validate_head: head("/v1/validate", "application/json"),
            keyauth_head: head(keyauth_path, "application/x-www-form-urlencoded"),
            keygen_head,
            junkie_head: head(JUNKIE_VERIFY_OPEN, "application/json"),
            cyberlicense_head: head(CYBERLICENSE_VALIDATE, "application/json"),
            authority: authority.to_string(),
            request: Vec::with_capacity(512),
            body: Vec::with_capacity(256),
            fixed: false,
            answers: 0,
            scratch: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Init,
    License,
    Check,
}

pub struct Client {
    scenario: Scenario,
    rng: SmallRng,
    phase: Phase,
    session: String,
    enckey: String,
    /// Request line, host and content type of each kind of request.
    validate_head: Vec<u8>,
    keyauth_head: Vec<u8>,
    keygen_head: Vec<u8>,
    junkie_head: Vec<u8>,
    cyberlicense_head: Vec<u8>,
    /// The `Host` sent (a Keygen signature covers it).
    authority: String,
    /// The request last written, whole; with `fixed`, the one every request repeats.
    request: Vec<u8>,
    body: Vec<u8>,
    fixed: bool,
    /// Answers judged, for sampling signature checks.
    answers: u64,
    /// Timestamp and body of a 1.3 answer: the signed message.
    scratch: Vec<u8>,
}

fn pick<'a>(rng: &mut SmallRng, keys: &'a [String]) -> &'a str {
    if keys.is_empty() {
        return "";
    }
    &keys[rng.random_range(0..keys.len())]
}

/// Appends a JSON string (quoted, escaped).
fn json_str(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends `name=value` (form-encoded), `&`-separated from what precedes it.
fn form_pair(out: &mut Vec<u8>, name: &str, value: &str) {
    if !out.is_empty() {
        out.push(b'&');
    }
    out.extend_from_slice(name.as_bytes());
    out.push(b'=');
    for part in form_urlencoded::byte_serialize(value.as_bytes()) {
        out.extend_from_slice(part.as_bytes());
    }
}

/// `{"app":…,"key":…,"hwid":…}` into `out`.
fn validate_body(out: &mut Vec<u8>, app: &str, key: &str, hwid: Option<&str>) {
    out.clear();
    out.extend_from_slice(b"{\"app\":");
    json_str(out, app);
    out.extend_from_slice(b",\"key\":");
    json_str(out, key);
    out.extend_from_slice(b",\"hwid\":");
    match hwid {
        Some(h) => json_str(out, h),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

/// `{"meta":{"key":…}}` into `out`.
fn keygen_validate_key_body(out: &mut Vec<u8>, key: &str) {
    out.clear();
    out.extend_from_slice(b"{\"meta\":{\"key\":");
    json_str(out, key);
    out.extend_from_slice(b"}}");
}

/// `{"key":…,"service":…,"identifier":…,"hwid":…}` into `out`.
fn junkie_verify_body(out: &mut Vec<u8>, key: &str, service: &str, identifier: &str, hwid: &str) {
    out.clear();
    out.extend_from_slice(b"{\"key\":");
    json_str(out, key);
    out.extend_from_slice(b",\"service\":");
    json_str(out, service);
    out.extend_from_slice(b",\"identifier\":");
    json_str(out, identifier);
    out.extend_from_slice(b",\"hwid\":");
    json_str(out, hwid);
    out.push(b'}');
}

/// `{"key":…,"ip":…,"hwid":…}` into `out`.
fn cyberlicense_validate_body(out: &mut Vec<u8>, key: &str, ip: &str, hwid: &str) {
    out.clear();
    out.extend_from_slice(b"{\"key\":");
    json_str(out, key);
    out.extend_from_slice(b",\"ip\":");
    json_str(out, ip);
    out.extend_from_slice(b",\"hwid\":");
    json_str(out, hwid);
    out.push(b'}');
}

/// What CyberLicense's validation says (`license` is skipped unparsed).
#[derive(serde::Deserialize)]
struct CyberLicenseVerdict {
    success: bool,
    valid: bool,
}

/// What Panda's legacy validation says (the rest is skipped unparsed).
#[derive(serde::Deserialize)]
struct PandaLegacy<'a> {
    #[serde(borrow, rename = "V2_Authentication")]
    v2_authentication: Cow<'a, str>,
}

/// What Junkie's `verifyOpen` says.
#[derive(serde::Deserialize)]
struct JunkieVerdict<'a> {
    valid: bool,
    #[serde(borrow)]
    message: Cow<'a, str>,
}

/// What a Keygen validation says (`meta` only; `data`, the license, is skipped unparsed).
#[derive(serde::Deserialize)]
struct KeygenAnswer<'a> {
    #[serde(borrow)]
    meta: KeygenMeta<'a>,
}

#[derive(serde::Deserialize)]
struct KeygenMeta<'a> {
    valid: bool,
    #[serde(borrow)]
    code: Cow<'a, str>,
}

/// Checks a signed Keygen answer as an SDK does (`Digest` against the body, then
/// `Keygen-Signature` over the request target, `Host`, `Date` and `Digest`), then its verdict.
fn check_keygen_answer(answer: &Answer<'_>, public_key: &str, host: &str) -> Result<(), ErrorKind> {
    let text = |name| {
        answer
            .header(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .ok_or(ErrorKind::Signature)
    };
    keyward_shared::keygen_signature::verify_response(
        public_key,
        "POST",
        KEYGEN_VALIDATE_KEY,
        host,
        text("date")?,
        text("digest")?,
        text("keygen-signature")?,
        answer.body,
    )
    .map_err(|_| ErrorKind::Signature)?;
    let doc: KeygenAnswer = serde_json::from_slice(answer.body).map_err(|_| ErrorKind::Protocol)?;
    if !doc.meta.valid || doc.meta.code != "VALID" {
        return Err(ErrorKind::Refused);
    }
    Ok(())
}

/// What a KeyAuth answer says (only the fields the flow reads; the rest is skipped unparsed).
#[derive(serde::Deserialize)]
struct Verdict<'a> {
    #[serde(default)]
    success: Option<bool>,
    #[serde(borrow, default)]
    sessionid: Option<Cow<'a, str>>,
}

impl Client {
    /// Counts an answer; whether it is one of the 1 in `every` that are checked.
    fn sampled(&mut self, every: u32) -> bool {
        self.answers += 1;
        self.answers.is_multiple_of(u64::from(every.max(1)))
    }

    /// Head (and an `X-Forwarded-For`) and `body` as one request in `request`.
    fn assemble(
        request: &mut Vec<u8>,
        head: &[u8],
        forwarded_for: Option<std::net::Ipv4Addr>,
        body: &[u8],
    ) {
        request.clear();
        request.extend_from_slice(head);
        if let Some(address) = forwarded_for {
            let _ = write!(request, "x-forwarded-for: {address}\r\n");
        }
        let _ = write!(request, "content-length: {}\r\n\r\n", body.len());
        request.extend_from_slice(body);
    }

    /// Writes the next request; returns its step name and the request, ready to send.
    pub fn next_request(&mut self) -> (&'static str, &[u8]) {
        let name = match &self.scenario {
            Scenario::Validate { app, keys, hwid } => {
                if self.fixed {
                    return ("validate", &self.request);
                }
                let key = pick(&mut self.rng, keys);
                validate_body(&mut self.body, app, key, hwid.as_deref());
                Self::assemble(&mut self.request, &self.validate_head, None, &self.body);
                // One key: every request is this one.
                self.fixed = keys.len() == 1;
                "validate"
            }
            Scenario::Sweep {
                app,
                keys,
                cursor,
                spoof_addresses,
            } => {
                let i = cursor.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let key = keys.get(i % keys.len().max(1)).map_or("", String::as_str);
                validate_body(&mut self.body, app, key, None);
                // 10.0.0.0/8 upwards: distinct for the first 2^32 requests.
                let address = std::net::Ipv4Addr::from(0x0a00_0000u32.wrapping_add(i as u32));
                let forwarded_for = spoof_addresses.then_some(address);
                Self::assemble(
                    &mut self.request,
                    &self.validate_head,
                    forwarded_for,
                    &self.body,
                );
                "sweep"
            }
            Scenario::Mixed {
                app,
                keys,
                unknown,
                activations,
            } => {
                let roll: f64 = self.rng.random();
                let name = if roll < *unknown {
                    let key = format!("UNKNOWN-{:016x}", self.rng.random::<u64>());
                    validate_body(&mut self.body, app, &key, None);
                    "unknown"
                } else if roll < unknown + activations {
                    let hwid = format!("hw-{:016x}", self.rng.random::<u64>());
                    let key = pick(&mut self.rng, keys);
                    validate_body(&mut self.body, app, key, Some(&hwid));
                    "activation"
                } else {
                    let key = pick(&mut self.rng, keys);
                    validate_body(&mut self.body, app, key, Some("loadtest-machine"));
                    "known"
                };
                Self::assemble(&mut self.request, &self.validate_head, None, &self.body);
                name
            }
            Scenario::KeyAuth {
                version,
                name,
                owner,
                keys,
                hwid,
                ..
            } => {
                let body = &mut self.body;
                body.clear();
                form_pair(body, "name", name);
                form_pair(body, "ownerid", owner);
                let step = match self.phase {
                    Phase::Init => {
                        form_pair(body, "type", "init");
                        form_pair(body, "ver", "1.0");
                        if *version == KeyAuthVersion::V1_2 {
                            form_pair(body, "enckey", &self.enckey);
                        }
                        "init"
                    }
                    Phase::License => {
                        let key = pick(&mut self.rng, keys);
                        form_pair(body, "type", "license");
                        form_pair(body, "key", key);
                        form_pair(body, "hwid", hwid);
                        form_pair(body, "sessionid", &self.session);
                        "license"
                    }
                    Phase::Check => {
                        form_pair(body, "type", "check");
                        form_pair(body, "sessionid", &self.session);
                        "check"
                    }
                };
                Self::assemble(&mut self.request, &self.keyauth_head, None, &self.body);
                step
            }
            Scenario::KeygenValidateKey { keys, .. } => {
                if self.fixed {
                    return ("validate-key", &self.request);
                }
                let key = pick(&mut self.rng, keys);
                keygen_validate_key_body(&mut self.body, key);
                Self::assemble(&mut self.request, &self.keygen_head, None, &self.body);
                // One key: every request is this one.
                self.fixed = keys.len() == 1;
                "validate-key"
            }
            Scenario::PandaV2Validation {
                service,
                keys,
                hwid,
                ..
            } => {
                if self.fixed {
                    return ("v2_validation", &self.request);
                }
                let key = pick(&mut self.rng, keys);
                self.request.clear();
                // Unencoded, as Panda's clients concatenate it.
                let _ = write!(
                    self.request,
                    "GET /v2_validation?key={key}&service={service}&hwid={hwid} HTTP/1.1\r\nhost: {}\r\n\r\n",
                    self.authority
                );
                self.fixed = keys.len() == 1;
                "v2_validation"
            }
            Scenario::JunkieVerifyOpen {
                service,
                identifier,
                keys,
                hwid,
                ..
            } => {
                if self.fixed {
                    return ("verifyOpen", &self.request);
                }
                let key = pick(&mut self.rng, keys);
                junkie_verify_body(&mut self.body, key, service, identifier, hwid);
                Self::assemble(&mut self.request, &self.junkie_head, None, &self.body);
                self.fixed = keys.len() == 1;
                "verifyOpen"
            }
            Scenario::CyberLicenseValidate {
                keys,
                ip,
                hwid,
                consumption,
                ..
            } => {
                let step = if *consumption {
                    "cyberlicense-consumption"
                } else {
                    "cyberlicense-validate"
                };
                if self.fixed {
                    return (step, &self.request);
                }
                let key = pick(&mut self.rng, keys);
                cyberlicense_validate_body(&mut self.body, key, ip, hwid);
                Self::assemble(&mut self.request, &self.cyberlicense_head, None, &self.body);
                self.fixed = keys.len() == 1;
                step
            }
            Scenario::PandaPushExecution { api_key } => {
                if self.fixed {
                    return ("push-execution-count", &self.request);
                }
                self.request.clear();
                let _ = write!(
                    self.request,
                    "POST /api/push-execution-count?apiKey={api_key} HTTP/1.1\r\nhost: {}\r\ncontent-length: 0\r\n\r\n",
                    self.authority
                );
                self.fixed = true;
                "push-execution-count"
            }
        };
        (name, &self.request)
    }

    /// Judges an answer (status already 2xx) and advances the flow; `Ok(true)` when its
    /// signature was verified, `Ok(false)` when it was not sampled or is not signed.
    pub fn check(&mut self, answer: &Answer<'_>) -> Result<bool, ErrorKind> {
        match &self.scenario {
            Scenario::PandaV2Validation { verify_every, .. } => {
                if !self.sampled(*verify_every) {
                    return Ok(false);
                }
                let doc: PandaLegacy =
                    serde_json::from_slice(answer.body).map_err(|_| ErrorKind::Protocol)?;
                if doc.v2_authentication != "success" {
                    return Err(ErrorKind::Refused);
                }
                return Ok(true);
            }
            Scenario::JunkieVerifyOpen { verify_every, .. } => {
                if !self.sampled(*verify_every) {
                    return Ok(false);
                }
                let doc: JunkieVerdict =
                    serde_json::from_slice(answer.body).map_err(|_| ErrorKind::Protocol)?;
                if !doc.valid || doc.message != "KEY_VALID" {
                    return Err(ErrorKind::Refused);
                }
                return Ok(true);
            }
            Scenario::CyberLicenseValidate { verify_every, .. } => {
                if !self.sampled(*verify_every) {
                    return Ok(false);
                }
                let doc: CyberLicenseVerdict =
                    serde_json::from_slice(answer.body).map_err(|_| ErrorKind::Protocol)?;
                if !doc.success || !doc.valid {
                    return Err(ErrorKind::Refused);
                }
                return Ok(true);
            }
            Scenario::PandaPushExecution { .. } => {
                let doc: Verdict =
                    serde_json::from_slice(answer.body).map_err(|_| ErrorKind::Protocol)?;
                if doc.success != Some(true) {
                    return Err(ErrorKind::Refused);
                }
                return Ok(true);
            }
            _ => {}
        }
        if let Scenario::KeygenValidateKey {
            public_key,
            verify_every,
            ..
        } = &self.scenario
        {
            self.answers += 1;
            if !self
                .answers
                .is_multiple_of(u64::from((*verify_every).max(1)))
            {
                return Ok(false);
            }
            check_keygen_answer(answer, public_key, &self.authority)?;
            return Ok(true);
        }
        let Scenario::KeyAuth {
            version,
            secret,
            public_key,
            repeat,
            verify_every,
            ..
        } = &self.scenario
        else {
            return Ok(false);
        };
        let phase = self.phase;
        // Whatever happens, a failed step restarts the flow with a new session.
        self.phase = Phase::Init;
        self.answers += 1;
        let body = answer.body;
        let verify = self
            .answers
            .is_multiple_of(u64::from((*verify_every).max(1)));
        if verify {
            match version {
                KeyAuthVersion::V1_2 => {
                    let expected = match phase {
                        Phase::Init => keyward_shared::signing::hmac_hex(secret.as_bytes(), body),
                        _ => {
                            let key = format!("{}-{secret}", self.enckey);
                            keyward_shared::signing::hmac_hex(key.as_bytes(), body)
                        }
                    };
                    if answer.header("signature") != Some(expected.as_bytes()) {
                        return Err(ErrorKind::Signature);
                    }
                }
                KeyAuthVersion::V1_3 => {
                    let (Some(pk), Some(sig), Some(ts)) = (
                        public_key,
                        answer.header("x-signature-ed25519"),
                        answer.header("x-signature-timestamp"),
                    ) else {
                        return Err(ErrorKind::Signature);
                    };
                    let mut raw = [0u8; 64];
                    hex::decode_to_slice(sig, &mut raw).map_err(|_| ErrorKind::Signature)?;
                    self.scratch.clear();
                    self.scratch.extend_from_slice(ts);
                    self.scratch.extend_from_slice(body);
                    pk.verify(&self.scratch, &Signature::from_bytes(&raw))
                        .map_err(|_| ErrorKind::Signature)?;
                }
            }
        }
        let verdict: Verdict = serde_json::from_slice(body).map_err(|_| ErrorKind::Protocol)?;
        if verdict.success != Some(true) {
            return Err(ErrorKind::Refused);
        }
        self.phase = match (phase, repeat) {
            (Phase::Init, _) => {
                self.session.clear();
                if let Some(sid) = &verdict.sessionid {
                    self.session.push_str(sid);
                }
                Phase::License
            }
            (Phase::License, Repeat::License) => Phase::License,
            (Phase::License, _) => Phase::Check,
            (Phase::Check, Repeat::Check) => Phase::Check,
            (Phase::Check, _) => Phase::Init,
        };
        Ok(verify)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_fleet_draws_each_kind_in_its_share() {
        let s = Scenario::Mixed {
            app: "a".into(),
            keys: Arc::new(vec!["K1".into(), "K2".into()]),
            unknown: 0.2,
            activations: 0.1,
        };
        let mut c = s.client(7, "127.0.0.1:1");
        let mut counts = std::collections::HashMap::new();
        for _ in 0..10_000 {
            *counts.entry(c.next_request().0).or_insert(0) += 1;
        }
        let share = |k: &str| f64::from(counts[k]) / 10_000.0;
        assert!((share("unknown") - 0.2).abs() < 0.03, "{counts:?}");
        assert!((share("activation") - 0.1).abs() < 0.03, "{counts:?}");
        assert!((share("known") - 0.7).abs() < 0.03, "{counts:?}");
    }

    /// The request's step, its body, and whether its head is well-formed HTTP/1.1 with the
    /// right length.
    fn parse(c: &mut Client) -> (&'static str, String) {
        let (name, req) = c.next_request();
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Request::new(&mut headers);
        let httparse::Status::Complete(len) = r.parse(req).unwrap() else {
            panic!("incomplete head")
        };
        let length: usize = r
            .headers
            .iter()
            .find(|h| h.name == "content-length")
            .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
            .unwrap();
        assert_eq!(req.len() - len, length);
        assert!(r
            .headers
            .iter()
            .any(|h| h.name == "host" && h.value == b"h:1"));
        (name, String::from_utf8(req[len..].to_vec()).unwrap())
    }

    fn signed(secret: &str, body: &'static [u8]) -> (String, Vec<HeaderSpan>) {
        let buf = format!(
            "signature{}",
            keyward_shared::signing::hmac_hex(secret.as_bytes(), body)
        );
        (buf, vec![(0..9, 9..9 + 64)])
    }

    use crate::http1::HeaderSpan;

    #[test]
    fn validate_requests_are_valid_json_whatever_the_key() {
        let s = Scenario::Validate {
            app: "a".into(),
            keys: Arc::new(vec![r#"K"\1"#.into(), "K2".into()]),
            hwid: None,
        };
        let mut c = s.client(3, "h:1");
        for _ in 0..20 {
            let (name, body) = parse(&mut c);
            assert_eq!(name, "validate");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(v["key"] == r#"K"\1"# || v["key"] == "K2", "{v}");
            assert_eq!(v["hwid"], serde_json::Value::Null);
        }
        // One key: the same request every time, built once.
        let one = Scenario::Validate {
            app: "a".into(),
            keys: Arc::new(vec!["K".into()]),
            hwid: Some("m".into()),
        };
        let mut c = one.client(3, "h:1");
        let first = parse(&mut c);
        assert_eq!(parse(&mut c), first);
        assert_eq!(first.1, r#"{"app":"a","key":"K","hwid":"m"}"#);
    }

    #[test]
    fn a_sweep_claims_one_address_per_request() {
        let s = Scenario::Sweep {
            app: "a".into(),
            keys: Arc::new(vec!["K1".into(), "K2".into()]),
            cursor: Arc::default(),
            spoof_addresses: true,
        };
        let mut c = s.client(1, "h:1");
        let req = String::from_utf8(c.next_request().1.to_vec()).unwrap();
        assert!(req.contains("x-forwarded-for: 10.0.0.0\r\n"), "{req}");
        let req = String::from_utf8(c.next_request().1.to_vec()).unwrap();
        assert!(
            req.contains("x-forwarded-for: 10.0.0.1\r\n") && req.contains("K2"),
            "{req}"
        );
    }

    #[test]
    fn keyauth_flow_advances_only_on_verified_success_and_restarts_on_failure() {
        let secret = "s3cret".to_string();
        let s = Scenario::KeyAuth {
            version: KeyAuthVersion::V1_2,
            name: "app".into(),
            owner: "0123456789".into(),
            secret: secret.clone(),
            keys: Arc::new(vec!["KEY".into()]),
            hwid: "h".repeat(20),
            public_key: None,
            repeat: Repeat::Flow,
            verify_every: 1,
        };
        let mut c = s.client(1, "h:1");
        let (step, body) = parse(&mut c);
        assert_eq!(step, "init");
        assert!(body.starts_with("name=app&ownerid=0123456789&type=init&ver=1.0&enckey="));
        let body = br#"{"success":true,"message":"Initialized","sessionid":"abc"}"#;
        let (buf, headers) = signed(&secret, body);
        let answer = Answer::from_parts(200, buf.as_bytes(), &headers, body);
        assert_eq!(c.check(&answer), Ok(true));
        let (step, body) = parse(&mut c);
        assert_eq!(step, "license");
        assert!(body.contains("sessionid=abc"), "{body}");
        // A forged answer is a signature error and the flow starts over.
        let forged = Answer::from_parts(200, buf.as_bytes(), &headers, b"{\"success\":true}");
        assert_eq!(c.check(&forged), Err(ErrorKind::Signature));
        assert_eq!(c.next_request().0, "init");
        // A verified refusal restarts it too.
        let refused = br#"{"success":false,"message":"no"}"#;
        let (buf, headers) = signed(&secret, refused);
        let answer = Answer::from_parts(200, buf.as_bytes(), &headers, refused);
        assert_eq!(c.check(&answer), Err(ErrorKind::Refused));
    }

    /// A signed Keygen answer: its header buffer and spans (date, digest, keygen-signature).
    fn keygen_signed(
        signer: &keyward_shared::signing::Ed25519Signer,
        host: &str,
        body: &[u8],
    ) -> (String, Vec<HeaderSpan>) {
        let h = keyward_shared::keygen_signature::sign_response(
            signer,
            "00000000-0000-0000-0000-000000000000",
            "POST",
            KEYGEN_VALIDATE_KEY,
            host,
            body,
            std::time::SystemTime::now(),
        );
        let mut buf = String::new();
        let mut spans = Vec::new();
        for (name, value) in [
            ("Date", &h.date),
            ("Digest", &h.digest),
            ("Keygen-Signature", &h.signature),
        ] {
            let n = buf.len()..buf.len() + name.len();
            buf.push_str(name);
            let v = buf.len()..buf.len() + value.len();
            buf.push_str(value);
            spans.push((n, v));
        }
        (buf, spans)
    }

    #[test]
    fn keygen_validate_key_posts_the_key_as_json_api() {
        let s = Scenario::KeygenValidateKey {
            keys: Arc::new(vec![r#"K"\1"#.into(), "K2".into()]),
            public_key: String::new(),
            verify_every: 1,
        };
        let mut c = s.client(3, "h:1");
        for _ in 0..20 {
            let (name, body) = parse(&mut c);
            assert_eq!(name, "validate-key");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(
                v["meta"]["key"] == r#"K"\1"# || v["meta"]["key"] == "K2",
                "{v}"
            );
            assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
        }
        let req = String::from_utf8(c.next_request().1.to_vec()).unwrap();
        assert!(
            req.starts_with(&format!("POST {KEYGEN_VALIDATE_KEY} HTTP/1.1\r\n")),
            "{req}"
        );
        assert!(
            req.contains("content-type: application/vnd.api+json\r\n")
                && !req.to_ascii_lowercase().contains("authorization"),
            "{req}"
        );
        // One key: the same request every time, built once.
        let one = Scenario::KeygenValidateKey {
            keys: Arc::new(vec!["K".into()]),
            public_key: String::new(),
            verify_every: 1,
        };
        let mut c = one.client(3, "h:1");
        let first = parse(&mut c);
        assert_eq!(parse(&mut c), first);
        assert_eq!(first.1, r#"{"meta":{"key":"K"}}"#);
    }

    #[test]
    fn keygen_answers_are_verified_one_in_n_and_must_say_valid() {
        let signer = keyward_shared::signing::Ed25519Signer::generate();
        let s = Scenario::KeygenValidateKey {
            keys: Arc::new(vec!["KEY".into()]),
            public_key: signer.public_key_hex(),
            verify_every: 4,
        };
        let mut c = s.client(1, "h:1");
        let valid: &[u8] =
            br#"{"data":{"id":"x","type":"licenses"},"meta":{"code":"VALID","detail":"is valid","ts":"t","valid":true}}"#;
        let (buf, headers) = keygen_signed(&signer, "h:1", valid);
        let good = Answer::from_parts(200, buf.as_bytes(), &headers, valid);
        let verified: Vec<bool> = (0..8).map(|_| c.check(&good).unwrap()).collect();
        assert_eq!(
            verified,
            [false, false, false, true, false, false, false, true]
        );
        let mut every = s.clone();
        if let Scenario::KeygenValidateKey { verify_every, .. } = &mut every {
            *verify_every = 1;
        }
        let mut c = every.client(1, "h:1");
        assert_eq!(c.check(&good), Ok(true));
        // Signed for another host, or a body that is not the one signed: a signature error.
        let (buf, headers) = keygen_signed(&signer, "h:2", valid);
        let elsewhere = Answer::from_parts(200, buf.as_bytes(), &headers, valid);
        assert_eq!(c.check(&elsewhere), Err(ErrorKind::Signature));
        let (buf, headers) = keygen_signed(&signer, "h:1", valid);
        let tampered = br#"{"data":null,"meta":{"code":"VALID","valid":true}}"#;
        let forged = Answer::from_parts(200, buf.as_bytes(), &headers, tampered);
        assert_eq!(c.check(&forged), Err(ErrorKind::Signature));
        // Unsigned (e.g. the bare baseline's answer): a signature error too.
        let bare = Answer::from_parts(200, b"", &[], br#"{"a":"xx"}"#);
        assert_eq!(c.check(&bare), Err(ErrorKind::Signature));
        // Verified, but not VALID: refused.
        for body in [
            &br#"{"data":null,"meta":{"code":"NOT_FOUND","detail":"does not exist","valid":false}}"#[..],
            &br#"{"data":{},"meta":{"code":"VALID","valid":false}}"#[..],
        ] {
            let (buf, headers) = keygen_signed(&signer, "h:1", body);
            let answer = Answer::from_parts(200, buf.as_bytes(), &headers, body);
            assert_eq!(c.check(&answer), Err(ErrorKind::Refused));
        }
    }

    /// The request's line and head of a request without a body.
    fn head_only(c: &mut Client) -> (&'static str, String) {
        let (name, req) = c.next_request();
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Request::new(&mut headers);
        let httparse::Status::Complete(len) = r.parse(req).unwrap() else {
            panic!("incomplete head")
        };
        assert_eq!(len, req.len(), "nothing after the head");
        (name, String::from_utf8(req.to_vec()).unwrap())
    }

    #[test]
    fn panda_v2_validation_sends_the_query_unencoded_and_checks_a_sample() {
        let s = Scenario::PandaV2Validation {
            service: "my-svc".into(),
            keys: Arc::new(vec!["KEY_1-a".into()]),
            hwid: "hw+id/1==".into(),
            verify_every: 2,
        };
        let mut c = s.client(1, "h:1");
        let (name, req) = head_only(&mut c);
        assert_eq!(name, "v2_validation");
        assert_eq!(
            req,
            "GET /v2_validation?key=KEY_1-a&service=my-svc&hwid=hw+id/1== HTTP/1.1\r\nhost: h:1\r\n\r\n"
        );
        // One key: the same request every time, built once.
        assert_eq!(head_only(&mut c).1, req);
        let good: &[u8] = br#"{"OwnerSecretID":"x","Registered_ServiceID":"my-svc","Authentication":"success","V2_Authentication":"success","Key_Information":{}}"#;
        let bad: &[u8] = br#"{"OwnerSecretID":"","Registered_ServiceID":"my-svc","Authentication":"failed","V2_Authentication":"failed","Key_Information":{}}"#;
        let answer = |body| Answer::from_parts(200, b"", &[], body);
        // 1 in 2 parsed: the first is not looked at, the second is.
        assert_eq!(c.check(&answer(bad)), Ok(false));
        assert_eq!(c.check(&answer(bad)), Err(ErrorKind::Refused));
        assert_eq!(c.check(&answer(good)), Ok(false));
        assert_eq!(c.check(&answer(good)), Ok(true));
        // The bare baseline's body is no Panda answer.
        c.check(&answer(br#"{"a":"xx"}"#)).unwrap();
        assert_eq!(c.check(&answer(br#"{"a":"xx"}"#)), Err(ErrorKind::Protocol));
    }

    #[test]
    fn junkie_verify_open_posts_its_four_fields_and_wants_key_valid() {
        let s = Scenario::JunkieVerifyOpen {
            service: "bench \"svc\"".into(),
            identifier: "42".into(),
            keys: Arc::new(vec!["K1".into(), "K2".into()]),
            hwid: "m".into(),
            verify_every: 1,
        };
        let mut c = s.client(3, "h:1");
        for _ in 0..10 {
            let (name, body) = parse(&mut c);
            assert_eq!(name, "verifyOpen");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert!(v["key"] == "K1" || v["key"] == "K2", "{v}");
            assert_eq!(v["service"], "bench \"svc\"");
            assert_eq!(v["identifier"], "42");
            assert_eq!(v["hwid"], "m");
            assert_eq!(v.as_object().unwrap().len(), 4, "{v}");
        }
        let req = String::from_utf8(c.next_request().1.to_vec()).unwrap();
        assert!(
            req.starts_with(&format!("POST {JUNKIE_VERIFY_OPEN} HTTP/1.1\r\n"))
                && req.contains("content-type: application/json\r\n"),
            "{req}"
        );
        let answer = |body| Answer::from_parts(200, b"", &[], body);
        let valid: &[u8] =
            br#"{"valid":true,"message":"KEY_VALID","is_premium":false,"expires_at":null}"#;
        assert_eq!(c.check(&answer(valid)), Ok(true));
        for refused in [
            &br#"{"valid":false,"message":"KEY_INVALID","is_premium":false,"expires_at":null}"#[..],
            &br#"{"valid":true,"message":"KEYLESS","is_premium":false,"expires_at":null}"#[..],
        ] {
            assert_eq!(c.check(&answer(refused)), Err(ErrorKind::Refused));
        }
        assert_eq!(c.check(&answer(b"{}")), Err(ErrorKind::Protocol));
    }

    #[test]
    fn cyberlicense_validate_posts_key_ip_and_hwid_and_wants_valid() {
        for (consumption, step) in [
            (false, "cyberlicense-validate"),
            (true, "cyberlicense-consumption"),
        ] {
            let s = Scenario::CyberLicenseValidate {
                keys: Arc::new(vec!["LIC-\"1\"".into()]),
                ip: "203.0.113.7".into(),
                hwid: "m".into(),
                consumption,
                verify_every: 2,
            };
            let mut c = s.client(5, "h:1");
            let (name, body) = parse(&mut c);
            assert_eq!(name, step);
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                v,
                serde_json::json!({"key": "LIC-\"1\"", "ip": "203.0.113.7", "hwid": "m"})
            );
            let req = String::from_utf8(c.next_request().1.to_vec()).unwrap();
            assert!(
                req.starts_with(&format!("POST {CYBERLICENSE_VALIDATE} HTTP/1.1\r\n"))
                    && req.contains("content-type: application/json\r\n"),
                "{req}"
            );
            let answer = |body| Answer::from_parts(200, b"", &[], body);
            let valid: &[u8] =
                br#"{"success":true,"valid":true,"license":{"key":"K","active":true}}"#;
            let refused: &[u8] = br#"{"success":false,"valid":false,"error":"License expired"}"#;
            // 1 in 2 parsed: the first is not looked at, the second is.
            assert_eq!(c.check(&answer(refused)), Ok(false));
            assert_eq!(c.check(&answer(refused)), Err(ErrorKind::Refused));
            assert_eq!(c.check(&answer(valid)), Ok(false));
            assert_eq!(c.check(&answer(valid)), Ok(true));
            c.check(&answer(b"{}")).unwrap();
            assert_eq!(c.check(&answer(b"{}")), Err(ErrorKind::Protocol));
        }
    }

    #[test]
    fn execution_pushes_carry_the_key_in_the_query_and_must_succeed() {
        let s = Scenario::PandaPushExecution {
            api_key: "pkABC123".into(),
        };
        let mut c = s.client(1, "h:1");
        let (name, req) = head_only(&mut c);
        assert_eq!(name, "push-execution-count");
        assert_eq!(
            req,
            "POST /api/push-execution-count?apiKey=pkABC123 HTTP/1.1\r\nhost: h:1\r\ncontent-length: 0\r\n\r\n"
        );
        assert_eq!(head_only(&mut c).1, req);
        let answer = |body| Answer::from_parts(200, b"", &[], body);
        let ok: &[u8] = br#"{"success":true,"message":"Execution count incremented successfully"}"#;
        // Every answer is checked.
        assert_eq!(c.check(&answer(ok)), Ok(true));
        assert_eq!(c.check(&answer(ok)), Ok(true));
        assert_eq!(
            c.check(&answer(br#"{"success":false}"#)),
            Err(ErrorKind::Refused)
        );
        assert_eq!(c.check(&answer(br#"{"a":"xx"}"#)), Err(ErrorKind::Refused));
    }

    #[test]
    fn keyauth_1_3_verifies_one_answer_in_n() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let s = Scenario::KeyAuth {
            version: KeyAuthVersion::V1_3,
            name: "app".into(),
            owner: "0123456789".into(),
            secret: String::new(),
            keys: Arc::new(vec!["KEY".into()]),
            hwid: "h".repeat(20),
            public_key: Some(Box::new(key.verifying_key())),
            repeat: Repeat::Check,
            verify_every: 4,
        };
        let mut c = s.client(1, "h:1");
        let body: &[u8] = br#"{"success":true,"sessionid":"s"}"#;
        let ts = "1700000000";
        let sig = {
            use ed25519_dalek::Signer;
            let mut msg = ts.as_bytes().to_vec();
            msg.extend_from_slice(body);
            hex::encode(key.sign(&msg).to_bytes())
        };
        let buf = format!("x-signature-ed25519{sig}x-signature-timestamp{ts}");
        let headers = vec![(0..19, 19..147), (147..168, 168..178)];
        let good = Answer::from_parts(200, buf.as_bytes(), &headers, body);
        let verified: Vec<bool> = (0..8).map(|_| c.check(&good).unwrap()).collect();
        assert_eq!(
            verified,
            [false, false, false, true, false, false, false, true]
        );
        // A forged answer fails when its turn to be verified comes.
        let forged = Answer::from_parts(200, buf.as_bytes(), &headers, br#"{"success":true}"#);
        let results: Vec<_> = (0..4).map(|_| c.check(&forged)).collect();
        assert_eq!(results[3], Err(ErrorKind::Signature));
    }
}
