//! The invalidation listener: one dedicated connection (never pooled: a pool would drop
//! notifications and recycle the session) that `LISTEN`s and applies what control-planes and
//! other validators commit.
//!
//! On every (re)connect the order is LISTEN → read the generation → flush every cache → report
//! ready, so a change committed at any moment is either delivered or covered by the flush. A
//! periodic check of `cache_epoch` catches a notification lost in transit and a connection that
//! died silently.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use keyward_shared::{db, invalidation};
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, Client, NoTls};

use crate::State;

pub const APPLICATION_NAME: &str = "keyward-validator-listener";
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
enum ListenError {
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error("query timed out")]
    Timeout,
}

async fn with_timeout<T>(
    f: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, ListenError> {
    match tokio::time::timeout(QUERY_TIMEOUT, f).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(ListenError::Timeout),
    }
}

/// Connects and subscribes; notifications arrive on the returned channel, which closes when the
/// connection ends.
async fn subscribe(
    cfg: &tokio_postgres::Config,
) -> Result<(Client, mpsc::UnboundedReceiver<String>), ListenError> {
    let (client, mut connection) =
        match tokio::time::timeout(QUERY_TIMEOUT, cfg.connect(NoTls)).await {
            Ok(r) => r?,
            Err(_) => return Err(ListenError::Timeout),
        };
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "invalidation listener connection lost");
                    break;
                }
            }
        }
    });
    with_timeout(client.batch_execute(&format!("LISTEN {}", invalidation::CHANNEL))).await?;
    Ok((client, rx))
}

/// The cache generation, and the primary's WAL insert position read with it (at or past the
/// commit of every change up to that generation: what a replica must have replayed).
async fn current_generation(client: &Client) -> Result<(i64, i64), ListenError> {
    let sql = format!(
        "SELECT generation, {} FROM cache_epoch",
        crate::replica::PRIMARY_LSN_SQL
    );
    let row = with_timeout(client.query_one(&sql, &[])).await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// Where the primary's WAL is now (after notifications were received, so past their commits).
async fn primary_position(client: &Client) -> Result<i64, ListenError> {
    let sql = format!("SELECT {}", crate::replica::PRIMARY_LSN_SQL);
    let row = with_timeout(client.query_one(&sql, &[])).await?;
    Ok(row.try_get(0)?)
}

pub async fn run(state: Arc<State>, mut shutdown: watch::Receiver<bool>) {
    let mut cfg = match db::pg_config(&state.cfg.database_url, APPLICATION_NAME) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "invalid database URL; the listener cannot start");
            return;
        }
    };
    // The listener's session must be recognisable (operators, and tests that kill it).
    cfg.application_name(APPLICATION_NAME);
    let initial_backoff = Duration::from_millis(state.cfg.listener_backoff_ms.max(1));
    let mut backoff = initial_backoff;
    let mut first = true;
    let mut warmed = false;
    loop {
        if !first {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        first = false;
        let (client, mut notifications) = match subscribe(&cfg).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "invalidation listener cannot connect");
                continue;
            }
        };
        let mut seen = match current_generation(&client).await {
            Ok((g, lsn)) => {
                // Before the flush: a miss after it must see everything the flush stands for.
                state.caches.reads.require(lsn);
                g
            }
            Err(e) => {
                tracing::warn!(error = %e, "invalidation listener cannot read the cache generation");
                continue;
            }
        };
        // Connected again: not ready until the flush below has run.
        state.health.set_resyncing();
        if !warmed {
            // Before the first "ready": a load balancer sends traffic at once, and every miss of
            // that first burst would otherwise wait for a new PostgreSQL backend.
            let open = state.caches.warm_pool(state.cfg.pool_size).await;
            tracing::info!(open, "query pool warmed");
            warmed = true;
        }
        state.caches.flush_all();
        state.metrics.cache_flushes.inc();
        state.health.set_connected();
        state.metrics.listener_connected.set(1);
        tracing::info!(
            generation = seen,
            "invalidation listener connected; caches flushed"
        );
        backoff = initial_backoff;

        let mut epoch_check =
            tokio::time::interval(Duration::from_millis(state.cfg.epoch_check_ms.max(10)));
        epoch_check.tick().await;
        // A generation seen in the database, not yet seen in a notification.
        // (with the primary's position read with it).
        let mut awaited: Option<(i64, i64)> = None;
        let reads = state.caches.reads.clone();
        loop {
            tokio::select! {
                n = notifications.recv() => match n {
                    Some(payload) if reads.enabled() => {
                        // With replicas: one position for every notification already here,
                        // required before any of them is applied.
                        let mut batch = vec![payload];
                        while let Ok(p) = notifications.try_recv() {
                            batch.push(p);
                        }
                        let position = primary_position(&client).await;
                        match &position {
                            Ok(lsn) => reads.require(*lsn),
                            Err(_) => reads.forget_position(),
                        }
                        for payload in &batch {
                            seen = seen.max(apply(&state, payload).await);
                        }
                        if let Err(e) = position {
                            tracing::warn!(error = %e, "cannot read the primary's position; reconnecting the listener");
                            break;
                        }
                    }
                    Some(payload) => seen = seen.max(apply(&state, &payload).await),
                    None => break,
                },
                _ = epoch_check.tick() => match current_generation(&client).await {
                    Ok((g, lsn)) => {
                        // Notifications arrive in commit order, so anything at or below a
                        // generation read one tick ago must have arrived by now.
                        if let Some((a, a_lsn)) = awaited {
                            if seen < a {
                                tracing::warn!(seen, expected = a, "lost invalidation detected; flushing caches");
                                reads.require(a_lsn);
                                state.caches.flush_all();
                                state.metrics.cache_flushes.inc();
                                seen = a;
                            }
                        }
                        awaited = (g > seen).then_some((g, lsn));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "epoch check failed; reconnecting the listener");
                        break;
                    }
                },
                _ = shutdown.changed() => return,
            }
        }
        state.health.set_disconnected();
        state.metrics.listener_connected.set(0);
        state.metrics.listener_reconnects.inc();
    }
}

/// Applies one payload; returns its generation.
async fn apply(state: &State, payload: &str) -> i64 {
    match invalidation::decode(payload) {
        Some(p) => {
            for inv in &p.i {
                state.metrics.invalidation(kind(inv));
                state.caches.apply(inv).await;
                if *inv == invalidation::Invalidation::All {
                    // A new primary signing key moves every unpinned app to it.
                    if let Err(e) = state
                        .client
                        .signers
                        .reload(&state.pool, Duration::ZERO)
                        .await
                    {
                        tracing::warn!(error = %e, "could not reload signing keys");
                    }
                }
            }
            p.g
        }
        None => {
            tracing::warn!(payload, "unreadable invalidation; flushing caches");
            state.caches.flush_all();
            state.metrics.cache_flushes.inc();
            0
        }
    }
}

fn kind(inv: &invalidation::Invalidation) -> &'static str {
    match inv {
        invalidation::Invalidation::License { .. } => "license",
        invalidation::Invalidation::App { .. } => "app",
        invalidation::Invalidation::Policy { .. } => "policy",
        invalidation::Invalidation::Blacklist { .. } => "blacklist",
        invalidation::Invalidation::User { .. } => "user",
        invalidation::Invalidation::Vars { .. } => "vars",
        invalidation::Invalidation::Session { .. } => "session",
        invalidation::Invalidation::Keyless { .. } => "keyless",
        invalidation::Invalidation::All => "all",
    }
}
