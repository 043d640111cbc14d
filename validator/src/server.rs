//! The validator's HTTP service on the shared accept loop (plain, or TLS with h2/HTTP/1.1).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use keyward_shared::tls::Tls;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::{routes, State};

pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let grace = Duration::from_secs(state.cfg.shutdown_grace_secs);
    let service_for = move |peer: std::net::SocketAddr| {
        let st = state.clone();
        service_fn(move |req| {
            let st = st.clone();
            async move { Ok::<_, Infallible>(routes::handle(&st, peer.ip(), req).await) }
        })
    };
    let stop = async move {
        let _ = shutdown.changed().await;
    };
    keyward_shared::serve::serve(listener, tls, service_for, stop, grace).await;
}
