//! The Ed25519 keys that sign KeyAuth 1.3 answers: created at startup (or taken from
//! `KEYWARD_SIGNING_KEY`), shown read-only to tenants, rotated/imported/retired by the operator's
//! CLI with the unpinned apps pinned to the outgoing primary.

mod common;

use common::*;
use keyward_control_plane::Config;
use keyward_shared::signing::Ed25519Signer;
use keyward_shared::store::signing_keys;
use keyward_shared::testing::TestDb;
use keyward_shared::StoreError;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_key_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The public key each app of the caller signs with, by app name.
fn app_key(body: &Value, app_name: &str) -> String {
    body["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app_name"] == app_name)
        .unwrap_or_else(|| panic!("{app_name} in {body}"))["public_key"]
        .as_str()
        .unwrap()
        .to_string()
}

fn key_by_public<'a>(body: &'a Value, public_key: &str) -> &'a Value {
    body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["public_key"] == public_key)
        .unwrap_or_else(|| panic!("{public_key} in {body}"))
}

/// Runs `control-plane signing-key <args>` against the database; (success, stdout, stderr).
async fn cli(db_url: &str, args: &[&str]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_control-plane"));
    cmd.arg("signing-key")
        .args(args)
        .env("DATABASE_URL", db_url)
        .env_remove("KEYWARD_SIGNING_KEY")
        .env("RUST_LOG", "warn");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("run control-plane");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn generation(db: &TestDb) -> i64 {
    db.client()
        .await
        .query_one("SELECT generation FROM cache_epoch", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_primary_exists_after_start_and_tenants_read_it() {
    let cp = Cp::start().await;
    let r = cp.call(Method::GET, "/v1/signing-keys", None, None).await;
    assert_eq!((r.status, r.code()), (401, "UNAUTHORIZED"));

    let alice = cp.admin("alice").await;
    let body = cp.ok(Method::GET, "/v1/signing-keys", &alice, None).await;
    let primary = body["primary"]["public_key"].as_str().unwrap().to_string();
    assert!(is_key_hex(&primary), "{primary}");
    assert_eq!(body["primary"]["is_primary"], true);
    assert_eq!(body["keys"].as_array().unwrap().len(), 1);
    assert_eq!(body["keys"][0]["public_key"], primary.as_str());
    assert!(body["keys"][0]["retired_at"].is_null());
    assert_eq!(body["apps"], json!([]));

    let app = cp.app(&alice, "Tool").await;
    let body = cp.ok(Method::GET, "/v1/signing-keys", &alice, None).await;
    assert_eq!(
        body["apps"],
        json!([{"app_id": app, "app_name": "Tool", "key_id": body["primary"]["id"],
            "public_key": primary, "pinned": false}])
    );

    // Any API key may read it, whatever its scopes.
    let created = cp
        .ok(
            Method::POST,
            "/v1/api-keys",
            &alice,
            Some(json!({"name": "bot", "scopes": ["licenses:read"]})),
        )
        .await;
    let key = created["key"].as_str().unwrap();
    let r = cp
        .call(Method::GET, "/v1/signing-keys", Some(key), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["apps"][0]["app_name"], "Tool");

    // Another tenant sees the deployment's key but none of alice's apps.
    let bob = cp.admin("bob").await;
    let body = cp.ok(Method::GET, "/v1/signing-keys", &bob, None).await;
    assert_eq!(body["primary"]["public_key"], primary.as_str());
    assert_eq!(body["apps"], json!([]));

    // A restart keeps the key.
    let again = keyward_control_plane::start(Config::new(cp.db.url.clone()))
        .await
        .unwrap();
    let body = cp.ok(Method::GET, "/v1/signing-keys", &alice, None).await;
    assert_eq!(body["keys"].as_array().unwrap().len(), 1);
    assert_eq!(body["primary"]["public_key"], primary.as_str());
    again.shutdown().await;
}

#[tokio::test]
async fn concurrent_starters_agree_on_one_primary() {
    let db = TestDb::new().await;
    let mut clients = Vec::new();
    for _ in 0..6 {
        clients.push(db.client().await);
    }
    let keys = futures_util::future::join_all(
        clients
            .iter_mut()
            .map(|c| signing_keys::ensure_primary(c, None)),
    )
    .await;
    let ids: Vec<Uuid> = keys.into_iter().map(|k| k.unwrap().id).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let all = signing_keys::list(&clients[0]).await.unwrap();
    assert_eq!(all.len(), 1);
    assert!(all[0].is_primary);

    // The same configured seed from several starters: one new primary, the old one demoted.
    let seed = [7u8; 32];
    let keys = futures_util::future::join_all(
        clients
            .iter_mut()
            .map(|c| signing_keys::ensure_primary(c, Some(seed))),
    )
    .await;
    let expected = Ed25519Signer::from_seed(&seed).unwrap().public_key_hex();
    for k in keys {
        let k = k.unwrap();
        assert_eq!(
            (k.public_key.as_str(), k.is_primary),
            (expected.as_str(), true)
        );
    }
    let all = signing_keys::list(&clients[0]).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all.iter().filter(|k| k.is_primary).count(), 1);
}

#[tokio::test]
async fn rotation_pins_existing_apps_until_they_are_moved() {
    let cp = Cp::start().await;
    let t = cp.admin("alice").await;
    let old_app = cp.app(&t, "Shipped").await;
    let before = cp.ok(Method::GET, "/v1/signing-keys", &t, None).await;
    let old_pk = before["primary"]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let old_id: Uuid = before["primary"]["id"].as_str().unwrap().parse().unwrap();

    let g0 = generation(&cp.db).await;
    let (ok, out, err) = cli(&cp.db.url, &["rotate"]).await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("1 app(s) stay pinned to the previous key"),
        "{out}"
    );
    assert!(generation(&cp.db).await > g0, "rotation announces itself");
    let new_app = cp.app(&t, "Next").await;

    let body = cp.ok(Method::GET, "/v1/signing-keys", &t, None).await;
    let new_pk = body["primary"]["public_key"].as_str().unwrap().to_string();
    assert!(is_key_hex(&new_pk) && new_pk != old_pk);
    assert!(
        out.contains(&format!("primary public key: {new_pk}")),
        "{out}"
    );
    assert_eq!(app_key(&body, "Shipped"), old_pk);
    assert_eq!(app_key(&body, "Next"), new_pk);
    let old = key_by_public(&body, &old_pk);
    assert_eq!(
        (old["is_primary"].as_bool(), old["apps_pinned"].as_i64()),
        (Some(false), Some(1))
    );
    assert_eq!(
        body["keys"][0]["public_key"],
        new_pk.as_str(),
        "newest first"
    );
    let got = cp
        .ok(Method::GET, &format!("/v1/apps/{old_app}"), &t, None)
        .await;
    assert_eq!(got["signing_key_id"], old_id.to_string());
    let got = cp
        .ok(Method::GET, &format!("/v1/apps/{new_app}"), &t, None)
        .await;
    assert!(got["signing_key_id"].is_null());

    // The tenant's audit log says why its app changed.
    let audit = cp
        .ok(
            Method::GET,
            "/v1/audit-log?action=app.pin_signing_key",
            &t,
            None,
        )
        .await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(audit["items"][0]["actor"], "operator");

    // Not retirable while an app is pinned to it.
    let (ok, out, err) = cli(&cp.db.url, &["retire", &old_id.to_string()]).await;
    assert!(!ok, "{out}");
    assert!(err.contains("1 app(s) are still pinned"), "{err}");
    let mut c = cp.db.client().await;
    match signing_keys::retire(&mut c, old_id).await {
        Err(StoreError::Conflict(m)) => assert!(m.contains("1 app(s)"), "{m}"),
        other => panic!("{other:?}"),
    }

    // The vendor moves the app to the new key; the old key can then go.
    cp.ok(
        Method::PATCH,
        &format!("/v1/apps/{old_app}"),
        &t,
        Some(json!({"signing_key_id": null})),
    )
    .await;
    let body = cp.ok(Method::GET, "/v1/signing-keys", &t, None).await;
    assert_eq!(app_key(&body, "Shipped"), new_pk);
    assert_eq!(key_by_public(&body, &old_pk)["apps_pinned"], 0);
    let (ok, out, err) = cli(&cp.db.url, &["retire", &old_id.to_string()]).await;
    assert!(ok, "{out}{err}");
    let body = cp.ok(Method::GET, "/v1/signing-keys", &t, None).await;
    assert!(key_by_public(&body, &old_pk)["retired_at"].is_string());
    // Retiring again is a no-op; a retired key cannot be pinned.
    let again = signing_keys::retire(&mut c, old_id).await.unwrap();
    assert!(again.retired_at.is_some());
    let r = cp
        .call(
            Method::PATCH,
            &format!("/v1/apps/{old_app}"),
            Some(&t),
            Some(json!({"signing_key_id": old_id})),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "BAD_REQUEST"), "{}", r.body);

    // The primary is never retirable; an unknown id is not found.
    let primary_id: Uuid = body["primary"]["id"].as_str().unwrap().parse().unwrap();
    match signing_keys::retire(&mut c, primary_id).await {
        Err(StoreError::Conflict(m)) => assert!(m.contains("primary"), "{m}"),
        other => panic!("{other:?}"),
    }
    let (ok, _, err) = cli(&cp.db.url, &["retire", &primary_id.to_string()]).await;
    assert!(!ok && err.contains("primary"), "{err}");
    assert!(matches!(
        signing_keys::retire(&mut c, Uuid::new_v4()).await,
        Err(StoreError::NotFound(_))
    ));

    // Validators load only the keys still in service.
    let seeds = signing_keys::active_seeds(&c).await.unwrap();
    assert_eq!(seeds.len(), 1);
    assert_eq!((seeds[0].id, seeds[0].is_primary), (primary_id, true));

    let (ok, out, err) = cli(&cp.db.url, &["show"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("primary public key: {new_pk}")),
        "{out}"
    );
    assert!(out.contains(&old_pk) && out.contains("retired"), "{out}");
}

