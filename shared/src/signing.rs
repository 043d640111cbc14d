//! Response signing of the KeyAuth-compatible client API: HMAC-SHA256 (API 1.2) and Ed25519 over
//! `timestamp ‖ body` (API 1.3), both hex-encoded lowercase as every SDK expects.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use ed25519_dalek::VerifyingKey;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// `hex(HMAC-SHA256(key, body))`, 64 lowercase hex characters (the 1.2 `signature` header).
pub fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    hex::encode(hmac(key, body))
}

/// HMAC-SHA256(key, body), raw.
pub fn hmac(key: &[u8], body: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(body);
    mac.finalize().into_bytes().into()
}

#[derive(Debug, thiserror::Error)]
#[error("an Ed25519 key must be 64 hex characters (a 32-byte seed)")]
pub struct KeyFormatError;

/// The deployment's Ed25519 key for API 1.3 responses. Signs with aws-lc-rs (already in the
/// tree through rustls): 9–10 µs per answer against 18–24 µs for ed25519-dalek, ring and
/// ed25519-compact (`cargo bench -p keyward-benches --bench ed25519`), and signing is most of
/// what a 1.3 answer costs. Deterministic (RFC 8032): the same signatures as any other crate.
pub struct Ed25519Signer {
    key: Ed25519KeyPair,
    seed: [u8; 32],
}

impl Ed25519Signer {
    pub fn generate() -> Ed25519Signer {
        let seed = crate::secrets::random_bytes::<32>();
        match Self::from_seed(&seed) {
            Ok(s) => s,
            Err(_) => unreachable!("any 32 bytes are an Ed25519 seed"),
        }
    }

    pub fn from_seed(seed: &[u8]) -> Result<Ed25519Signer, KeyFormatError> {
        let seed: [u8; 32] = seed.try_into().map_err(|_| KeyFormatError)?;
        let key = Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|_| KeyFormatError)?;
        Ok(Ed25519Signer { key, seed })
    }

    pub fn from_seed_hex(seed: &str) -> Result<Ed25519Signer, KeyFormatError> {
        Self::from_seed(&hex::decode(seed.trim()).map_err(|_| KeyFormatError)?)
    }

    pub fn seed(&self) -> [u8; 32] {
        self.seed
    }

    /// The public key as clients verify with it.
    pub fn verifying_key(&self) -> VerifyingKey {
        let public: [u8; 32] = match self.key.public_key().as_ref().try_into() {
            Ok(p) => p,
            Err(_) => unreachable!("an Ed25519 public key is 32 bytes"),
        };
        match VerifyingKey::from_bytes(&public) {
            Ok(k) => k,
            Err(_) => unreachable!("aws-lc-rs derived a valid public key"),
        }
    }

    /// What vendors build into their 1.3 clients: the public key, 64 hex characters.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.public_key().as_ref())
    }

    /// The `x-signature-ed25519` value: 128 hex characters over `timestamp ‖ body`.
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        let mut msg = Vec::with_capacity(timestamp.len() + body.len());
        msg.extend_from_slice(timestamp.as_bytes());
        msg.extend_from_slice(body);
        hex::encode(self.key.sign(&msg).as_ref())
    }

    /// The raw 64-byte Ed25519 signature of `msg` (Keygen's response signatures and license files).
    pub fn sign_bytes(&self, msg: &[u8]) -> [u8; 64] {
        match self.key.sign(msg).as_ref().try_into() {
            Ok(s) => s,
            Err(_) => unreachable!("an Ed25519 signature is 64 bytes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier};

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            hmac_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn ed25519_matches_rfc_8032_test_1() {
        let s = Ed25519Signer::from_seed_hex(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        )
        .unwrap();
        assert_eq!(
            s.public_key_hex(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            s.sign("", b""),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    #[test]
    fn signature_covers_timestamp_then_body() {
        let s = Ed25519Signer::generate();
        let sig_hex = s.sign("1700000000", br#"{"success":true}"#);
        assert_eq!(sig_hex.len(), 128);
        let sig = Signature::from_slice(&hex::decode(&sig_hex).unwrap()).unwrap();
        let key = s.verifying_key();
        assert!(key.verify(br#"1700000000{"success":true}"#, &sig).is_ok());
        assert!(key.verify(br#"1700000001{"success":true}"#, &sig).is_err());
        assert!(Ed25519Signer::from_seed_hex("abcd").is_err());
        let again = Ed25519Signer::from_seed(&s.seed()).unwrap();
        assert_eq!(again.public_key_hex(), s.public_key_hex());
    }

    #[test]
    fn signatures_are_those_of_ed25519_dalek_for_the_same_seed() {
        let s = Ed25519Signer::generate();
        let dalek = SigningKey::from_bytes(&s.seed());
        assert_eq!(s.verifying_key(), dalek.verifying_key());
        let body = br#"{"success":true,"message":"Session is validated."}"#;
        let mut msg = b"1700000000".to_vec();
        msg.extend_from_slice(body);
        assert_eq!(
            s.sign("1700000000", body),
            hex::encode(dalek.sign(&msg).to_bytes())
        );
    }
}
