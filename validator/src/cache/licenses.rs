//! The license cache, sized for a million entries: quick_cache rather than moka (measured with
//! 200 000 entries: ≈ 66 B of overhead per entry against moka's ≈ 330 B), values in the compact
//! [`LicenseFacts`] form, and keys as `(app, 128-bit keyed hash of the license key)` so no entry
//! carries a copy of its key. The hash is SipHash under two random per-process keys: nobody can
//! aim at a collision, and an accidental one is as likely as two random UUIDs colliding.
//!
//! Staleness is checked by the caller from [`Entry::loaded`]; quick_cache has no TTL, so an
//! entry lives until it is evicted, invalidated or found too old and replaced.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use keyward_shared::license_facts::LicenseFacts;
use uuid::Uuid;

/// Where a license lives in the cache: its app and the keyed hash of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot(Uuid, u128);

/// A cached answer: the license, or `None` for a key that does not exist.
#[derive(Clone)]
pub struct Entry {
    pub loaded: Instant,
    pub license: Option<LicenseFacts>,
}

const GENERATION_SHARDS: usize = 64;
const INITIAL_RESERVATION: usize = 65_536;

pub struct LicenseCache {
    entries: quick_cache::sync::Cache<Slot, Entry>,
    key_hashers: [RandomState; 2],
    /// Invalidation counters, bumped *before* an entry is dropped and compared after a load was
    /// inserted: if one moved, the load may predate the change and its entry is dropped again.
    /// Spread over shards so unrelated invalidations rarely discard a load.
    generations: [AtomicU64; GENERATION_SHARDS],
}

impl LicenseCache {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        LicenseCache {
            // Reserve for a modest working set and grow on demand, so a validator configured for
            // a million licenses but serving thousands does not hold memory for a million.
            entries: quick_cache::sync::Cache::with_weighter(
                capacity.min(INITIAL_RESERVATION),
                capacity as u64,
                quick_cache::UnitWeighter,
            ),
            key_hashers: [RandomState::new(), RandomState::new()],
            generations: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    pub fn slot(&self, app: Uuid, key: &str) -> Slot {
        let [a, b] = &self.key_hashers;
        Slot(
            app,
            (u128::from(a.hash_one(key)) << 64) | u128::from(b.hash_one(key)),
        )
    }

    fn generation(&self, slot: &Slot) -> &AtomicU64 {
        &self.generations[(slot.1 as usize) % GENERATION_SHARDS]
    }

    pub fn get(&self, slot: &Slot) -> Option<Entry> {
        self.entries.get(slot)
    }

    /// Loads a missing entry; concurrent loads of one slot share a single `load`.
    pub async fn load<F, Fut, E>(&self, slot: Slot, load: F) -> Result<Option<LicenseFacts>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<LicenseFacts>, E>>,
    {
        let guard = match self.entries.get_value_or_guard_async(&slot).await {
            Ok(entry) => return Ok(entry.license),
            Err(guard) => guard,
        };
        let generation = self.generation(&slot);
        let before = generation.load(Ordering::SeqCst);
        // On an error the guard is dropped and waiting requests load for themselves.
        let license = load().await?;
        let entry = Entry {
            loaded: Instant::now(),
            license: license.clone(),
        };
        // Refused when an invalidation removed the placeholder meanwhile: nothing to undo.
        if guard.insert(entry).is_ok() && generation.load(Ordering::SeqCst) != before {
            self.entries.remove(&slot);
        }
        Ok(license)
    }

    #[cfg(feature = "bench-support")]
    pub fn prime(&self, slot: Slot, license: Option<LicenseFacts>) {
        let entry = Entry {
            loaded: Instant::now(),
            license,
        };
        self.entries.insert(slot, entry);
    }

    pub fn forget(&self, slot: &Slot) {
        self.generation(slot).fetch_add(1, Ordering::SeqCst);
        self.entries.remove(slot);
    }

    /// Drops every license of an app (a deleted app takes its licenses with it).
    pub fn forget_app(&self, app: Uuid) {
        self.bump_all();
        self.entries.retain(|slot, _| slot.0 != app);
    }

    pub fn clear(&self) {
        self.bump_all();
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn bump_all(&self) {
        for g in &self.generations {
            g.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::atomic::AtomicUsize;

    /// What a load returns here: these tests never fail one.
    fn found(license: Option<LicenseFacts>) -> Result<Option<LicenseFacts>, Infallible> {
        Ok(license)
    }

    fn facts() -> LicenseFacts {
        keyward_shared::fixtures::license("HWID-1").facts()
    }

    #[test]
    fn slots_separate_apps_and_keys() {
        let cache = LicenseCache::new(10);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(cache.slot(a, "K-1"), cache.slot(a, "K-1"));
        assert_ne!(cache.slot(a, "K-1"), cache.slot(a, "K-2"));
        assert_ne!(cache.slot(a, "K-1"), cache.slot(b, "K-1"));
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_load() {
        let cache = LicenseCache::new(10);
        let slot = cache.slot(Uuid::new_v4(), "K");
        let loads = AtomicUsize::new(0);
        let load = || async {
            loads.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            found(Some(facts()))
        };
        let (x, y) = tokio::join!(cache.load(slot, load), cache.load(slot, load));
        assert!(x.unwrap().is_some() && y.unwrap().is_some());
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert!(cache.get(&slot).is_some());
    }

    #[tokio::test]
    async fn a_load_racing_an_invalidation_is_not_kept() {
        let cache = LicenseCache::new(10);
        let slot = cache.slot(Uuid::new_v4(), "K");
        let loaded = cache
            .load(slot, || async {
                // The row was read, then changed and invalidated before the insert.
                cache.forget(&slot);
                found(Some(facts()))
            })
            .await
            .unwrap();
        assert!(loaded.is_some());
        assert!(cache.get(&slot).is_none());
        // Same for an app-wide invalidation.
        let app = Uuid::new_v4();
        let slot = cache.slot(app, "K");
        cache
            .load(slot, || async {
                cache.forget_app(app);
                found(None)
            })
            .await
            .unwrap();
        assert!(cache.get(&slot).is_none());
    }

    #[tokio::test]
    async fn forget_app_keeps_other_apps() {
        let cache = LicenseCache::new(10);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for app in [a, b] {
            cache
                .load(cache.slot(app, "K"), || async { found(None) })
                .await
                .unwrap();
        }
        cache.forget_app(a);
        assert!(cache.get(&cache.slot(a, "K")).is_none());
        assert!(cache.get(&cache.slot(b, "K")).is_some());
        assert_eq!(cache.len(), 1);
    }
}