#[tokio::test]
async fn a_configured_seed_becomes_the_primary() {
    let seven = "07".repeat(32);
    let cp = Cp::start_with(|cfg| cfg.signing_key_seed = Some(seven.clone())).await;
    let pk7 = Ed25519Signer::from_seed(&[7; 32]).unwrap().public_key_hex();
    let t = cp.admin("alice").await;
    cp.app(&t, "Tool").await;
    let r = cp
        .call(Method::GET, "/v1/signing-keys", Some(&t), None)
        .await;
    assert_eq!(r.body["primary"]["public_key"], pk7.as_str());
    assert_eq!(app_key(&r.body, "Tool"), pk7);
    assert!(!r.body.to_string().contains(&seven));

    // Another configured key on a later start takes over; the app stays on the key it shipped with.
    let nine = "09".repeat(32);
    let mut cfg = Config::new(cp.db.url.clone());
    cfg.signing_key_seed = Some(nine);
    keyward_control_plane::start(cfg)
        .await
        .unwrap()
        .shutdown()
        .await;
    let pk9 = Ed25519Signer::from_seed(&[9; 32]).unwrap().public_key_hex();
    let body = cp.ok(Method::GET, "/v1/signing-keys", &t, None).await;
    assert_eq!(body["primary"]["public_key"], pk9.as_str());
    assert_eq!(app_key(&body, "Tool"), pk7);
    assert_eq!(key_by_public(&body, &pk7)["apps_pinned"], 1);

    // The CLI import does the same, and importing the primary again changes nothing.
    let (ok, out, err) = cli(&cp.db.url, &["import", &seven]).await;
    assert!(ok, "{err}");
    assert!(out.contains(&format!("primary public key: {pk7}")), "{out}");
    let (ok, out, _) = cli(&cp.db.url, &["import", &seven]).await;
    assert!(ok && out.contains("nothing changed"), "{out}");
    let body = cp.ok(Method::GET, "/v1/signing-keys", &t, None).await;
    assert_eq!(body["primary"]["public_key"], pk7.as_str());
    assert_eq!(body["keys"].as_array().unwrap().len(), 2);
    let (ok, _, err) = cli(&cp.db.url, &["import", "abcd"]).await;
    assert!(!ok && err.contains("64 hex"), "{err}");
}

