//! Licenses with their policy, machines and entitlements, as the Keygen facade reads them, keyed
//! by the license key alone (Keygen's calls name no app); an entry holds every license with that
//! key, of every account, and the facade picks the caller's. Kept current by the listener like
//! the other caches: a license's own invalidation drops its key, a policy's or an app's drops the
//! app's entries.

use std::sync::Arc;

use keyward_shared::invalidation::Invalidation;
use keyward_shared::store::license_details::{self, LicenseDetail};
use uuid::Uuid;

use super::{CacheError, Guarded};
use crate::config::Config;
use crate::health::Health;
use crate::replica::Reads;

pub struct LicenseDetails {
    by_key: Guarded<String, Vec<Arc<LicenseDetail>>>,
    /// Account references (id or public id) → account id, for `/v1/accounts/{account}/…`.
    accounts: Guarded<String, Uuid>,
    /// License id → its key (the clients' `licenses/{id}/…` calls); checked against the entry
    /// found under that key, so a key changed since is read again.
    keys: Guarded<Uuid, String>,
    reads: Arc<Reads>,
}

impl LicenseDetails {
    pub fn new(cfg: &Config, reads: Arc<Reads>, health: Arc<Health>) -> LicenseDetails {
        LicenseDetails {
            by_key: Guarded::new(cfg, cfg.keygen_cache_capacity, health.clone()),
            accounts: Guarded::new(cfg, 10_000, health.clone()),
            keys: Guarded::new(cfg, cfg.keygen_cache_capacity, health),
            reads,
        }
    }

    /// Every license with this key (empty when there is none).
    pub async fn by_key(&self, key: &str) -> Result<Arc<Vec<Arc<LicenseDetail>>>, CacheError> {
        let found = self
            .by_key
            .get_or_load(key, || async {
                let found = self
                    .reads
                    .read(|c| async move { license_details::by_key(&**c, None, key).await })
                    .await?;
                Ok(Some(found.into_iter().map(Arc::new).collect()))
            })
            .await?;
        Ok(found.unwrap_or_default())
    }

    /// The license with this id.
    pub async fn by_id(&self, id: Uuid) -> Result<Option<Arc<LicenseDetail>>, CacheError> {
        for _ in 0..2 {
            let key = self
                .keys
                .get_or_load(&id, || {
                    self.reads
                        .read(|c| async move { license_details::key_of(&**c, id).await })
                })
                .await?;
            let Some(key) = key else { return Ok(None) };
            let found = self.by_key(&key).await?;
            if let Some(d) = found.iter().find(|d| d.license.id == id) {
                return Ok(Some(d.clone()));
            }
            // The key changed (or the license went) since the id was mapped: map it again.
            self.keys.forget(&id);
        }
        Ok(None)
    }

    /// The account named by an id or public id.
    pub async fn account(&self, reference: &str) -> Result<Option<Uuid>, CacheError> {
        let found = self
            .accounts
            .get_or_load(reference, || {
                self.reads.read(|c| async move {
                    keyward_shared::store::accounts::resolve(&**c, reference).await
                })
            })
            .await?;
        Ok(found.map(|id| *id))
    }

    /// Drops a key's entry (the caller accounts for who changed it).
    pub fn invalidate(&self, key: &str) {
        self.by_key.invalidate(key);
    }

    pub fn apply(&self, inv: &Invalidation) {
        match inv {
            Invalidation::License { key, .. } => self.by_key.invalidate(key.as_str()),
            Invalidation::App { app } | Invalidation::Policy { app } => {
                let app = *app;
                self.by_key.forget_if(|_, found| {
                    found.is_some_and(|all| all.iter().any(|d| d.license.app_id == app))
                });
            }
            Invalidation::All => self.clear(),
            Invalidation::Blacklist { .. }
            | Invalidation::User { .. }
            | Invalidation::Vars { .. }
            | Invalidation::Session { .. }
            | Invalidation::Keyless { .. } => {}
        }
    }

    pub fn clear(&self) {
        self.by_key.clear();
        self.accounts.clear();
        self.keys.clear();
    }
}
