//! The validator's memory: licenses in a compact quick_cache ([`licenses`]), apps in a small
//! quick_cache (read by every validation: moka's `get`, with its read-op recording, was 0.4 µs of
//! a 12 µs cache hit), the client API's data in bounded quick_caches looked up by borrowed keys
//! ([`guarded`]; unknown ids and keys cached negatively), blacklist views in a dashmap, all kept
//! current by the invalidation listener.
//!
//! Staleness ([`Staleness`], checked on read): an entry older than its TTL is re-read while
//! PostgreSQL is reachable; during an outage it is served until TTL + grace, never past that. A
//! load that overlaps an invalidation of its key is dropped after insert (generation counters),
//! so an invalidation can never be overwritten by an older read.

mod client;
mod details;
mod guarded;
mod key_system;
mod licenses;
mod loader;

pub use client::ClientCaches;
pub use details::LicenseDetails;
pub use guarded::{Guarded, InApp, Named};
pub use key_system::KeySystemCaches;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use deadpool_postgres::Pool;
use keyward_shared::blacklist::BlacklistView;
use keyward_shared::invalidation::Invalidation;
use keyward_shared::license_facts::LicenseFacts;
use keyward_shared::model::App;
use keyward_shared::store;
use keyward_shared::StoreError;
use uuid::Uuid;

use crate::config::Config;
use crate::health::{Freshness, Health};
use crate::metrics::Metrics;
use crate::replica::Reads;

/// Why a lookup could not be answered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CacheError {
    #[error("the license store is unreachable")]
    Unavailable,
    #[error("license store error: {0}")]
    Database(String),
}

impl From<&StoreError> for CacheError {
    fn from(e: &StoreError) -> Self {
        if e.is_unavailable() {
            CacheError::Unavailable
        } else {
            CacheError::Database(e.to_string())
        }
    }
}

#[derive(Clone)]
pub(crate) struct Cached<T> {
    value: T,
    loaded: Instant,
}

/// When an entry may be served, for every cache here: within its TTL (positive or negative)
/// while PostgreSQL is reachable; during an outage until TTL + grace, never past that.
pub(crate) struct Staleness {
    ttl: Duration,
    negative_ttl: Duration,
    hard_ttl: Duration,
}

impl Staleness {
    pub(crate) fn new(cfg: &Config) -> Staleness {
        Staleness {
            ttl: cfg.cache_ttl(),
            negative_ttl: cfg.negative_ttl(),
            hard_ttl: cfg.cache_ttl().max(cfg.negative_ttl()) + cfg.outage_grace(),
        }
    }

    /// Whether an entry may be served: `None` when nothing may be (PostgreSQL down past the
    /// grace), `Some(false)` when it must be re-read first.
    pub(crate) fn usable(
        &self,
        loaded: Instant,
        found: bool,
        freshness: Freshness,
    ) -> Option<bool> {
        let ttl = if found { self.ttl } else { self.negative_ttl };
        match freshness {
            Freshness::Live => Some(loaded.elapsed() < ttl),
            Freshness::Grace => Some(loaded.elapsed() < self.hard_ttl),
            Freshness::Down => None,
        }
    }
}

/// An app with its blacklist, as a validation needs them.
#[derive(Clone)]
pub struct AppView {
    pub app: Arc<App>,
    pub blacklist: Arc<BlacklistView>,
}

pub struct Caches {
    /// The client API's caches (sessions, end users, variables, app names).
    pub client: ClientCaches,
    /// The Keygen facade's licenses, with policy, machines and entitlements, by key.
    pub details: LicenseDetails,
    /// The Panda and Junkie facades' lookups (services, identifiers, keyless entries, service
    /// keys, provider links).
    pub key_system: KeySystemCaches,
    apps: quick_cache::sync::Cache<Uuid, Cached<Option<Arc<App>>>>,
    blacklists: DashMap<Uuid, Arc<BlacklistView>>,
    licenses: licenses::LicenseCache,
    license_loader: loader::Loader,
    /// Bumped before an app or blacklist entry is dropped (see [`Guarded`]).
    app_generation: AtomicU64,
    staleness: Staleness,
    pool: Pool,
    /// Where misses read: the primary, or a replica that has replayed the applied invalidations.
    pub reads: Arc<Reads>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
}

