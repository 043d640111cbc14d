//! The accept loop both services run: plain HTTP/1.1, or TLS with HTTP/2 or HTTP/1.1 as ALPN
//! decides; deadlines for a client's TLS handshake and request head (slow-loris protection);
//! a graceful stop that lets in-flight requests finish within a bound. Routing and wire formats
//! stay in the services: this only moves bytes between sockets and their `Service`.

use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::{http1, http2};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::tls::{Tls, ALPN_H2};

/// A client must finish its TLS handshake, and the head of each request, within this.
const CLIENT_DEADLINE: Duration = Duration::from_secs(10);

type BoxError = Box<dyn StdError + Send + Sync>;

/// Serves `listener` until `stop` resolves, then waits up to `grace` for open connections to
/// finish their requests. `service_for` makes the service of one connection from its peer.
pub async fn serve<M, S, B>(
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    service_for: M,
    stop: impl Future<Output = ()>,
    grace: Duration,
) where
    M: Fn(SocketAddr) -> S,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let graceful = GracefulShutdown::new();
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(CLIENT_DEADLINE);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new());
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Typically out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = service_for(peer);
                let Some(tls) = &tls else {
                    let conn = graceful.watch(h1.serve_connection(TokioIo::new(stream), service));
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                    continue;
                };
                // The handshake runs in the connection's own task, bounded, so a slow or silent
                // client holds nothing but itself.
                let acceptor = tls.acceptor().clone();
                let (h1, h2, watcher) = (h1.clone(), h2.clone(), graceful.watcher());
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(CLIENT_DEADLINE, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %peer, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let h2_negotiated = stream.get_ref().1.alpn_protocol() == Some(ALPN_H2);
                    let io = TokioIo::new(stream);
                    let result = if h2_negotiated {
                        watcher.watch(h2.serve_connection(io, service)).await
                    } else {
                        watcher.watch(h1.serve_connection(io, service)).await
                    };
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = &mut stop => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(?grace, "in-flight connections did not finish in time");
    }
}

/// Waits for SIGTERM or Ctrl-C; each SIGHUP in between calls `on_hangup` (the services reload
/// their TLS certificate), so a HUP never stops the process.
pub async fn until_stopped(mut on_hangup: impl FnMut()) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            r = tokio::signal::ctrl_c() => return r,
            _ = hangup.recv() => on_hangup(),
        }
    }
}
