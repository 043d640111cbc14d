//! Whether the validator can reach PostgreSQL, since when it cannot, and whether it can serve.
//! The invalidation listener is the authority: while it is disconnected no invalidation can
//! arrive, so cached answers are only trusted for the outage grace.
//!
//! Readiness means "this instance can serve", so that a load balancer or Kubernetes takes an
//! instance out of rotation only when it cannot: not ready until the first flush after start;
//! ready while connected, and while serving cached answers within the outage grace (taking every
//! validator out at once when PostgreSQL goes away would turn the grace into a full outage); not
//! ready once the grace is over, from a reconnect until its flush, and while draining on
//! shutdown. Liveness (`/healthz`) is only the process answering.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct Health {
    origin: Instant,
    /// Listener connected, `LISTEN` active and caches flushed since.
    connected: AtomicBool,
    /// The caches have been flushed under a live listener at least once since start.
    ever_live: AtomicBool,
    /// A listener connection is up again but its flush has not run yet.
    resyncing: AtomicBool,
    /// Milliseconds since `origin` at which the current outage began.
    outage_since_ms: AtomicU64,
    shutting_down: AtomicBool,
    grace: Duration,
    /// Changes this validator wrote itself (see `replica::Reads`: reads go to the primary
    /// until the primary's position after them is known).
    local_writes: AtomicU64,
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

/// What `/readyz` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Starting,
    Live,
    /// PostgreSQL unreachable; cached answers are served for this much longer.
    Outage {
        grace_left: Duration,
    },
    /// PostgreSQL unreachable for longer than the grace.
    GraceOver,
    /// Reconnected, caches not yet flushed.
    Resyncing,
    Draining,
}

impl Readiness {
    pub fn is_ready(self) -> bool {
        matches!(self, Readiness::Live | Readiness::Outage { .. })
    }
}

impl Health {
    pub fn new(grace: Duration) -> Health {
        Health {
            origin: Instant::now(),
            connected: AtomicBool::new(false),
            ever_live: AtomicBool::new(false),
            resyncing: AtomicBool::new(false),
            outage_since_ms: AtomicU64::new(0),
            shutting_down: AtomicBool::new(false),
            grace,
            local_writes: AtomicU64::new(0),
        }
    }

    /// This validator committed a change and drops what it cached of it.
    pub fn local_write(&self) {
        self.local_writes.fetch_add(1, Ordering::SeqCst);
    }

    pub fn local_writes(&self) -> u64 {
        self.local_writes.load(Ordering::SeqCst)
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// The listener is connected again; its flush is next.
    pub fn set_resyncing(&self) {
        self.resyncing.store(true, Ordering::SeqCst);
    }

    /// The listener is connected and the caches were flushed.
    pub fn set_connected(&self) {
        self.connected.store(true, Ordering::SeqCst);
        self.ever_live.store(true, Ordering::SeqCst);
        self.resyncing.store(false, Ordering::SeqCst);
    }

    /// Marks the start of an outage (a no-op when one is already under way).
    pub fn set_disconnected(&self) {
        self.resyncing.store(false, Ordering::SeqCst);
        if self.connected.swap(false, Ordering::SeqCst) {
            self.outage_since_ms.store(self.now_ms(), Ordering::SeqCst);
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    fn outage_age(&self) -> Duration {
        let since = self.outage_since_ms.load(Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(since))
    }

    pub fn freshness(&self) -> Freshness {
        if self.connected.load(Ordering::Relaxed) {
            return Freshness::Live;
        }
        if self.outage_age() <= self.grace {
            Freshness::Grace
        } else {
            Freshness::Down
        }
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn readiness(&self) -> Readiness {
        if self.shutting_down.load(Ordering::Relaxed) {
            return Readiness::Draining;
        }
        if !self.ever_live.load(Ordering::Relaxed) {
            return Readiness::Starting;
        }
        if self.resyncing.load(Ordering::Relaxed) {
            return Readiness::Resyncing;
        }
        match self.freshness() {
            Freshness::Live => Readiness::Live,
            Freshness::Grace => Readiness::Outage {
                grace_left: self.grace.saturating_sub(self.outage_age()),
            },
            Freshness::Down => Readiness::GraceOver,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.readiness().is_ready()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_the_lifecycle() {
        let h = Health::new(Duration::from_secs(60));
        assert_eq!(
            h.readiness(),
            Readiness::Starting,
            "not before the first flush"
        );
        h.set_resyncing();
        assert_eq!(h.readiness(), Readiness::Starting);
        h.set_connected();
        assert_eq!(h.readiness(), Readiness::Live);
        h.set_disconnected();
        assert!(
            matches!(h.readiness(), Readiness::Outage { grace_left } if grace_left > Duration::from_secs(59)),
            "serving cached answers within the grace is ready: {:?}",
            h.readiness()
        );
        h.set_resyncing();
        assert_eq!(
            h.readiness(),
            Readiness::Resyncing,
            "reconnected, not yet flushed"
        );
        h.set_connected();
        assert_eq!(h.readiness(), Readiness::Live);
        h.begin_shutdown();
        assert_eq!(h.readiness(), Readiness::Draining);
    }

    #[test]
    fn an_outage_past_the_grace_is_not_ready() {
        let h = Health::new(Duration::ZERO);
        h.set_connected();
        h.set_disconnected();
        // Zero grace: any time after the outage began is past it (the clock only moves on).
        let until = Instant::now() + Duration::from_secs(5);
        while h.readiness() != Readiness::GraceOver {
            assert!(Instant::now() < until, "{:?}", h.readiness());
            std::hint::spin_loop();
        }
        assert!(!h.is_ready());
        assert_eq!(h.freshness(), Freshness::Down);
    }
}
