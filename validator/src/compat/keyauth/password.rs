//! End-user password checks off the async workers. argon2id for new hashes; bcrypt (`$2y$`,
//! `$2b$`, `$2a$`) accepted for users imported from KeyAuth and replaced by argon2id on the first
//! successful login. An unknown user is checked against a dummy argon2id hash so that it costs
//! what a known one does.
//!
//! A bounded number of hashes run at once (each takes a core and ~19 MiB), and a successful
//! check is remembered in memory, keyed by user and a keyed digest of the password and valid
//! only while the stored hash is unchanged, so a returning client (KeyAuth `license` logs in
//! with the key on every start) does not pay a full hash again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyward_shared::model::AppUser;
use keyward_shared::secrets;
use tokio::sync::Semaphore;
use uuid::Uuid;

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Match {
        /// A new argon2id hash to store in place of a bcrypt one.
        upgrade: Option<String>,
    },
    Mismatch,
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing is unavailable: {0}")]
    Unavailable(String),
}

pub struct Passwords {
    permits: Arc<Semaphore>,
    /// Hashes computed (verifications and new hashes), for tests and metrics.
    computed: AtomicU64,
    /// (user, keyed digest of the password) → the stored hash it was verified against, and when
    /// (read by every KeyAuth `license` of a returning client: no allocation on a hit).
    verified: quick_cache::sync::Cache<(Uuid, [u8; 32]), (Arc<str>, Instant)>,
    digest_key: [u8; 32],
}

const VERIFIED_CAPACITY: usize = 200_000;
/// A remembered check is trusted this long, then the password is hashed again.
const VERIFIED_TTL: Duration = Duration::from_secs(3600);

fn is_bcrypt(hash: &str) -> bool {
    ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p))
}

impl Passwords {
    pub fn new(concurrency: usize) -> Passwords {
        Passwords {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            computed: AtomicU64::new(0),
            verified: quick_cache::sync::Cache::new(VERIFIED_CAPACITY),
            digest_key: secrets::random_bytes::<32>(),
        }
    }

    fn digest(&self, password: &str) -> [u8; 32] {
        keyward_shared::signing::hmac(&self.digest_key, password.as_bytes())
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| PasswordError::Unavailable(e.to_string()))?;
        self.computed.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| PasswordError::Unavailable(e.to_string()))
    }

    /// Checks `password` for `user` (or, for no user, burns the same time and mismatches).
    pub async fn verify(
        &self,
        user: Option<&AppUser>,
        password: &str,
    ) -> Result<Outcome, PasswordError> {
        let Some(user) = user else {
            let password = password.to_string();
            self.blocking(move || {
                secrets::verify_password(&password, secrets::dummy_password_hash())
            })
            .await?;
            return Ok(Outcome::Mismatch);
        };
        let digest = self.digest(password);
        let key = (user.id, digest);
        if self
            .verified
            .get(&key)
            .is_some_and(|(hash, at)| *hash == *user.password_hash && at.elapsed() < VERIFIED_TTL)
        {
            return Ok(Outcome::Match { upgrade: None });
        }
        let (password, stored) = (password.to_string(), user.password_hash.clone());
        let outcome = self
            .blocking(move || {
                if is_bcrypt(&stored) {
                    if bcrypt::verify(&password, &stored).unwrap_or(false) {
                        // A failed rehash leaves the bcrypt hash in place; it still verifies.
                        Outcome::Match {
                            upgrade: secrets::hash_password(&password).ok(),
                        }
                    } else {
                        Outcome::Mismatch
                    }
                } else if secrets::verify_password(&password, &stored) {
                    Outcome::Match { upgrade: None }
                } else {
                    Outcome::Mismatch
                }
            })
            .await?;
        if let Outcome::Match { upgrade } = &outcome {
            let hash: Arc<str> = upgrade.as_deref().unwrap_or(&user.password_hash).into();
            self.verified.insert(key, (hash, Instant::now()));
        }
        Ok(outcome)
    }

    pub fn computed(&self) -> u64 {
        self.computed.load(Ordering::Relaxed)
    }

    /// An argon2id hash for a new user.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let password = password.to_string();
        self.blocking(move || secrets::hash_password(&password))
            .await?
            .map_err(|e| PasswordError::Unavailable(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(hash: String) -> AppUser {
        AppUser {
            id: Uuid::new_v4(),
            app_id: Uuid::new_v4(),
            username: "u".into(),
            email: None,
            password_hash: hash,
            hwid: None,
            ip: None,
            banned: false,
            ban_reason: None,
            created_at: chrono::Utc::now(),
            last_login_at: None,
            subscriptions: Vec::new(),
        }
    }

    #[tokio::test]
    async fn argon2_bcrypt_upgrade_and_unknown_users() {
        let p = Passwords::new(2);
        let argon = user(p.hash("s3cret").await.unwrap());
        assert_eq!(
            p.verify(Some(&argon), "s3cret").await.unwrap(),
            Outcome::Match { upgrade: None }
        );
        assert_eq!(
            p.verify(Some(&argon), "nope").await.unwrap(),
            Outcome::Mismatch
        );
        // Remembered: still a match, and only for the same stored hash.
        assert_eq!(
            p.verify(Some(&argon), "s3cret").await.unwrap(),
            Outcome::Match { upgrade: None }
        );
        let changed = user(p.hash("other").await.unwrap());
        let changed = AppUser {
            id: argon.id,
            ..changed
        };
        assert_eq!(
            p.verify(Some(&changed), "s3cret").await.unwrap(),
            Outcome::Mismatch
        );

        let legacy = bcrypt::hash_with_result("legacy pw", 4)
            .unwrap()
            .format_for_version(bcrypt::Version::TwoY);
        assert!(legacy.starts_with("$2y$"));
        let imported = user(legacy);
        match p.verify(Some(&imported), "legacy pw").await.unwrap() {
            Outcome::Match { upgrade: Some(h) } => {
                assert!(h.starts_with("$argon2id$"));
                assert!(secrets::verify_password("legacy pw", &h));
            }
            other => panic!("expected an upgrade, got {other:?}"),
        }
        assert_eq!(
            p.verify(Some(&imported), "wrong").await.unwrap(),
            Outcome::Mismatch
        );
        // An unknown user runs a full hash, as a known one does on its first check.
        let before = p.computed();
        assert_eq!(p.verify(None, "anything").await.unwrap(), Outcome::Mismatch);
        assert_eq!(p.computed(), before + 1);
        let fresh = user(p.hash("pw").await.unwrap());
        let before = p.computed();
        p.verify(Some(&fresh), "not it").await.unwrap();
        assert_eq!(p.computed(), before + 1);
    }
}
