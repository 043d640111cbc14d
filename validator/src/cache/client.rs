//! What the client API keeps in memory, each kept current by the invalidation listener:
//! app names → ids, sessions, end users and global variables (all negative-cached), plus
//! short-lived per-app statistics that need no invalidation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use keyward_shared::invalidation::Invalidation;
use keyward_shared::model::AppUser;
use keyward_shared::store::apps::AppStats;
use keyward_shared::store::sessions::Session;
use keyward_shared::store::variables::ClientVar;
use moka::future::Cache;
use uuid::Uuid;

use super::{Guarded, InApp};
use crate::config::Config;
use crate::health::Health;

pub struct ClientCaches {
    /// (owner public id, app name) → app id.
    pub app_ids: Guarded<(String, String), Uuid>,
    /// (app, session id).
    pub sessions: Guarded<(Uuid, String), Session>,
    /// (app, username).
    pub users: Guarded<(Uuid, String), AppUser>,
    pub vars: Guarded<Uuid, HashMap<String, ClientVar>>,
    /// `fetchStats` numbers; KeyAuth caches them for an hour, we for a minute.
    pub stats: Cache<Uuid, Arc<AppStats>>,
    pub online: Cache<Uuid, Arc<Vec<String>>>,
}

impl ClientCaches {
    pub fn new(cfg: &Config, health: Arc<Health>) -> ClientCaches {
        fn short<V: Clone + Send + Sync + 'static>(cfg: &Config, secs: u64) -> Cache<Uuid, V> {
            Cache::builder()
                .max_capacity(cfg.app_cache_capacity)
                .time_to_live(Duration::from_secs(secs))
                .build()
        }
        ClientCaches {
            app_ids: Guarded::new(cfg, cfg.app_cache_capacity, health.clone()),
            sessions: Guarded::new(cfg, cfg.session_cache_capacity, health.clone()),
            users: Guarded::new(cfg, cfg.user_cache_capacity, health.clone()),
            vars: Guarded::new(cfg, cfg.app_cache_capacity, health),
            stats: short(cfg, 60),
            online: short(cfg, 10),
        }
    }

    pub async fn apply(&self, inv: &Invalidation) {
        match inv {
            Invalidation::Session { app, id } => self.sessions.invalidate(&InApp(*app, id)),
            Invalidation::User { app, username } => self.users.invalidate(&InApp(*app, username)),
            Invalidation::Vars { app } => self.vars.invalidate(app),
            Invalidation::App { app } => {
                let app = *app;
                // A renamed or new app may have been cached negatively under its name.
                self.app_ids
                    .forget_if(|_, id| id.is_none_or(|id| *id == app));
                self.sessions.forget_if(|k, _| k.0 == app);
                self.users.forget_if(|k, _| k.0 == app);
                self.vars.invalidate(&app);
                self.stats.invalidate(&app).await;
                self.online.invalidate(&app).await;
            }
            Invalidation::All => self.clear(),
            Invalidation::License { .. }
            | Invalidation::Policy { .. }
            | Invalidation::Blacklist { .. }
            | Invalidation::Keyless { .. } => {}
        }
    }

    pub fn clear(&self) {
        self.app_ids.clear();
        self.sessions.clear();
        self.users.clear();
        self.vars.clear();
        self.stats.invalidate_all();
        self.online.invalidate_all();
    }
}
