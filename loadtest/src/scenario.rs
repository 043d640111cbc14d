//! What the virtual clients send: native validations (one key, keys drawn uniformly, or a mixed
//! fleet) and KeyAuth flows (init → license → check on 1.2 or 1.3, answers verified). Each
//! connection drives its own [`Client`], which yields the next request and judges its answer.

use std::sync::Arc;

use bytes::Bytes;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::stats::ErrorKind;

/// One request of a scenario.
pub struct Step {
    pub name: &'static str,
    pub path: Arc<str>,
    pub content_type: &'static str,
    pub body: Bytes,
    /// Sent as `X-Forwarded-For` (a validator that trusts the load generator as a proxy then
    /// sees this as the client address).
    pub forwarded_for: Option<String>,
}

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
    },
}

impl Scenario {
    pub fn client(&self, seed: u64) -> Client {
        Client {
            scenario: self.clone(),
            rng: SmallRng::seed_from_u64(seed),
            phase: Phase::Init,
            session: None,
            enckey: format!("{:016x}", seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            validate_path: Arc::from("/v1/validate"),
            keyauth_path: Arc::from(match self {
                Scenario::KeyAuth {
                    version: KeyAuthVersion::V1_3,
                    ..
                } => "/api/1.3/",
                _ => "/api/1.2/",
            }),
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
    session: Option<String>,
    enckey: String,
    validate_path: Arc<str>,
    keyauth_path: Arc<str>,
}

fn pick<'a>(rng: &mut SmallRng, keys: &'a [String]) -> &'a str {
    if keys.is_empty() {
        return "";
    }
    &keys[rng.random_range(0..keys.len())]
}

fn form(pairs: &[(&str, &str)]) -> Bytes {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    Bytes::from(s.finish())
}

impl Client {
    fn validate(&self, name: &'static str, app: &str, key: &str, hwid: Option<&str>) -> Step {
        let body = serde_json::json!({"app": app, "key": key, "hwid": hwid}).to_string();
        Step {
            name,
            path: self.validate_path.clone(),
            content_type: "application/json",
            body: Bytes::from(body),
            forwarded_for: None,
        }
    }

    pub fn next_step(&mut self) -> Step {
        match &self.scenario {
            Scenario::Validate { app, keys, hwid } => {
                let key = pick(&mut self.rng, keys);
                self.validate("validate", app, key, hwid.as_deref())
            }
            Scenario::Sweep {
                app,
                keys,
                cursor,
                spoof_addresses,
            } => {
                let i = cursor.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let key = keys.get(i % keys.len().max(1)).map_or("", String::as_str);
                let mut step = self.validate("sweep", app, key, None);
                if *spoof_addresses {
                    // 10.0.0.0/8 upwards: distinct for the first 2^32 requests.
                    step.forwarded_for = Some(
                        std::net::Ipv4Addr::from(0x0a00_0000u32.wrapping_add(i as u32)).to_string(),
                    );
                }
                step
            }
            Scenario::Mixed {
                app,
                keys,
                unknown,
                activations,
            } => {
                let roll: f64 = self.rng.random();
                if roll < *unknown {
                    let key = format!("UNKNOWN-{:016x}", self.rng.random::<u64>());
                    self.validate("unknown", app, &key, None)
                } else if roll < unknown + activations {
                    let hwid = format!("hw-{:016x}", self.rng.random::<u64>());
                    let key = pick(&mut self.rng, keys).to_string();
                    self.validate("activation", app, &key, Some(&hwid))
                } else {
                    let key = pick(&mut self.rng, keys).to_string();
                    self.validate("known", app, &key, Some("loadtest-machine"))
                }
            }
            Scenario::KeyAuth {
                version,
                name,
                owner,
                keys,
                hwid,
                ..
            } => {
                let base = [("name", name.as_str()), ("ownerid", owner.as_str())];
                let sid = self.session.clone().unwrap_or_default();
                let (step, params): (&'static str, Vec<(&str, &str)>) = match self.phase {
                    Phase::Init => {
                        let mut p = vec![("type", "init"), ("ver", "1.0")];
                        if *version == KeyAuthVersion::V1_2 {
                            p.push(("enckey", self.enckey.as_str()));
                        }
                        ("init", p)
                    }
                    Phase::License => {
                        let key = pick(&mut self.rng, keys).to_string();
                        let body = form(
                            &[
                                &base[..],
                                &[
                                    ("type", "license"),
                                    ("key", key.as_str()),
                                    ("hwid", hwid.as_str()),
                                    ("sessionid", sid.as_str()),
                                ],
                            ]
                            .concat(),
                        );
                        return Step {
                            name: "license",
                            path: self.keyauth_path.clone(),
                            content_type: "application/x-www-form-urlencoded",
                            body,
                            forwarded_for: None,
                        };
                    }
                    Phase::Check => ("check", vec![("type", "check"), ("sessionid", &sid)]),
                };
                Step {
                    name: step,
                    path: self.keyauth_path.clone(),
                    content_type: "application/x-www-form-urlencoded",
                    body: form(&[&base[..], &params[..]].concat()),
                    forwarded_for: None,
                }
            }
        }
    }

