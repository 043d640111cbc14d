//! Secrets: random tokens, one-way hashes for API keys, argon2id for passwords.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};

/// A random alphanumeric string from the CSPRNG.
pub fn random_token(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), len)
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::Rng::fill(&mut rand::rng(), &mut b);
    b
}

/// SHA-256 of an API key. High-entropy keys need no salt or slow hash; the digest is what is stored
/// and looked up.
pub fn sha256(data: &str) -> Vec<u8> {
    Sha256::digest(data.as_bytes()).to_vec()
}

/// A new API key: `kw_` + 40 random characters (~238 bits).
pub fn new_api_key() -> String {
    format!("kw_{}", random_token(40))
}

/// A new seller key: `ka_` + 40 random characters, as KeyAux's seller keys look.
pub fn new_seller_key() -> String {
    format!("ka_{}", random_token(40))
}

/// Public account id: 10 alphanumeric characters (KeyAuth clients check the length).
pub fn new_public_id() -> String {
    random_token(10)
}

/// App secret: 64 alphanumeric characters.
pub fn new_app_secret() -> String {
    random_token(64)
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// argon2id with the crate's default (OWASP) parameters. CPU-heavy: call from a blocking task.
pub fn hash_password(password: &str) -> Result<String, HashError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Constant-time verification of a stored PHC string; malformed hashes verify as false.
pub fn verify_password(password: &str, phc: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// A valid hash of no real password, verified against when the user does not exist so that unknown
/// and known usernames cost the same time.
pub fn dummy_password_hash() -> &'static str {
    use std::sync::OnceLock;
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_token(32)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_roundtrip() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn tokens_have_requested_shape() {
        assert_eq!(new_public_id().len(), 10);
        let k = new_api_key();
        assert!(k.starts_with("kw_") && k.len() == 43);
        assert_ne!(new_app_secret(), new_app_secret());
        assert_eq!(sha256("abc").len(), 32);
    }
}
