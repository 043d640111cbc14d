use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A JSON body of exactly `size` bytes (at least `{"a":""}`).
pub fn body_of_size(size: usize) -> Bytes {
    let pad = size.saturating_sub(8);
    Bytes::from(format!("{{\"a\":\"{}\"}}", "x".repeat(pad)))
}

pub async fn serve(listen: SocketAddr, body_size: usize) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let body = body_of_size(body_size);
    eprintln!(
        "baseline-server on {} answering {} bytes",
        listener.local_addr()?,
        body.len()
    );
    serve_on(listener, body).await
}

pub async fn serve_on(listener: TcpListener, body: Bytes) -> anyhow::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |_req: Request<hyper::body::Incoming>| {
                let body = body.clone();
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(body))
                            .unwrap_or_default(),
                    )
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn body_has_requested_size() {
        assert_eq!(super::body_of_size(120).len(), 120);
        assert_eq!(super::body_of_size(3).len(), 8);
    }
}
