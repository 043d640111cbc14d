//! Wakes the worker when events commit: a dedicated connection (never pooled: a pool drops
//! notifications) that LISTENs on the webhooks channel. A notification is only a hint: the
//! worker also polls, and it is woken after every (re)connect, so events committed while this
//! connection was down are claimed all the same.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use keyward_shared::store::webhook_events::CHANNEL;
use tokio::sync::{watch, Notify};
use tokio_postgres::{AsyncMessage, NoTls};

pub const APPLICATION_NAME: &str = "keyward-webhook-listener";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
enum ListenError {
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error("timed out")]
    Timeout,
    #[error("connection closed")]
    Closed,
}

pub async fn run(cfg: tokio_postgres::Config, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match listen(&cfg, &wake, &mut stop).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "webhook listener disconnected")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: Ok when told to stop, Err when the connection failed.
async fn listen(
    cfg: &tokio_postgres::Config,
    wake: &Arc<Notify>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), ListenError> {
    let (client, mut connection) = tokio::time::timeout(CONNECT_TIMEOUT, cfg.connect(NoTls))
        .await
        .map_err(|_| ListenError::Timeout)??;
    let notify = wake.clone();
    let mut driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => notify.notify_one(),
                Ok(_) => {}
                Err(e) => return Err(ListenError::Database(e)),
            }
        }
        Ok(())
    });
    let subscribed = tokio::time::timeout(
        CONNECT_TIMEOUT,
        client.batch_execute(&format!("LISTEN {CHANNEL}")),
    )
    .await;
    if let Err(e) = subscribed
        .map_err(|_| ListenError::Timeout)
        .and_then(|r| Ok(r?))
    {
        driver.abort();
        return Err(e);
    }
    // Whatever committed before the LISTEN took effect is claimed now.
    wake.notify_one();
    tokio::select! {
        ended = &mut driver => {
            match ended {
                Ok(Err(e)) => Err(e),
                // The connection closed without an error, or its task ended: reconnect.
                _ => Err(ListenError::Closed),
            }
        }
        _ = stop.changed() => {
            drop(client);
            driver.abort();
            Ok(())
        }
    }
}
