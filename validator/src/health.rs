//! Whether the validator can reach PostgreSQL, and since when it cannot. The invalidation listener
//! is the authority: while it is disconnected no invalidation can arrive, so cached answers are
//! only trusted for the outage grace.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct Health {
    origin: Instant,
    /// Listener connected, `LISTEN` active and caches flushed since.
    connected: AtomicBool,
    /// Milliseconds since `origin` at which the current outage began.
    outage_since_ms: AtomicU64,
    shutting_down: AtomicBool,
    grace: Duration,
}

/// What a cached entry may be used for right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Connected: cached entries are kept current by invalidations.
    Live,
    /// Disconnected within the grace: serve what is cached, refuse misses.
    Grace,
    /// Disconnected beyond the grace: refuse everything.
    Down,
}

impl Health {
    pub fn new(grace: Duration) -> Health {
        Health {
            origin: Instant::now(),
            connected: AtomicBool::new(false),
            outage_since_ms: AtomicU64::new(0),
            shutting_down: AtomicBool::new(false),
            grace,
        }
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    pub fn set_connected(&self) {
        self.connected.store(true, Ordering::SeqCst);
    }

    /// Marks the start of an outage (a no-op when one is already under way).
    pub fn set_disconnected(&self) {
        if self.connected.swap(false, Ordering::SeqCst) {
            self.outage_since_ms.store(self.now_ms(), Ordering::SeqCst);
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub fn freshness(&self) -> Freshness {
        if self.connected.load(Ordering::Relaxed) {
            return Freshness::Live;
        }
        let since = self.outage_since_ms.load(Ordering::Relaxed);
        if self.now_ms().saturating_sub(since) <= self.grace.as_millis() as u64 {
            Freshness::Grace
        } else {
            Freshness::Down
        }
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.is_connected() && !self.shutting_down.load(Ordering::Relaxed)
    }
}
