//! Prometheus metrics: responses by route template and status; reads by source (with
//! `--replica-url`).

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::AppState;

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    responses: Family<Labels, Counter>,
    reads: Family<Labels, Counter>,
    replica_fallbacks: Family<Labels, Counter>,
    /// How stale the most lagging replica is (ms since the newest primary position it replayed).
    pub replica_lag_ms: Gauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("keyward_control_plane");
        let responses = Family::<Labels, Counter>::default();
        registry.register(
            "responses",
            "HTTP responses by route and status",
            responses.clone(),
        );
        let reads = Family::<Labels, Counter>::default();
        registry.register(
            "reads",
            "Reads of the native API's GET handlers by where they ran (replica or primary)",
            reads.clone(),
        );
        let replica_fallbacks = Family::<Labels, Counter>::default();
        registry.register(
            "replica_fallbacks",
            "Reads sent to the primary instead of a replica, by reason (behind, down, error)",
            replica_fallbacks.clone(),
        );
        let replica_lag_ms = Gauge::default();
        registry.register(
            "replica_lag_ms",
            "How stale the most lagging replica is, with --replica-url",
            replica_lag_ms.clone(),
        );
        Metrics {
            registry,
            responses,
            reads,
            replica_fallbacks,
            replica_lag_ms,
        }
    }

    pub fn read(&self, source: &'static str) {
        self.reads
            .get_or_create(&vec![("source", source.to_string())])
            .inc();
    }

    pub fn replica_fallback(&self, reason: &'static str) {
        self.replica_fallbacks
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

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

pub async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    state
        .metrics()
        .responses
        .get_or_create(&vec![
            ("method", method),
            ("route", route),
            ("status", resp.status().as_u16().to_string()),
        ])
        .inc();
    resp
}
