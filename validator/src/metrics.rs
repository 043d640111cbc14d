//! Prometheus metrics. Hot-path counters are resolved once at start-up, so counting a validation
//! is one atomic add.

use keyward_shared::verdict::Code;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, &'static str)>;

pub struct Metrics {
    registry: Registry,
    verdicts: Vec<Counter>,
    errors: Family<Labels, Counter>,
    cache_hits: Counter,
    cache_misses: Family<Labels, Counter>,
    invalidations: Family<Labels, Counter>,
    pub listener_reconnects: Counter,
    pub cache_flushes: Counter,
    pub activations: Counter,
    /// Consumption credits this validator spent (committed), answered or not.
    pub credits_spent: Counter,
    pub license_lookups: Counter,
    pub usage_flush_failures: Counter,
    pub license_stats_dropped: Counter,
    pub license_stats_write_failures: Counter,
    pub listener_connected: Gauge,
    pub license_cache_entries: Gauge,
    pub rate_limiter_tracked: Gauge,
    pub password_hashes: Gauge,
    pub usage_backlog: Gauge,
    pub execution_backlog: Gauge,
    pub license_stats_backlog: Gauge,
    pub validation_counts_dropped: Counter,
    pub validation_counts_write_failures: Counter,
    pub validation_counts_backlog: Gauge,
    miss_reads: Family<Labels, Counter>,
    replica_fallbacks: Family<Labels, Counter>,
    /// How long the most lagging replica has been behind the invalidations applied (ms).
    pub replica_lag_ms: Gauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("keyward_validator");
        let verdict_family = Family::<Labels, Counter>::default();
        registry.register(
            "verdicts",
            "Validation verdicts by code",
            verdict_family.clone(),
        );
        let verdicts = Code::ALL
            .iter()
            .map(|c| {
                verdict_family
                    .get_or_create(&vec![("code", c.as_str())])
                    .clone()
            })
            .collect();
        let errors = Family::<Labels, Counter>::default();
        registry.register(
            "errors",
            "Requests answered with a transport error, by error code",
            errors.clone(),
        );
        let cache_hits = Counter::default();
        registry.register(
            "license_cache_hits",
            "License cache hits",
            cache_hits.clone(),
        );
        let cache_misses = Family::<Labels, Counter>::default();
        registry.register(
            "cache_misses",
            "Cache misses (reads from PostgreSQL) by cache",
            cache_misses.clone(),
        );
        let invalidations = Family::<Labels, Counter>::default();
        registry.register(
            "invalidations",
            "Invalidations applied, by kind",
            invalidations.clone(),
        );
        let listener_reconnects = Counter::default();
        registry.register(
            "listener_reconnects",
            "Times the invalidation listener lost its connection",
            listener_reconnects.clone(),
        );
        let cache_flushes = Counter::default();
        registry.register(
            "cache_flushes",
            "Full cache flushes (listener (re)connects, lost notifications)",
            cache_flushes.clone(),
        );
        let activations = Counter::default();
        registry.register(
            "activations",
            "First-use writes (HWID binds, IP records, expiry starts)",
            activations.clone(),
        );
        let credits_spent = Counter::default();
        registry.register(
            "credits_spent",
            "Consumption credits spent by CyberLicense validations (committed, even when the \
             client left before its answer)",
            credits_spent.clone(),
        );
        let license_lookups = Counter::default();
        registry.register(
            "license_lookups",
            "Statements that read missed licenses (misses ÷ lookups is the batch size)",
            license_lookups.clone(),
        );
        let usage_flush_failures = Counter::default();
        registry.register(
            "usage_flush_failures",
            "Failed writes of the batched usage counters",
            usage_flush_failures.clone(),
        );
        let listener_connected = Gauge::default();
        registry.register(
            "listener_connected",
            "1 while the invalidation listener is connected",
            listener_connected.clone(),
        );
        let license_cache_entries = Gauge::default();
        registry.register(
            "license_cache_entries",
            "Licenses cached (including unknown keys)",
            license_cache_entries.clone(),
        );
        let rate_limiter_tracked = Gauge::default();
        registry.register(
            "rate_limiter_tracked_clients",
            "Client addresses with rate-limiter state",
            rate_limiter_tracked.clone(),
        );
        let password_hashes = Gauge::default();
        registry.register(
            "password_hashes",
            "End-user password hashes computed (argon2id/bcrypt, incl. unknown-user dummies)",
            password_hashes.clone(),
        );
        let usage_backlog = Gauge::default();
        registry.register(
            "usage_backlog",
            "Licenses whose validation counts are not yet written to the database",
            usage_backlog.clone(),
        );
        let execution_backlog = Gauge::default();
        registry.register(
            "execution_backlog",
            "Execution-count pushes (Panda) not yet written to the database",
            execution_backlog.clone(),
        );
        let license_stats_dropped = Counter::default();
        registry.register(
            "license_stats_dropped",
            "Validations whose usage statistics were dropped, at least in part: the buffer was full",
            license_stats_dropped.clone(),
        );
        let license_stats_write_failures = Counter::default();
        registry.register(
            "license_stats_write_failures",
            "Failed writes of the buffered usage statistics (the rest of that flush is dropped)",
            license_stats_write_failures.clone(),
        );
        let license_stats_backlog = Gauge::default();
        registry.register(
            "license_stats_backlog",
            "Usage-statistics entries (licenses, days, IPs/HWIDs, requests) not yet written",
            license_stats_backlog.clone(),
        );
        let validation_counts_dropped = Counter::default();
        registry.register(
            "validation_counts_dropped",
            "Validations left out of the per-minute counts: their buffer was full",
            validation_counts_dropped.clone(),
        );
        let validation_counts_write_failures = Counter::default();
        registry.register(
            "validation_counts_write_failures",
            "Failed writes of the per-minute validation counts (kept for the next flush)",
            validation_counts_write_failures.clone(),
        );
        let validation_counts_backlog = Gauge::default();
        registry.register(
            "validation_counts_backlog",
            "Per-minute validation buckets (app, minute, outcome) not yet written",
            validation_counts_backlog.clone(),
        );
        let miss_reads = Family::<Labels, Counter>::default();
        registry.register(
            "miss_reads",
            "Cache-miss reads by where they ran (replica or primary), with --replica-url",
            miss_reads.clone(),
        );
        let replica_fallbacks = Family::<Labels, Counter>::default();
        registry.register(
            "replica_fallbacks",
            "Misses read from the primary instead of a replica, by reason (behind, down, error)",
            replica_fallbacks.clone(),
        );
        let replica_lag_ms = Gauge::default();
        registry.register(
            "replica_lag_ms",
            "How long the most lagging replica has been behind the applied invalidations",
            replica_lag_ms.clone(),
        );
        Metrics {
            miss_reads,
            replica_fallbacks,
            replica_lag_ms,
            validation_counts_dropped,
            validation_counts_write_failures,
            validation_counts_backlog,
            license_stats_dropped,
            license_stats_write_failures,
            license_stats_backlog,
            execution_backlog,
            password_hashes,
            usage_backlog,
            registry,
            verdicts,
            errors,
            cache_hits,
            cache_misses,
            invalidations,
            listener_reconnects,
            cache_flushes,
            activations,
            credits_spent,
            license_lookups,
            usage_flush_failures,
            listener_connected,
            license_cache_entries,
            rate_limiter_tracked,
        }
    }

    pub fn verdict(&self, code: Code) {
        if let Some(c) = self.verdicts.get(code.index()) {
            c.inc();
        }
    }

    pub fn error(&self, code: &'static str) {
        self.errors.get_or_create(&vec![("code", code)]).inc();
    }

    pub fn cache_hit(&self) {
        self.cache_hits.inc();
    }

    pub fn cache_miss(&self, cache: &'static str) {
        self.cache_misses
            .get_or_create(&vec![("cache", cache)])
            .inc();
    }

    pub fn invalidation(&self, kind: &'static str) {
        self.invalidations
            .get_or_create(&vec![("kind", kind)])
            .inc();
    }

    pub fn miss_read(&self, source: &'static str) {
        self.miss_reads
            .get_or_create(&vec![("source", source)])
            .inc();
    }

    pub fn replica_fallback(&self, reason: &'static str) {
        self.replica_fallbacks
            .get_or_create(&vec![("reason", reason)])
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
