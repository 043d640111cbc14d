//! The validator's memory: apps and licenses in bounded moka caches (unknown ids and keys cached
//! negatively), blacklist views in a dashmap, all kept current by the invalidation listener.
//!
//! Staleness: an entry older than its TTL is re-read while PostgreSQL is reachable; during an
//! outage it is served until the grace runs out (the hard moka TTL is TTL + grace, so nothing
//! lingers past that). A load that overlaps an invalidation of its key is dropped after insert
//! (see [`Generations`]), so an invalidation can never be overwritten by an older read.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use deadpool_postgres::Pool;
use keyward_shared::blacklist::BlacklistView;
use keyward_shared::invalidation::Invalidation;
use keyward_shared::model::{App, License};
use keyward_shared::store;
use keyward_shared::StoreError;
use moka::future::Cache;
use uuid::Uuid;

use crate::config::Config;
use crate::health::{Freshness, Health};
use crate::metrics::Metrics;

/// Why a lookup could not be answered.
#[derive(Debug, thiserror::Error)]
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

/// A moka cache of optional values (absent ones cached negatively) with the same staleness rules
/// and load-vs-invalidation guard as the license cache, for the client API's sessions, end
/// users, variables and app names.
pub struct Guarded<K, V> {
    cache: Cache<K, Cached<Option<Arc<V>>>>,
    generation: AtomicU64,
    ttl: Duration,
    negative_ttl: Duration,
    health: Arc<Health>,
}

impl<K, V> Guarded<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    pub fn new(cfg: &Config, capacity: u64, health: Arc<Health>) -> Self {
        Guarded {
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(cfg.cache_ttl().max(cfg.negative_ttl()) + cfg.outage_grace())
                .support_invalidation_closures()
                .build(),
            generation: AtomicU64::new(0),
            ttl: cfg.cache_ttl(),
            negative_ttl: cfg.negative_ttl(),
            health,
        }
    }

    /// The cached value, or `load`'s answer (cached, unless an invalidation raced the load).
    pub async fn get_or_load<F, Fut>(&self, key: &K, load: F) -> Result<Option<Arc<V>>, CacheError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<V>, StoreError>>,
    {
        let freshness = self.health.freshness();
        if let Some(entry) = self.cache.get(key).await {
            let ttl = if entry.value.is_some() {
                self.ttl
            } else {
                self.negative_ttl
            };
            match freshness {
                Freshness::Live if entry.loaded.elapsed() < ttl => return Ok(entry.value),
                Freshness::Grace => return Ok(entry.value),
                Freshness::Down => return Err(CacheError::Unavailable),
                Freshness::Live => self.cache.invalidate(key).await,
            }
        } else if freshness != Freshness::Live {
            return Err(CacheError::Unavailable);
        }
        let before = self.generation.load(Ordering::SeqCst);
        let value = load()
            .await
            .map_err(|e| CacheError::from(&e))?
            .map(Arc::new);
        self.cache
            .insert(
                key.clone(),
                Cached {
                    value: value.clone(),
                    loaded: Instant::now(),
                },
            )
            .await;
        if self.generation.load(Ordering::SeqCst) != before {
            self.cache.invalidate(key).await;
        }
        Ok(value)
    }

    pub async fn forget(&self, key: &K) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate(key).await;
    }

    /// Drops every entry the predicate selects (falls back to dropping all).
    pub fn forget_if(&self, pred: impl Fn(&K, Option<&V>) -> bool + Send + Sync + 'static) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if self
            .cache
            .invalidate_entries_if(move |k, v| pred(k, v.value.as_deref()))
            .is_err()
        {
            self.cache.invalidate_all();
        }
    }

    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate_all();
    }
}

type LicenseKey = (Uuid, String);

/// Invalidation counters: bumped *before* an entry is dropped and compared after a load was
/// inserted. If it moved, the load may predate the change, so its entry is dropped again.
/// License keys spread over shards so unrelated invalidations rarely discard a load.
struct Generations {
    license_shards: [AtomicU64; 64],
    apps: AtomicU64,
    hasher: RandomState,
}

impl Generations {
    fn shard(&self, key: &LicenseKey) -> &AtomicU64 {
        let h = self.hasher.hash_one(key);
        &self.license_shards[(h % 64) as usize]
    }

    fn bump_all(&self) {
        for g in &self.license_shards {
            g.fetch_add(1, Ordering::SeqCst);
        }
        self.apps.fetch_add(1, Ordering::SeqCst);
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
    pub client: crate::keyauth::ClientCaches,
    apps: Cache<Uuid, Cached<Option<Arc<App>>>>,
    blacklists: DashMap<Uuid, Arc<BlacklistView>>,
    licenses: Cache<LicenseKey, Cached<Option<Arc<License>>>>,
    generations: Generations,
    ttl: Duration,
    negative_ttl: Duration,
    pool: Pool,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
}

impl Caches {
    pub fn new(cfg: &Config, pool: Pool, health: Arc<Health>, metrics: Arc<Metrics>) -> Caches {
        let hard_ttl = cfg.cache_ttl().max(cfg.negative_ttl()) + cfg.outage_grace();
        Caches {
            client: crate::keyauth::ClientCaches::new(cfg, health.clone()),
            apps: Cache::builder()
                .max_capacity(cfg.app_cache_capacity)
                .time_to_live(hard_ttl)
                .build(),
            blacklists: DashMap::new(),
            licenses: Cache::builder()
                .max_capacity(cfg.license_cache_capacity)
                .time_to_live(hard_ttl)
                .support_invalidation_closures()
                .build(),
            generations: Generations {
                license_shards: std::array::from_fn(|_| AtomicU64::new(0)),
                apps: AtomicU64::new(0),
                hasher: RandomState::new(),
            },
            ttl: cfg.cache_ttl(),
            negative_ttl: cfg.negative_ttl(),
            pool,
            health,
            metrics,
        }
    }