#[tokio::test]
async fn an_invalid_configured_seed_is_a_startup_error() {
    let db = TestDb::new().await;
    for bad in [
        "zz".repeat(32),
        "abcd".into(),
        "07".repeat(33),
        String::new(),
    ] {
        let mut cfg = Config::new(db.url.clone());
        cfg.signing_key_seed = Some(bad.clone());
        let err = match keyward_control_plane::start(cfg).await {
            Err(e) => format!("{e:#}"),
            Ok(_) => panic!("{bad:?} was accepted"),
        };
        assert!(
            err.contains("KEYWARD_SIGNING_KEY") && err.contains("64 hex"),
            "{err}"
        );
        if !bad.is_empty() {
            assert!(!err.contains(&bad), "the error echoes the secret: {err}");
        }
    }
    // Nothing was generated or pinned on the way.
    let c = db.client().await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM signing_keys", &[])
        .await
        .map(|r| r.get(0))
        .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn seeds_never_leave_the_database_through_the_api() {
    let cp = Cp::start().await;
    let t = cp.admin("alice").await;
    cp.app(&t, "Tool").await;
    let mut c = cp.db.client().await;
    signing_keys::rotate(&mut c).await.unwrap();
    let seeds = signing_keys::active_seeds(&c).await.unwrap();
    assert_eq!(seeds.len(), 2);
    let text = cp
        .http
        .get(format!("{}/v1/signing-keys", cp.base))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("public_key"), "{text}");
    for s in &seeds {
        let seed_hex = to_hex(&s.seed);
        assert!(!text.contains(&seed_hex), "the seed is in the response");
        assert!(!text.contains("seed"), "{text}");
        assert!(
            !format!("{s:?}").contains(&seed_hex),
            "Debug prints the seed"
        );
        // The stored seed is the key the API shows.
        let pk = Ed25519Signer::from_seed(&s.seed).unwrap().public_key_hex();
        assert!(text.contains(&pk));
    }
}
