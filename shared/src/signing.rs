//! Response signing of the KeyAuth-compatible client API: HMAC-SHA256 (API 1.2) and Ed25519 over
//! `timestamp ‖ body` (API 1.3), both hex-encoded lowercase as every SDK expects.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hmac::{KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = hmac::Hmac<Sha256>;

/// `hex(HMAC-SHA256(key, body))`, 64 lowercase hex characters (the 1.2 `signature` header).
pub fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[derive(Debug, thiserror::Error)]
#[error("an Ed25519 key must be 64 hex characters (a 32-byte seed)")]
pub struct KeyFormatError;

/// The deployment's Ed25519 key for API 1.3 responses.
pub struct Ed25519Signer {
    key: SigningKey,
}

impl Ed25519Signer {
    pub fn generate() -> Ed25519Signer {
        Ed25519Signer {
            key: SigningKey::from_bytes(&crate::secrets::random_bytes::<32>()),
        }
    }

    pub fn from_seed(seed: &[u8]) -> Result<Ed25519Signer, KeyFormatError> {
        let seed: [u8; 32] = seed.try_into().map_err(|_| KeyFormatError)?;
        Ok(Ed25519Signer {
            key: SigningKey::from_bytes(&seed),
        })
    }

    pub fn from_seed_hex(seed: &str) -> Result<Ed25519Signer, KeyFormatError> {
        Self::from_seed(&hex::decode(seed.trim()).map_err(|_| KeyFormatError)?)
    }

    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// What vendors build into their 1.3 clients: the public key, 64 hex characters.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.verifying_key().to_bytes())
    }

    /// The `x-signature-ed25519` value: 128 hex characters over `timestamp ‖ body`.
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        let mut msg = Vec::with_capacity(timestamp.len() + body.len());
        msg.extend_from_slice(timestamp.as_bytes());
        msg.extend_from_slice(body);
        hex::encode(self.key.sign(&msg).to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier};

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
}