impl Caches {
    pub fn new(
        cfg: &Config,
        pool: Pool,
        reads: Arc<Reads>,
        health: Arc<Health>,
        metrics: Arc<Metrics>,
    ) -> Caches {
        Caches {
            client: ClientCaches::new(cfg, health.clone()),
            details: LicenseDetails::new(cfg, reads.clone(), health.clone()),
            key_system: KeySystemCaches::new(cfg, reads.clone(), health.clone()),
            apps: quick_cache::sync::Cache::new(
                usize::try_from(cfg.app_cache_capacity)
                    .unwrap_or(usize::MAX)
                    .max(1),
            ),
            blacklists: DashMap::new(),
            licenses: licenses::LicenseCache::new(
                usize::try_from(cfg.license_cache_capacity).unwrap_or(usize::MAX),
            ),
            license_loader: loader::Loader::new(
                reads.clone(),
                cfg.miss_queries_in_flight,
                metrics.clone(),
            ),
            app_generation: AtomicU64::new(0),
            staleness: Staleness::new(cfg),
            pool,
            reads,
            health,
            metrics,
        }
    }

    /// Opens `n` query connections and runs every cache-miss read once on each (for keys that
    /// match nothing): a new backend's first query loads the catalog and plans (3–4 ms here
    /// against 0.3–0.5 ms after), so without this the first burst after a start waited ≈ 20 ms
    /// on backends warming up. Returns how many connections are open.
    pub async fn warm_pool(&self, n: usize) -> usize {
        let clients = keyward_shared::db::open(&self.pool, n).await;
        let primed = futures_util::future::join_all(clients.iter().map(|c| async move {
            let nil = Uuid::nil();
            // The client API's init, check and login.
            store::apps::find_by_owner_and_name(&**c, "-", "-").await?;
            store::sessions::find(&**c, nil, "-").await?;
            store::users::find_by_name(&**c, nil, "-").await?;
            // Native validation; the license lookup last, as the one a test can see in
            // `pg_stat_activity` (an idle backend shows its last statement).
            store::apps::find(&**c, nil).await?;
            store::blacklist::for_app(&***c, nil).await?;
            store::licenses::facts_by_keys(&**c, &[(nil, "-")]).await?;
            Ok::<_, StoreError>(())
        }))
        .await;
        for e in primed.into_iter().filter_map(Result::err) {
            tracing::warn!(error = %e, "could not prime a query connection");
        }
        clients.len()
    }

    /// The app and its blacklist; `None` when no such app exists.
    pub async fn app(&self, id: Uuid) -> Result<Option<AppView>, CacheError> {
        let freshness = self.health.freshness();
        let app = match self.apps.get(&id) {
            Some(entry) => {
                match self
                    .staleness
                    .usable(entry.loaded, entry.value.is_some(), freshness)
                {
                    Some(true) => entry.value,
                    Some(false) => {
                        self.apps.remove(&id);
                        self.load_app(id).await?
                    }
                    None => return Err(CacheError::Unavailable),
                }
            }
            None if freshness == Freshness::Live => self.load_app(id).await?,
            None => return Err(CacheError::Unavailable),
        };
        let Some(app) = app else { return Ok(None) };
        let blacklist = match self.blacklists.get(&id) {
            Some(view) => view.clone(),
            None if freshness == Freshness::Live => self.load_blacklist(id).await?,
            None => return Err(CacheError::Unavailable),
        };
        Ok(Some(AppView { app, blacklist }))
    }

    async fn load_app(&self, id: Uuid) -> Result<Option<Arc<App>>, CacheError> {
        let before = self.app_generation.load(Ordering::SeqCst);
        // Concurrent misses of one app wait for one read (the guard); a failed read lets the
        // next waiter try.
        let loaded = match self.apps.get_value_or_guard_async(&id).await {
            Ok(entry) => entry,
            Err(guard) => {
                self.metrics.cache_miss("app");
                let app = self
                    .reads
                    .read(|c| async move { store::apps::find(&*c, id).await })
                    .await
                    .map_err(|e| CacheError::from(&e))?;
                let entry = Cached {
                    value: app.map(Arc::new),
                    loaded: Instant::now(),
                };
                let _ = guard.insert(entry.clone());
                entry
            }
        };
        if self.app_generation.load(Ordering::SeqCst) != before {
            self.apps.remove(&id);
        }
        Ok(loaded.value)
    }