    /// Judges an answer (status already 2xx) and advances the flow.
    pub fn check(&mut self, headers: &hyper::HeaderMap, body: &[u8]) -> Result<(), ErrorKind> {
        let Scenario::KeyAuth {
            version,
            secret,
            public_key,
            repeat,
            ..
        } = &self.scenario
        else {
            return Ok(());
        };
        let phase = self.phase;
        // Whatever happens, a failed step restarts the flow with a new session.
        self.phase = Phase::Init;
        match version {
            KeyAuthVersion::V1_2 => {
                let key = match phase {
                    Phase::Init => secret.clone(),
                    _ => format!("{}-{secret}", self.enckey),
                };
                let expected = keyward_shared::signing::hmac_hex(key.as_bytes(), body);
                let sent = headers.get("signature").and_then(|v| v.to_str().ok());
                if sent != Some(expected.as_str()) {
                    return Err(ErrorKind::Signature);
                }
            }
            KeyAuthVersion::V1_3 => {
                let Some(pk) = public_key else {
                    return Err(ErrorKind::Signature);
                };
                let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
                let (Some(sig), Some(ts)) =
                    (get("x-signature-ed25519"), get("x-signature-timestamp"))
                else {
                    return Err(ErrorKind::Signature);
                };
                let sig = hex::decode(sig)
                    .ok()
                    .and_then(|b| Signature::from_slice(&b).ok())
                    .ok_or(ErrorKind::Signature)?;
                let mut msg = ts.as_bytes().to_vec();
                msg.extend_from_slice(body);
                pk.verify(&msg, &sig).map_err(|_| ErrorKind::Signature)?;
            }
        }
        let json: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| ErrorKind::Protocol)?;
        if json["success"] != true {
            return Err(ErrorKind::Refused);
        }
        self.phase = match (phase, repeat) {
            (Phase::Init, _) => {
                self.session = json["sessionid"].as_str().map(str::to_string);
                Phase::License
            }
            (Phase::License, Repeat::License) => Phase::License,
            (Phase::License, _) => Phase::Check,
            (Phase::Check, Repeat::Check) => Phase::Check,
            (Phase::Check, _) => Phase::Init,
        };
        Ok(())
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
        let mut c = s.client(7);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..10_000 {
            *counts.entry(c.next_step().name).or_insert(0) += 1;
        }
        let share = |k: &str| f64::from(counts[k]) / 10_000.0;
        assert!((share("unknown") - 0.2).abs() < 0.03, "{counts:?}");
        assert!((share("activation") - 0.1).abs() < 0.03, "{counts:?}");
        assert!((share("known") - 0.7).abs() < 0.03, "{counts:?}");
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
        };
        let mut c = s.client(1);
        assert_eq!(c.next_step().name, "init");
        let body = br#"{"success":true,"message":"Initialized","sessionid":"abc"}"#;
        let mut headers = hyper::HeaderMap::new();
        let sig = keyward_shared::signing::hmac_hex(secret.as_bytes(), body);
        headers.insert("signature", sig.parse().unwrap());
        assert_eq!(c.check(&headers, body), Ok(()));
        let license = c.next_step();
        assert_eq!(license.name, "license");
        assert!(String::from_utf8_lossy(&license.body).contains("sessionid=abc"));
        // A forged answer is a signature error and the flow starts over.
        assert_eq!(
            c.check(&headers, b"{\"success\":true}"),
            Err(ErrorKind::Signature)
        );
        assert_eq!(c.next_step().name, "init");
    }
}
