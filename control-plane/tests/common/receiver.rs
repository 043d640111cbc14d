//! A webhook receiver on 127.0.0.1:0 that records what it gets and answers scripted statuses.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use keyward_shared::testing::eventually;
use serde_json::Value;

/// How long a test waits for deliveries.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// One request the receiver got.
#[derive(Clone)]
pub struct Got {
    pub at: Instant,
    pub target: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Got {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    /// The event document inside the delivery (`attributes.payload` is JSON text).
    pub fn payload(&self) -> Value {
        let text = self.json()["data"]["attributes"]["payload"]
            .as_str()
            .expect("payload is a string")
            .to_string();
        serde_json::from_str(&text).expect("payload is JSON text")
    }

    pub fn event(&self) -> String {
        self.json()["data"]["attributes"]["event"]
            .as_str()
            .expect("event name")
            .to_string()
    }
}

#[derive(Default)]
struct ReceiverState {
    got: Vec<Got>,
    /// Statuses to answer, in order; 200 once empty.
    script: VecDeque<u16>,
}

/// A webhook receiver on 127.0.0.1:0.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<ReceiverState>>,
}

impl Receiver {
    pub async fn start(script: &[u16]) -> Receiver {
        let state = Arc::new(Mutex::new(ReceiverState {
            got: Vec::new(),
            script: script.iter().copied().collect(),
        }));
        let shared = state.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let state = shared.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20)
                    .await
                    .expect("request body");
                let target = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default();
                let mut s = state.lock().expect("receiver state");
                s.got.push(Got {
                    at: Instant::now(),
                    target,
                    headers: parts.headers,
                    body: body.to_vec(),
                });
                let status = s.script.pop_front().unwrap_or(200);
                // A long error body, to see the log keep only its start.
                let text = if status >= 300 {
                    "E".repeat(6000)
                } else {
                    "thanks".into()
                };
                (StatusCode::from_u16(status).expect("status"), text)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn got(&self) -> Vec<Got> {
        self.state.lock().expect("receiver state").got.clone()
    }

    pub async fn wait_for(&self, n: usize) -> Vec<Got> {
        eventually(PATIENCE, &format!("{n} webhook deliveries"), || async {
            let got = self.got();
            (got.len() >= n).then_some(got)
        })
        .await
        .0
    }
}
