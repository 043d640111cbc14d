//! Test support (feature `test-support`): a fresh database per test cloned from a migrated
//! template, and an in-process TCP proxy that can cut the network to PostgreSQL.
//!
//! The test command (`deploy/test.sh`) starts a throwaway cluster and exports
//! `KEYWARD_TEST_DATABASE_URL` (a `postgres://` URL of its maintenance database).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::db;
use crate::model::{App, License};
use crate::store::{accounts, apps, licenses};
use crate::write::{Actor, WriteTx};

pub const ENV: &str = "KEYWARD_TEST_DATABASE_URL";
/// The streaming replica of the test cluster (see [`TestDb::replica_url`]).
pub const REPLICA_ENV: &str = "KEYWARD_TEST_REPLICA_URL";
const TEMPLATE_LOCK: i64 = 0x6b65_7977_6172_6402;

/// A database of its own for one test.
pub struct TestDb {
    /// URL of the fresh database.
    pub url: String,
    pub name: String,
}

fn base_url() -> String {
    std::env::var(ENV).unwrap_or_else(|_| {
        panic!("{ENV} is not set: run the tests with ./deploy/test.sh, which starts a throwaway PostgreSQL")
    })
}

/// Replaces the database name of a `postgres://` URL.
pub fn with_database(url: &str, name: &str) -> String {
    let (without_query, query) = match url.split_once('?') {
        Some((u, q)) => (u, Some(q)),
        None => (url, None),
    };
    let scheme_end = without_query.find("://").map_or(0, |i| i + 3);
    let base = match without_query[scheme_end..].find('/') {
        Some(i) => &without_query[..scheme_end + i],
        None => without_query,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

fn template_name() -> String {
    let mut h = Sha256::new();
    for sql in db::migration_sources() {
        h.update(sql);
    }
    let digest = hex::encode(h.finalize());
    format!("keyward_tmpl_{}_{}", db::latest_migration(), &digest[..12])
}

impl TestDb {
    pub async fn new() -> TestDb {
        let base = base_url();
        let cfg = db::pg_config(&base, "keyward-test").expect("test database URL");
        let admin = db::connect(&cfg).await.expect("connect to test cluster");
        let template = template_name();
        admin
            .execute("SELECT pg_advisory_lock($1)", &[&TEMPLATE_LOCK])
            .await
            .expect("lock");
        let exists = admin
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&template])
            .await
            .expect("query pg_database")
            .is_some();
        if !exists {
            admin
                .batch_execute(&format!("CREATE DATABASE {template}"))
                .await
                .expect("create template");
            let tcfg =
                db::pg_config(&with_database(&base, &template), "keyward-test").expect("url");
            let mut t = db::connect(&tcfg).await.expect("connect template");
            db::migrate(&mut t).await.expect("migrate template");
            drop(t);
        }
        admin
            .execute("SELECT pg_advisory_unlock($1)", &[&TEMPLATE_LOCK])
            .await
            .expect("unlock");

        let name = format!(
            "keyward_test_{}",
            crate::secrets::random_token(12).to_lowercase()
        );
        let mut last_err = None;
        // The template may still show the migrating session for a moment after it closed.
        for _ in 0..50 {
            match admin
                .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
                .await
            {
                Ok(()) => {
                    last_err = None;
                    break;
                }
                Err(e) => {
                    last_err = Some(e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        if let Some(e) = last_err {
            panic!("create test database: {e}");
        }
        TestDb {
            url: with_database(&base, &name),
            name,
        }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let cfg = db::pg_config(&self.url, "keyward-test").expect("url");
        db::connect(&cfg).await.expect("connect test database")
    }

    /// The database's TCP address, for putting a [`ChaosProxy`] in front of it.
    pub fn socket_addr(&self) -> SocketAddr {
        let cfg: tokio_postgres::Config = self.url.parse().expect("url");
        let host = match cfg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => panic!("the test cluster must listen on TCP for the chaos proxy"),
        };
        let port = cfg.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}").parse().expect("ip address host")
    }

    /// The URL of this database on the streaming replica that `./deploy/test.sh` starts
    /// (`KEYWARD_TEST_REPLICA_URL`), once the replica has replayed its creation. Panics (fails
    /// the test) when no replica is configured.
    pub async fn replica_url(&self) -> String {
        let base = std::env::var(REPLICA_ENV).unwrap_or_else(|_| {
            panic!("{REPLICA_ENV} is not set: run the tests with ./deploy/test.sh, which starts a streaming replica")
        });
        let cfg = db::pg_config(&base, "keyward-test").expect("replica URL");
        let admin = db::connect(&cfg)
            .await
            .expect("connect to the test replica");
        let name = self.name.clone();
        eventually(
            Duration::from_secs(30),
            "the replica to replay the test database",
            || {
                let (admin, name) = (&admin, &name);
                async move {
                    let row = admin
                        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[name])
                        .await
                        .expect("query the replica's pg_database");
                    row.map(|_| ())
                }
            },
        )
        .await;
        with_database(&base, &self.name)
    }

    /// The URL of this database reached through `proxy`.
    pub fn url_via(&self, proxy: &ChaosProxy) -> String {
        let real = self.socket_addr().to_string();
        self.url.replacen(&real, &proxy.addr().to_string(), 1)
    }
}

/// Forwards TCP to a target until told to break the network, which closes every forwarded
/// connection and refuses new ones until restored. (The idea of crates.io's chaos proxy.)
pub struct ChaosProxy {
    addr: SocketAddr,
    broken: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl ChaosProxy {
    pub async fn start(target: SocketAddr) -> ChaosProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let broken = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (b, c) = (broken.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if b.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                if let Ok(mut list) = c.lock() {
                    list.retain(|h| !h.is_finished());
                    list.push(task.abort_handle());
                }
            }
        })
        .abort_handle();
        ChaosProxy {
            addr,
            broken,
            conns,
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn break_networking(&self) {
        self.broken.store(true, Ordering::SeqCst);
        if let Ok(mut list) = self.conns.lock() {
            for h in list.drain(..) {
                h.abort();
            }
        }
    }

    pub fn restore_networking(&self) {
        self.broken.store(false, Ordering::SeqCst);
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.break_networking();
    }
}

/// Polls `check` until it returns `Some`, or panics after `deadline`. Tests use this instead of
/// sleeping.
pub async fn eventually<T, F, Fut>(deadline: Duration, what: &str, mut check: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return (v, start.elapsed());
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A test tenant: the account's actor and its app.
pub struct Tenant {
    pub actor: Actor,
    pub app: App,
}

/// An account with one app, written through the store (`hwid_lock` set as asked).
pub async fn tenant(c: &mut tokio_postgres::Client, hwid_lock: bool) -> Tenant {
    let account = accounts::create(
        &*c,
        &format!("t{}", crate::secrets::random_token(10)),
        None,
        "not-a-login",
    )
    .await
    .expect("account");
    let actor = Actor {
        origin: Default::default(),
        account_id: account.id,
        label: "test".into(),
    };
    let mut w = WriteTx::begin(c, actor.clone()).await.expect("begin");
    let app = apps::create(
        &mut w,
        &apps::AppPatch {
            name: Some("app".into()),
            hwid_lock: Some(hwid_lock),
            ..Default::default()
        },
    )
    .await
    .expect("app");
    w.commit().await.expect("commit");
    Tenant { actor, app }
}

/// Licenses generated through the store, committed.
pub async fn generate(
    c: &mut tokio_postgres::Client,
    t: &Tenant,
    spec: licenses::GenerateSpec,
) -> Vec<License> {
    let mut w = WriteTx::begin(c, t.actor.clone()).await.expect("begin");
    let out = licenses::generate(&mut w, t.app.id, &spec)
        .await
        .expect("generate");
    w.commit().await.expect("commit");
    out
}

/// Connects to `url` (a test cluster's primary or replica) as the tests do.
pub async fn connect_to(url: &str) -> tokio_postgres::Client {
    let cfg = db::pg_config(url, "keyward-test").expect("database url");
    db::connect(&cfg).await.expect("connect")
}

/// The replica's replay position while its replay is paused (`None`: not paused).
pub async fn replay_paused_at(replica: &tokio_postgres::Client) -> Option<i64> {
    let row = replica
        .query_one(
            "SELECT pg_get_wal_replay_pause_state() = 'paused',
                    (pg_last_wal_replay_lsn() - '0/0')::bigint",
            &[],
        )
        .await
        .expect("replay state");
    row.get::<_, bool>(0).then(|| row.get(1))
}

/// Pauses WAL replay on the test replica; resumes it when dropped, even when the test fails, as
/// the replica is shared by every test of the run (those that pause it take turns: the
/// `replica-pause` group in `.config/nextest.toml`).
pub struct ReplayPaused(String);

impl ReplayPaused {
    pub async fn new(replica_url: &str) -> ReplayPaused {
        let c = connect_to(replica_url).await;
        let guard = ReplayPaused(replica_url.to_string());
        c.batch_execute("SELECT pg_wal_replay_pause()")
            .await
            .expect("pause replay");
        // Requested is not yet paused: a record could still be replayed.
        eventually(Duration::from_secs(10), "replay to pause", || {
            let c = &c;
            async move { replay_paused_at(c).await }
        })
        .await;
        guard
    }
}

impl Drop for ReplayPaused {
    fn drop(&mut self) {
        let url = self.0.clone();
        // Drop cannot await, and may run on a runtime's worker: resume from a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                connect_to(&url)
                    .await
                    .batch_execute("SELECT pg_wal_replay_resume()")
                    .await
                    .expect("resume replay");
            });
        })
        .join();
    }
}
