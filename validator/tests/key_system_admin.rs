//! Keys deleted or invalidated through the key systems' admin APIs on the control-plane (Panda's
//! `key/delete`, Junkie's `PUT is_invalidated` and `DELETE`), as a seller's Discord bot does, are
//! refused by two validators within milliseconds of the admin call's answer.

mod common;
mod key_system;

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use key_system::*;
use keyward_shared::store::{api_keys, apps, key_providers};
use keyward_shared::testing::{eventually, TestDb};
use keyward_shared::write::WriteTx;
use serde_json::{json, Value};

async fn json_call(req: reqwest::RequestBuilder, what: &str) -> (u16, Value) {
    let resp = req.send().await.unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Polls both validators side by side until `refused` holds on each; how long each took after
/// `since` (the admin call's answer, which leaves after its commit).
async fn seen_by_both<F, Fut>(addrs: [SocketAddr; 2], since: Instant, refused: F) -> [Duration; 2]
where
    F: Fn(SocketAddr) -> Fut + Copy,
    Fut: Future<Output = bool>,
{
    let polls = addrs.map(|addr| async move {
        eventually(
            Duration::from_secs(2),
            "refused by the validator",
            || async move { refused(addr).await.then(|| since.elapsed()) },
        )
        .await
        .0
    });
    let [a, b] = polls;
    let (a, b) = tokio::join!(a, b);
    [a, b]
}

#[tokio::test]
async fn a_key_deleted_through_pandas_admin_api_is_refused_by_two_validators_at_once() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let sid = service_id("bot");
    let t = service(
        &mut c,
        apps::AppPatch {
            service_id: Some(Some(sid.clone())),
            ..Default::default()
        },
    )
    .await;
    let mut w = WriteTx::begin(&mut c, t.actor.clone())
        .await
        .expect("begin");
    let (_, api_key) = api_keys::create_service_key(&mut w, t.app.id, "discord bot")
        .await
        .expect("service key");
    w.commit().await.expect("commit");
    let cp = keyward_control_plane::start(keyward_control_plane::Config::new(db.url.clone()))
        .await
        .expect("control-plane");
    let (v1, v2) = (
        validator(&db.url, |_| {}).await,
        validator(&db.url, |_| {}).await,
    );
    let addrs = [v1.addr(), v2.addr()];
    let http = reqwest::Client::new();

    // The bot generates a key; a loader validates it on both validators (bound on first use).
    let (status, made) = json_call(
        http.post(format!("http://{}/api/generate-key/post", cp.addr()))
            .json(
                &json!({"apiKey": api_key, "expire": "2099-01-01", "count": 1,
                          "isPremium": "false", "note": "bot"}),
            ),
        "generate",
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let key = made["generatedKeys"][0]["value"]
        .as_str()
        .expect("a key")
        .to_string();
    let validate = |addr: SocketAddr| {
        let (http, sid, key) = (http.clone(), sid.clone(), key.clone());
        async move {
            let (_, body) = json_call(
                http.post(format!("http://{addr}/api/v1/keys/validate"))
                    .json(&json!({"ServiceID": sid, "HWID": "PC-1", "Key": key})),
                "validate",
            )
            .await;
            body
        }
    };
    for addr in addrs {
        let r = validate(addr).await;
        assert_eq!(r["Authenticated_Status"], "Success", "{r}");
    }

    let (status, deleted) = json_call(
        http.post(format!("http://{}/api/key/delete", cp.addr()))
            .json(&json!({"apiKey": api_key, "keyValue": key})),
        "delete",
    )
    .await;
    let answered = Instant::now();
    assert_eq!(
        (status, &deleted),
        (200, &json!({"message": "Key deleted successfully ✅"}))
    );
    let took = seen_by_both(addrs, answered, |addr| async move {
        let r = validate(addr).await;
        r["Authenticated_Status"] == "Failed" && r["Note"] == "Key not found"
    })
    .await;
    println!(
        "Panda key/delete (control-plane) refused by validator 1 after {:?} and validator 2 after {:?}",
        took[0], took[1]
    );
    v1.shutdown().await;
    v2.shutdown().await;
    cp.shutdown().await;
}

#[tokio::test]
async fn a_key_invalidated_then_deleted_through_junkies_rest_api_is_refused_by_two_validators_at_once(
) {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let t = service(&mut c, Default::default()).await;
    let identifier = account_num(&c, &t).await;
    let mut w = WriteTx::begin(&mut c, t.actor.clone())
        .await
        .expect("begin");
    let (_, bearer) = api_keys::create(&mut w, "discord bot", &["rest-api:*".to_owned()])
        .await
        .expect("api key");
    let provider = key_providers::create(
        &mut w,
        &key_providers::NewProvider {
            name: "checkpoint".into(),
            is_active: true,
            key_valid_minutes: None,
            link_url: Some("https://example.com/get-key".into()),
        },
    )
    .await
    .expect("provider");
    w.commit().await.expect("commit");
    let cp = keyward_control_plane::start(keyward_control_plane::Config::new(db.url.clone()))
        .await
        .expect("control-plane");
    let (v1, v2) = (
        validator(&db.url, |_| {}).await,
        validator(&db.url, |_| {}).await,
    );
    let addrs = [v1.addr(), v2.addr()];
    let http = reqwest::Client::new();
    let api = format!("http://{}/api/v2", cp.addr());

    let (status, made) = json_call(
        http.post(format!("{api}/keys")).bearer_auth(&bearer).json(
            &json!({"provider_id": provider.id, "service_id": t.app.key_system.num_id,
                          "validity_minutes": 60, "hwid_limit": 1}),
        ),
        "create",
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let key = made["key"]["key_value"]
        .as_str()
        .expect("key_value")
        .to_string();
    let id = made["key"]["id"].as_i64().expect("integer id");
    let service = t.app.name.clone();
    let verify = |addr: SocketAddr| {
        let (http, key, service) = (http.clone(), key.clone(), service.clone());
        async move {
            let (status, body) = json_call(
                http.post(format!("http://{addr}/api/v1/whitelist/verifyOpen"))
                    .json(&json!({"key": key, "service": service,
                                  "identifier": identifier.to_string(), "hwid": "EXEC-1"})),
                "verifyOpen",
            )
            .await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    for addr in addrs {
        let r = verify(addr).await;
        assert_eq!(
            (&r["valid"], &r["message"]),
            (&json!(true), &json!("KEY_VALID")),
            "{r}"
        );
    }

    let (status, updated) = json_call(
        http.put(format!("{api}/keys/{id}"))
            .bearer_auth(&bearer)
            .json(&json!({"is_invalidated": true})),
        "invalidate",
    )
    .await;
    let answered = Instant::now();
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["key"]["is_invalidated"], true);
    let refused = |addr: SocketAddr| async move {
        let r = verify(addr).await;
        r["valid"] == false && r["message"] == "KEY_INVALID"
    };
    let took = seen_by_both(addrs, answered, refused).await;
    println!(
        "Junkie PUT is_invalidated (control-plane) refused by validator 1 after {:?} and validator 2 after {:?}",
        took[0], took[1]
    );

    // Revalidated, then deleted: refused again, as an unknown key.
    let (status, _) = json_call(
        http.put(format!("{api}/keys/{id}"))
            .bearer_auth(&bearer)
            .json(&json!({"is_invalidated": false})),
        "revalidate",
    )
    .await;
    assert_eq!(status, 200);
    for addr in addrs {
        eventually(Duration::from_secs(2), "valid again", || async move {
            (verify(addr).await["valid"] == true).then_some(())
        })
        .await;
    }
    let (status, deleted) = json_call(
        http.delete(format!("{api}/keys/{key}"))
            .bearer_auth(&bearer),
        "delete",
    )
    .await;
    let answered = Instant::now();
    assert_eq!(
        (status, &deleted),
        (200, &json!({"message": "Key deleted"}))
    );
    let took = seen_by_both(addrs, answered, refused).await;
    println!(
        "Junkie DELETE (control-plane) refused by validator 1 after {:?} and validator 2 after {:?}",
        took[0], took[1]
    );
    v1.shutdown().await;
    v2.shutdown().await;
    cp.shutdown().await;
}