    fn usable<T>(&self, entry: &Cached<Option<T>>, freshness: Freshness) -> Option<bool> {
        let ttl = if entry.value.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        };
        match freshness {
            Freshness::Live => Some(entry.loaded.elapsed() < ttl),
            Freshness::Grace => Some(true),
            Freshness::Down => None,
        }
    }

    /// The app and its blacklist; `None` when no such app exists.
    pub async fn app(&self, id: Uuid) -> Result<Option<AppView>, CacheError> {
        let freshness = self.health.freshness();
        let app = match self.apps.get(&id).await {
            Some(entry) => match self.usable(&entry, freshness) {
                Some(true) => entry.value,
                Some(false) => {
                    self.apps.invalidate(&id).await;
                    self.load_app(id).await?
                }
                None => return Err(CacheError::Unavailable),
            },
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
        self.metrics.cache_miss("app");
        let before = self.generations.apps.load(Ordering::SeqCst);
        let pool = &self.pool;
        let loaded = self
            .apps
            .try_get_with(id, async move {
                let client = keyward_shared::db::checkout(pool).await?;
                let app = store::apps::find(&*client, id).await?;
                Ok::<_, StoreError>(Cached {
                    value: app.map(Arc::new),
                    loaded: Instant::now(),
                })
            })
            .await
            .map_err(|e| CacheError::from(&*e))?;
        if self.generations.apps.load(Ordering::SeqCst) != before {
            self.apps.invalidate(&id).await;
        }
        Ok(loaded.value)
    }

    async fn load_blacklist(&self, app: Uuid) -> Result<Arc<BlacklistView>, CacheError> {
        self.metrics.cache_miss("blacklist");
        let before = self.generations.apps.load(Ordering::SeqCst);
        let client = keyward_shared::db::checkout(&self.pool)
            .await
            .map_err(|e| CacheError::from(&e))?;
        let entries = store::blacklist::for_app(&**client, app)
            .await
            .map_err(|e| CacheError::from(&e))?;
        let view = Arc::new(BlacklistView::from_entries(&entries));
        self.blacklists.insert(app, view.clone());
        if self.generations.apps.load(Ordering::SeqCst) != before {
            self.blacklists.remove(&app);
        }
        Ok(view)
    }

    /// The license with this key in this app; `None` when the key does not exist.
    pub async fn license(&self, app: Uuid, key: &str) -> Result<Option<Arc<License>>, CacheError> {
        let freshness = self.health.freshness();
        let cache_key = (app, key.to_owned());
        match self.licenses.get(&cache_key).await {
            Some(entry) => match self.usable(&entry, freshness) {
                Some(true) => {
                    self.metrics.cache_hit();
                    Ok(entry.value)
                }
                Some(false) => {
                    self.licenses.invalidate(&cache_key).await;
                    self.load_license(cache_key).await
                }
                None => Err(CacheError::Unavailable),
            },
            None if freshness == Freshness::Live => self.load_license(cache_key).await,
            None => Err(CacheError::Unavailable),
        }
    }

    async fn load_license(
        &self,
        cache_key: LicenseKey,
    ) -> Result<Option<Arc<License>>, CacheError> {
        self.metrics.cache_miss("license");
        let generation = self.generations.shard(&cache_key);
        let before = generation.load(Ordering::SeqCst);
        let pool = &self.pool;
        let (app, key) = (cache_key.0, cache_key.1.clone());
        let loaded = self
            .licenses
            .try_get_with(cache_key.clone(), async move {
                let client = keyward_shared::db::checkout(pool).await?;
                let license = store::licenses::find_by_key(&*client, app, &key).await?;
                Ok::<_, StoreError>(Cached {
                    value: license.map(Arc::new),
                    loaded: Instant::now(),
                })
            })
            .await
            .map_err(|e| CacheError::from(&*e))?;
        if generation.load(Ordering::SeqCst) != before {
            self.licenses.invalidate(&cache_key).await;
        }
        Ok(loaded.value)
    }

    /// Drops a license after this validator changed it, so the next request reads the new row.
    pub async fn forget_license(&self, app: Uuid, key: &str) {
        let cache_key = (app, key.to_owned());
        self.generations
            .shard(&cache_key)
            .fetch_add(1, Ordering::SeqCst);
        self.licenses.invalidate(&cache_key).await;
    }

    pub async fn apply(&self, inv: &Invalidation) {
        match inv {
            Invalidation::License { app, key } => self.forget_license(*app, key).await,
            Invalidation::App { app } => {
                let app = *app;
                self.generations.bump_all();
                self.apps.invalidate(&app).await;
                self.blacklists.remove(&app);
                // A deleted app takes its licenses with it.
                if self
                    .licenses
                    .invalidate_entries_if(move |k, _| k.0 == app)
                    .is_err()
                {
                    self.flush_all();
                }
            }
            Invalidation::Blacklist { app } => {
                self.generations.apps.fetch_add(1, Ordering::SeqCst);
                self.blacklists.remove(app);
            }
            Invalidation::User { .. }
            | Invalidation::Vars { .. }
            | Invalidation::Session { .. } => {}
            Invalidation::All => self.flush_all(),
        }
        self.client.apply(inv).await;
    }

    pub fn flush_all(&self) {
        self.client.clear();
        self.generations.bump_all();
        self.apps.invalidate_all();
        self.licenses.invalidate_all();
        self.blacklists.clear();
    }

    pub async fn license_entries(&self) -> u64 {
        // Counts are maintained lazily; settle them so the metric is exact.
        self.licenses.run_pending_tasks().await;
        self.licenses.entry_count()
    }
}
