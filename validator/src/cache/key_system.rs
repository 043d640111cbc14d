//! What the Roblox key-system facades (Panda Auth, Junkie) look up besides apps and licenses:
//! service names → apps, Junkie identifiers → accounts, keyless entries per (app, HWID), Panda
//! service keys by their hash, and providers' get-key links. All negative-cached and kept current
//! by the listener like the other caches (an app's invalidation drops what names or belongs to
//! it; a keyless entry's drops that entry), except the links, which no write announces and which
//! therefore live for [`LINK_TTL`] only.

use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use keyward_shared::invalidation::Invalidation;
use keyward_shared::store::api_keys::{self, ServiceKey};
use keyward_shared::store::keyless::{self, KeylessEntry};
use keyward_shared::store::{accounts, apps, key_providers};
use keyward_shared::StoreError;
use quick_cache::Equivalent;
use uuid::Uuid;

use super::guarded::Lookup;
use super::{CacheError, Guarded, InApp};
use crate::config::Config;
use crate::health::Health;
use crate::replica::Reads;

/// How long a provider's link is trusted (providers' writes send no invalidation).
pub const LINK_TTL: Duration = Duration::from_secs(10);

/// `(account number, name)` borrowed: looks up an `(i64, String)` key.
#[derive(Clone, Copy)]
pub struct Numbered<'a>(pub i64, pub &'a str);

impl Hash for Numbered<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Exactly what `(i64, String)` hashes.
        (self.0, self.1).hash(state)
    }
}

impl Equivalent<(i64, String)> for Numbered<'_> {
    fn equivalent(&self, key: &(i64, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

impl Lookup<(i64, String)> for Numbered<'_> {
    fn to_key(&self) -> (i64, String) {
        (self.0, self.1.to_string())
    }
}

pub struct KeySystemCaches {
    /// Panda's public service id → app.
    services: Guarded<String, Uuid>,
    /// Junkie's (account number, service number or name) → app.
    account_services: Guarded<(i64, String), Uuid>,
    /// Junkie's `identifier` (account number) → account.
    accounts: Guarded<i64, Uuid>,
    /// (app, HWID) → its keyless entry.
    keyless: Guarded<(Uuid, String), KeylessEntry>,
    /// SHA-256 of a presented Panda `apiKey` → what it opens.
    service_keys: Guarded<[u8; 32], ServiceKey>,
    /// (account number, provider number or name) → its get-key link.
    links: moka::future::Cache<(i64, String), Option<Arc<str>>>,
    reads: Arc<Reads>,
}

fn load_err(e: StoreError) -> CacheError {
    CacheError::from(&e)
}

impl KeySystemCaches {
    pub fn new(cfg: &Config, reads: Arc<Reads>, health: Arc<Health>) -> KeySystemCaches {
        let apps = cfg.app_cache_capacity;
        KeySystemCaches {
            services: Guarded::new(cfg, apps, health.clone()),
            account_services: Guarded::new(cfg, apps, health.clone()),
            accounts: Guarded::new(cfg, apps, health.clone()),
            keyless: Guarded::new(cfg, cfg.license_cache_capacity / 10, health.clone()),
            service_keys: Guarded::new(cfg, apps, health),
            links: moka::future::Cache::builder()
                .max_capacity(apps)
                .time_to_live(LINK_TTL)
                .build(),
            reads,
        }
    }

    /// The app behind a Panda service id.
    pub async fn service(&self, service: &str) -> Result<Option<Uuid>, CacheError> {
        let found = self
            .services
            .get_or_load(service, || {
                self.reads
                    .read(|c| async move { apps::id_by_service(&**c, service).await })
            })
            .await?;
        Ok(found.map(|id| *id))
    }

    /// The account with this Junkie identifier.
    pub async fn account(&self, num_id: i64) -> Result<Option<Uuid>, CacheError> {
        let found = self
            .accounts
            .get_or_load(&num_id, || {
                self.reads
                    .read(|c| async move { accounts::id_by_num(&**c, num_id).await })
            })
            .await?;
        Ok(found.map(|id| *id))
    }

    /// The account's app with this number or exact name.
    pub async fn account_service(
        &self,
        account_num_id: i64,
        service: &str,
    ) -> Result<Option<Uuid>, CacheError> {
        let found = self
            .account_services
            .get_or_load(&Numbered(account_num_id, service), || {
                self.reads.read(|c| async move {
                    apps::id_by_account_service(&**c, account_num_id, service).await
                })
            })
            .await?;
        Ok(found.map(|id| *id))
    }

    /// The app's keyless entry for this HWID (expired ones included: the rules judge them).
    pub async fn keyless(
        &self,
        app: Uuid,
        hwid: &str,
    ) -> Result<Option<Arc<KeylessEntry>>, CacheError> {
        self.keyless
            .get_or_load(&InApp(app, hwid), || {
                self.reads
                    .read(|c| async move { keyless::find(&**c, app, hwid).await })
            })
            .await
    }

    /// Drops an entry this validator just wrote (the listener does it for everyone else's).
    pub fn forget_keyless(&self, app: Uuid, hwid: &str) {
        self.keyless.forget(&InApp(app, hwid));
    }

    fn invalidate_keyless(&self, app: Uuid, hwid: &str) {
        self.keyless.invalidate(&InApp(app, hwid));
    }

    /// What a presented Panda `apiKey` opens (a revoked or unknown key: nothing).
    pub async fn service_key(&self, plaintext: &str) -> Result<Option<ServiceKey>, CacheError> {
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&keyward_shared::secrets::sha256(plaintext));
        let found = self
            .service_keys
            .get_or_load(&hash, || {
                self.reads
                    .read(|c| async move { api_keys::find_service_key(&**c, plaintext).await })
            })
            .await?;
        Ok(found.map(|k| *k))
    }

    /// The get-key link of the account's provider with this number or name.
    pub async fn provider_link(
        &self,
        account_num_id: i64,
        provider: &str,
    ) -> Result<Option<Arc<str>>, CacheError> {
        let key = (account_num_id, provider.to_string());
        if let Some(found) = self.links.get(&key).await {
            return Ok(found);
        }
        let link = self
            .reads
            .read(|c| async move { key_providers::link_for(&**c, account_num_id, provider).await })
            .await
            .map_err(load_err)?
            .map(Arc::from);
        self.links.insert(key, link.clone()).await;
        Ok(link)
    }

    pub fn apply(&self, inv: &Invalidation) {
        match inv {
            Invalidation::App { app } => {
                let app = *app;
                // A new or renamed service may have been cached as unknown under its name, and
                // a new app may be the first of a new account.
                self.services
                    .forget_if(|_, id| id.is_none_or(|id| *id == app));
                self.account_services
                    .forget_if(|_, id| id.is_none_or(|id| *id == app));
                self.accounts.forget_if(|_, id| id.is_none());
                self.keyless.forget_if(|k, _| k.0 == app);
                // Service keys are made and revoked with their app's invalidation.
                self.service_keys
                    .forget_if(|_, key| key.is_none_or(|k| k.app_id == app));
            }
            Invalidation::Keyless { app, hwid } => self.invalidate_keyless(*app, hwid),
            Invalidation::All => self.clear(),
            Invalidation::License { .. }
            | Invalidation::Policy { .. }
            | Invalidation::Blacklist { .. }
            | Invalidation::User { .. }
            | Invalidation::Vars { .. }
            | Invalidation::Session { .. } => {}
        }
    }

    pub fn clear(&self) {
        self.services.clear();
        self.account_services.clear();
        self.accounts.clear();
        self.keyless.clear();
        self.service_keys.clear();
        self.links.invalidate_all();
    }
}
