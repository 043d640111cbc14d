//! The Ed25519 keys that sign KeyAuth 1.3 and Keygen answers (on both services) and webhook
//! deliveries, loaded from PostgreSQL (where the first service to need one created the
//! deployment's primary key) and reloaded when an app names a key this process has not seen
//! (after a rotation) or periodically.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::model::App;
use crate::signing::Ed25519Signer;
use crate::store::signing_keys;

#[derive(Default)]
struct Loaded {
    by_id: HashMap<Uuid, Arc<Ed25519Signer>>,
    primary: Option<Uuid>,
}

pub struct Signers {
    loaded: RwLock<Arc<Loaded>>,
    /// Serialises reloads; holds when the last one finished.
    last_reload: tokio::sync::Mutex<Option<Instant>>,
}

impl Default for Signers {
    fn default() -> Self {
        Signers {
            loaded: RwLock::new(Arc::new(Loaded::default())),
            last_reload: tokio::sync::Mutex::new(None),
        }
    }
}

impl Signers {
    fn current(&self) -> Arc<Loaded> {
        match self.loaded.read() {
            Ok(l) => l.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn pick(loaded: &Loaded, key: Option<Uuid>) -> Option<Arc<Ed25519Signer>> {
        loaded.by_id.get(&key.or(loaded.primary)?).cloned()
    }

    /// The signer of an app's answers (or, for no app, of the deployment's primary key).
    pub async fn for_app(&self, pool: &Pool, app: Option<&App>) -> StoreResult<Arc<Ed25519Signer>> {
        let key = app.and_then(|a| a.signing_key_id);
        if let Some(s) = Self::pick(&self.current(), key) {
            return Ok(s);
        }
        self.reload(pool, Duration::from_millis(500)).await?;
        Self::pick(&self.current(), key).ok_or_else(|| {
            StoreError::Corrupt("the app's signing key is retired or missing".into())
        })
    }

    /// Reads the active keys, creating the primary if the deployment has none yet. Skipped when
    /// another reload finished less than `min_interval` ago (a burst of misses reloads once).
    pub async fn reload(&self, pool: &Pool, min_interval: Duration) -> StoreResult<()> {
        let mut last = self.last_reload.lock().await;
        if last.is_some_and(|t| t.elapsed() < min_interval) {
            return Ok(());
        }
        let mut client = crate::db::checkout(pool).await?;
        let mut seeds = signing_keys::active_seeds(&**client).await?;
        if !seeds.iter().any(|s| s.is_primary) {
            signing_keys::ensure_primary(&mut client, None).await?;
            seeds = signing_keys::active_seeds(&**client).await?;
        }
        let mut loaded = Loaded::default();
        for s in seeds {
            let signer = Ed25519Signer::from_seed(&s.seed)
                .map_err(|e| StoreError::Corrupt(format!("signing key {}: {e}", s.id)))?;
            if s.is_primary {
                loaded.primary = Some(s.id);
            }
            loaded.by_id.insert(s.id, Arc::new(signer));
        }
        match self.loaded.write() {
            Ok(mut l) => *l = Arc::new(loaded),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(loaded),
        }
        *last = Some(Instant::now());
        Ok(())
    }
}
