//! [`Guarded`]: a bounded cache of optional values (absent ones cached negatively) with the
//! license cache's staleness rules and load-vs-invalidation guard, for the client API's
//! sessions, end users, variables and app names. On quick_cache, looked up by borrowed keys
//! ([`Lookup`]): a KeyAuth `check` reads three of these, and building a `(Uuid, String)` per
//! lookup plus moka's read recording cost ≈ 0.3 µs each.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
#[cfg(test)]
use std::time::Duration;
use std::time::Instant;

use keyward_shared::StoreError;
use quick_cache::Equivalent;
use uuid::Uuid;

use super::{CacheError, Cached, Staleness};
use crate::config::Config;
use crate::health::Health;

/// A key to look up without owning one: hashes and compares like the key `K` it stands for.
pub trait Lookup<K>: Hash + Equivalent<K> {
    fn to_key(&self) -> K;
}

impl<K: Hash + Eq + Clone> Lookup<K> for K {
    fn to_key(&self) -> K {
        self.clone()
    }
}

/// A `String` key looked up by `&str` (the Keygen facade's license keys).
impl Lookup<String> for str {
    fn to_key(&self) -> String {
        self.to_owned()
    }
}

/// `(app, name)` borrowed: looks up a `(Uuid, String)` key (sessions, end users).
#[derive(Clone, Copy)]
pub struct InApp<'a>(pub Uuid, pub &'a str);

impl Hash for InApp<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Exactly what `(Uuid, String)` hashes: the fields in order, a `String` as its `str`.
        (self.0, self.1).hash(state)
    }
}

impl Equivalent<(Uuid, String)> for InApp<'_> {
    fn equivalent(&self, key: &(Uuid, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

impl Lookup<(Uuid, String)> for InApp<'_> {
    fn to_key(&self) -> (Uuid, String) {
        (self.0, self.1.to_string())
    }
}

/// `(owner, name)` borrowed: looks up a `(String, String)` key (app names).
#[derive(Clone, Copy)]
pub struct Named<'a>(pub &'a str, pub &'a str);

impl Hash for Named<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (self.0, self.1).hash(state)
    }
}

impl Equivalent<(String, String)> for Named<'_> {
    fn equivalent(&self, key: &(String, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

impl Lookup<(String, String)> for Named<'_> {
    fn to_key(&self) -> (String, String) {
        (self.0.to_string(), self.1.to_string())
    }
}

type Entry<V> = Cached<Option<Arc<V>>>;

pub struct Guarded<K, V> {
    cache: quick_cache::sync::Cache<K, Entry<V>>,
    generation: AtomicU64,
    staleness: Staleness,
    health: Arc<Health>,
}

impl<K, V> Guarded<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    pub fn new(cfg: &Config, capacity: u64, health: Arc<Health>) -> Self {
        Guarded {
            cache: quick_cache::sync::Cache::new(
                usize::try_from(capacity).unwrap_or(usize::MAX).max(1),
            ),
            generation: AtomicU64::new(0),
            staleness: Staleness::new(cfg),
            health,
        }
    }

    /// The cached value, or `load`'s answer (cached, unless an invalidation raced the load).
    pub async fn get_or_load<Q, F, Fut>(
        &self,
        key: &Q,
        load: F,
    ) -> Result<Option<Arc<V>>, CacheError>
    where
        Q: Lookup<K> + ?Sized,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<V>, StoreError>>,
    {
        let freshness = self.health.freshness();
        match self.cache.get(key) {
            Some(entry) => {
                match self
                    .staleness
                    .usable(entry.loaded, entry.value.is_some(), freshness)
                {
                    Some(true) => return Ok(entry.value),
                    Some(false) => {
                        self.cache.remove(key);
                    }
                    None => return Err(CacheError::Unavailable),
                }
            }
            None if freshness != crate::health::Freshness::Live => {
                return Err(CacheError::Unavailable)
            }
            None => {}
        }
        let before = self.generation.load(Ordering::SeqCst);
        let value = load()
            .await
            .map_err(|e| CacheError::from(&e))?
            .map(Arc::new);
        let key = key.to_key();
        self.cache.insert(
            key.clone(),
            Cached {
                value: value.clone(),
                loaded: Instant::now(),
            },
        );
        if self.generation.load(Ordering::SeqCst) != before {
            self.cache.remove(&key);
        }
        Ok(value)
    }

    /// Drops what this validator itself just changed: also sends its next reads to the primary
    /// until a replica is known to have the change (see `replica::Reads`).
    pub fn forget<Q: Lookup<K> + ?Sized>(&self, key: &Q) {
        self.health.local_write();
        self.invalidate(key);
    }

    /// Drops an entry someone else changed (the listener's invalidations).
    pub fn invalidate<Q: Lookup<K> + ?Sized>(&self, key: &Q) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.remove(key);
    }

    /// Drops every entry the predicate selects.
    pub fn forget_if(&self, pred: impl Fn(&K, Option<&V>) -> bool) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.retain(|k, v| !pred(k, v.value.as_deref()));
    }

    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.cache.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.cache.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> Arc<Health> {
        let health = Health::new(Duration::from_secs(1));
        health.set_connected();
        Arc::new(health)
    }

    #[test]
    fn borrowed_keys_find_owned_ones() {
        use std::collections::hash_map::RandomState;
        use std::hash::BuildHasher;
        let s = RandomState::new();
        let app = Uuid::new_v4();
        assert_eq!(
            s.hash_one(InApp(app, "sess")),
            s.hash_one((app, "sess".to_string()))
        );
        assert_eq!(
            s.hash_one(Named("owner", "app")),
            s.hash_one(("owner".to_string(), "app".to_string()))
        );
        assert_ne!(
            s.hash_one(Named("ow", "nerapp")),
            s.hash_one(("owner".to_string(), "app".to_string()))
        );
    }

    #[tokio::test]
    async fn loads_once_then_serves_and_forgets_by_borrowed_key() {
        let cfg = Config::new("");
        let cache: Guarded<(Uuid, String), u32> = Guarded::new(&cfg, 16, live());
        let app = Uuid::new_v4();
        let loads = AtomicU64::new(0);
        let load = || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok(Some(7))
        };
        let got = cache.get_or_load(&InApp(app, "s1"), load).await;
        assert_eq!(got.ok().flatten().as_deref(), Some(&7));
        let again = cache.get_or_load(&InApp(app, "s1"), load).await;
        assert_eq!(again.ok().flatten().as_deref(), Some(&7));
        assert_eq!(loads.load(Ordering::SeqCst), 1, "the second read is a hit");
        cache.forget(&InApp(app, "s1"));
        assert_eq!(cache.len(), 0);
        let _ = cache.get_or_load(&InApp(app, "s1"), load).await;
        assert_eq!(
            loads.load(Ordering::SeqCst),
            2,
            "a forgotten key is read again"
        );
        cache.forget_if(|k, _| k.0 == app);
        assert_eq!(cache.len(), 0);
    }

    #[tokio::test]
    async fn a_load_racing_an_invalidation_is_not_kept() {
        let cfg = Config::new("");
        let cache: Guarded<Uuid, u32> = Guarded::new(&cfg, 16, live());
        let id = Uuid::new_v4();
        let got = cache
            .get_or_load(&id, || async {
                cache.forget(&Uuid::new_v4());
                Ok(Some(1))
            })
            .await;
        assert_eq!(
            got.ok().flatten().as_deref(),
            Some(&1),
            "the caller gets its read"
        );
        assert_eq!(cache.len(), 0, "but it is not cached");
    }
}
