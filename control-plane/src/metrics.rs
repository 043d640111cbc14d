//! Prometheus metrics: responses by route template and status.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::AppState;

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    responses: Family<Labels, Counter>,
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
        Metrics {
            registry,
            responses,
        }
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