    async fn load_blacklist(&self, app: Uuid) -> Result<Arc<BlacklistView>, CacheError> {
        self.metrics.cache_miss("blacklist");
        let before = self.app_generation.load(Ordering::SeqCst);
        let entries = self
            .reads
            .read(|c| async move { store::blacklist::for_app(&**c, app).await })
            .await
            .map_err(|e| CacheError::from(&e))?;
        let view = Arc::new(BlacklistView::from_entries(&entries));
        self.blacklists.insert(app, view.clone());
        if self.app_generation.load(Ordering::SeqCst) != before {
            self.blacklists.remove(&app);
        }
        Ok(view)
    }

    /// The license with this key in this app; `None` when the key does not exist.
    pub async fn license(&self, app: Uuid, key: &str) -> Result<Option<LicenseFacts>, CacheError> {
        let freshness = self.health.freshness();
        let slot = self.licenses.slot(app, key);
        match self.licenses.get(&slot) {
            Some(entry) => {
                match self
                    .staleness
                    .usable(entry.loaded, entry.license.is_some(), freshness)
                {
                    Some(true) => {
                        self.metrics.cache_hit();
                        return Ok(entry.license);
                    }
                    Some(false) => self.licenses.forget(&slot),
                    None => return Err(CacheError::Unavailable),
                }
            }
            None if freshness != Freshness::Live => return Err(CacheError::Unavailable),
            None => {}
        }
        self.metrics.cache_miss("license");
        self.licenses
            .load(slot, || self.license_loader.load(app, key))
            .await
    }

    /// Drops a license after this validator changed it, so the next request of any facade
    /// reads the new row (from the primary until a replica is known to have it).
    pub fn forget_license(&self, app: Uuid, key: &str) {
        self.health.local_write();
        self.drop_license(app, key);
    }

    fn drop_license(&self, app: Uuid, key: &str) {
        self.details.invalidate(key);
        self.licenses.forget(&self.licenses.slot(app, key));
    }

    pub async fn apply(&self, inv: &Invalidation) {
        match inv {
            Invalidation::License { app, key } => self.drop_license(*app, key),
            Invalidation::App { app } => {
                self.app_generation.fetch_add(1, Ordering::SeqCst);
                self.apps.remove(app);
                self.blacklists.remove(app);
                // A deleted app takes its licenses with it.
                self.licenses.forget_app(*app);
            }
            // Policies are rare writes; re-reading the app's licenses is cheaper than keeping
            // each one's policy id in the cache to pick them out.
            Invalidation::Policy { app } => self.licenses.forget_app(*app),
            Invalidation::Blacklist { app } => {
                self.app_generation.fetch_add(1, Ordering::SeqCst);
                self.blacklists.remove(app);
            }
            Invalidation::User { .. }
            | Invalidation::Vars { .. }
            | Invalidation::Session { .. }
            | Invalidation::Keyless { .. } => {}
            Invalidation::All => self.flush_all(),
        }
        self.key_system.apply(inv);
        self.details.apply(inv);
        self.client.apply(inv).await;
    }

    pub fn flush_all(&self) {
        self.client.clear();
        self.details.clear();
        self.key_system.clear();
        self.app_generation.fetch_add(1, Ordering::SeqCst);
        self.apps.clear();
        self.licenses.clear();
        self.blacklists.clear();
    }

    /// Puts an app, its blacklist, its licenses and keys known not to exist in memory as if
    /// loaded (benches without a database).
    #[cfg(feature = "bench-support")]
    pub async fn prime(
        &self,
        app: App,
        blacklist: BlacklistView,
        licenses: &[keyward_shared::model::License],
        absent_keys: &[&str],
    ) {
        let id = app.id;
        let entry = Cached {
            value: Some(Arc::new(app)),
            loaded: Instant::now(),
        };
        self.apps.insert(id, entry);
        self.blacklists.insert(id, Arc::new(blacklist));
        for l in licenses {
            let slot = self.licenses.slot(id, &l.key);
            self.licenses.prime(slot, Some(l.facts()));
        }
        for key in absent_keys {
            self.licenses.prime(self.licenses.slot(id, key), None);
        }
    }

    pub fn license_entries(&self) -> usize {
        self.licenses.len()
    }
}
