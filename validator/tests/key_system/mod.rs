//! What the Panda and Junkie end-user tests share: a tenant whose app is a key-system service,
//! keys and the other rows they need written through the core's store, and a few readers.
#![allow(dead_code)]

use std::net::SocketAddr;

use keyward_shared::model::{App, License};
use keyward_shared::store::{apps, keyless, licenses};
use keyward_shared::testing::{generate, tenant, Tenant};
use keyward_shared::write::WriteTx;
use serde_json::Value;
use uuid::Uuid;

/// A tenant (HWID lock on) whose app is patched with `patch` (e.g. a service id).
pub async fn service(c: &mut tokio_postgres::Client, patch: apps::AppPatch) -> Tenant {
    let mut t = tenant(c, true).await;
    t.app = update(c, &t, patch).await;
    t
}

pub async fn update(c: &mut tokio_postgres::Client, t: &Tenant, patch: apps::AppPatch) -> App {
    let mut w = WriteTx::begin(c, t.actor.clone()).await.expect("begin");
    let app = apps::update(&mut w, t.app.id, &patch)
        .await
        .expect("app update");
    w.commit().await.expect("commit");
    app
}

/// A unique service id for a test.
pub fn service_id(prefix: &str) -> String {
    format!("{prefix}-{}", &Uuid::new_v4().simple().to_string()[..12])
}

/// One key made by `spec` (HWID limit 1 unless the spec says otherwise).
pub async fn key(
    c: &mut tokio_postgres::Client,
    t: &Tenant,
    spec: licenses::GenerateSpec,
) -> License {
    let spec = licenses::GenerateSpec {
        hwid_limit: spec.hwid_limit.or(Some(1)),
        ..spec
    };
    generate(c, t, spec).await.remove(0)
}

pub async fn ban(c: &mut tokio_postgres::Client, t: &Tenant, license: Uuid) {
    let mut w = WriteTx::begin(c, t.actor.clone()).await.expect("begin");
    licenses::ban(&mut w, license, Some("chargeback"))
        .await
        .expect("ban");
    w.commit().await.expect("commit");
}

/// An admin's keyless entry for `hwid`.
pub async fn keyless_entry(c: &mut tokio_postgres::Client, t: &Tenant, hwid: &str, premium: bool) {
    let mut w = WriteTx::begin(c, t.actor.clone()).await.expect("begin");
    keyless::put(
        &mut w,
        t.app.id,
        hwid,
        chrono::Utc::now() + chrono::Duration::days(1),
        premium,
    )
    .await
    .expect("keyless entry");
    w.commit().await.expect("commit");
}

/// The app's keyless entry for `hwid` as stored: its expiry.
pub async fn stored_keyless(
    c: &tokio_postgres::Client,
    app: Uuid,
    hwid: &str,
) -> Option<chrono::DateTime<chrono::Utc>> {
    c.query_opt(
        "SELECT expires_at FROM keyless_entries WHERE app_id = $1 AND hwid = $2",
        &[&app, &hwid],
    )
    .await
    .expect("keyless entry")
    .map(|r| r.get(0))
}

/// The account's integer id (Junkie's `identifier`).
pub async fn account_num(c: &tokio_postgres::Client, t: &Tenant) -> i64 {
    c.query_one(
        "SELECT num_id FROM accounts WHERE id = $1",
        &[&t.actor.account_id],
    )
    .await
    .expect("account number")
    .get(0)
}

/// The HWIDs bound to a license, as committed.
pub async fn bound_hwids(c: &tokio_postgres::Client, license: Uuid) -> Vec<String> {
    c.query(
        "SELECT fingerprint FROM machines WHERE license_id = $1 ORDER BY fingerprint",
        &[&license],
    )
    .await
    .expect("machines")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// The sorted keys of a JSON object (and panics when it is not one).
pub fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

pub fn sorted(mut k: Vec<&str>) -> Vec<&str> {
    k.sort_unstable();
    k
}

/// A GET without following redirects.
pub async fn get(
    http: &reqwest::Client,
    addr: SocketAddr,
    path_and_query: &str,
) -> crate::common::Reply {
    let resp = http
        .get(format!("http://{addr}{path_and_query}"))
        .send()
        .await
        .expect("request");
    crate::common::reply(resp).await
}

pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}
