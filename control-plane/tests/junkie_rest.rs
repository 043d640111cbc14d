//! Junkie Key System REST API v2 (`/api/v2`, seed 002, spec §2.1) over real HTTP: every route's
//! effect and envelope, filters and pages, batch bounds, bulk delete, HWID replacement and
//! resets under the cooldown, auth refusals, and tenant isolation. Keys are created the way a
//! bot does, with a Keyward API key carrying the `rest-api:*` scope.

mod common;

use chrono::{DateTime, Utc};
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

/// The fields of Junkie's `Key` object (spec §2.1), all emitted.
const KEY_FIELDS: [&str; 27] = [
    "id",
    "key_value",
    "user_id",
    "service_id",
    "provider_id",
    "folder_id",
    "expires_at",
    "used_at",
    "is_premium",
    "is_invalidated",
    "one_time_use",
    "expiry_on_first_use",
    "no_hwid",
    "validity_minutes",
    "key_name",
    "hwid_limit",
    "discord_id",
    "created_at",
    "service_name",
    "provider_name",
    "folder_name",
    "hwids",
    "keys_hwid",
    // Each HWID entry's fields, checked on hwids[0] where there is one.
    "hwid",
    "executor_user_id",
    "bound_at",
    "bound_by",
];

/// A tenant as a Junkie bot sees it: its admin JWT (for native calls) and its bearer API key.
struct Tenant {
    jwt: String,
    key: String,
}

async fn tenant(cp: &Cp, name: &str) -> Tenant {
    let jwt = cp.admin(name).await;
    let k = cp
        .ok(
            Method::POST,
            "/v1/api-keys",
            &jwt,
            Some(json!({"name": "bot", "scopes": ["rest-api:*"]})),
        )
        .await;
    Tenant {
        key: k["key"].as_str().expect("key").to_string(),
        jwt,
    }
}

impl Tenant {
    async fn call(&self, cp: &Cp, method: Method, path: &str, body: Option<Value>) -> Resp {
        cp.call(method, &format!("/api/v2{path}"), Some(&self.key), body)
            .await
    }

    /// A 2xx answer's body.
    async fn ok(&self, cp: &Cp, method: Method, path: &str, body: Option<Value>) -> Value {
        let r = self.call(cp, method.clone(), path, body).await;
        assert!(
            (200..300).contains(&r.status),
            "{method} {path} → {} {}",
            r.status,
            r.body
        );
        r.body
    }

    async fn provider(&self, cp: &Cp, name: &str, minutes: Option<i64>) -> i64 {
        let r = self
            .call(
                cp,
                Method::POST,
                "/providers",
                Some(json!({"name": name, "key_valid_minutes": minutes})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["provider"]["id"].as_i64().expect("provider id")
    }

    async fn service(&self, cp: &Cp, name: &str) -> i64 {
        let r = self
            .call(cp, Method::POST, "/services", Some(json!({"name": name})))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["service"]["id"].as_i64().expect("service id")
    }

    /// Creates one key and checks the envelope a public bot reads (`!response.ok || !data.key`).
    async fn key(&self, cp: &Cp, body: Value) -> Value {
        let r = self.call(cp, Method::POST, "/keys", Some(body)).await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert!(r.body["key"].is_object(), "{}", r.body);
        r.body["key"].clone()
    }
}

/// A Junkie error: the status and `{"message", "error"}`.
fn junkie_error(r: &Resp, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert!(
        r.body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {}",
        r.body
    );
    assert!(r.body["error"].is_string(), "{what}: {}", r.body);
    assert!(r.body.get("success").is_none(), "{what}: {}", r.body);
}

fn time(v: &Value) -> DateTime<Utc> {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    assert!(
        s.len() == 24 && s.ends_with('Z') && s.as_bytes()[19] == b'.',
        "not ISO-8601 UTC with milliseconds: {s}"
    );
    DateTime::parse_from_rfc3339(s)
        .expect("ISO-8601")
        .with_timezone(&Utc)
}

fn minutes_between(from: &Value, to: &Value) -> i64 {
    (time(to) - time(from)).num_seconds().div_euclid(60)
}

fn ids(keys: &Value) -> Vec<i64> {
    let mut v: Vec<i64> = keys
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["id"].as_i64().expect("id"))
        .collect();
    v.sort_unstable();
    v
}

/// Marks a key used, as a validator's first use does (the control-plane has no verify route).
async fn first_use(cp: &Cp, id: i64) {
    let n = cp
        .db
        .client()
        .await
        .execute(
            "UPDATE licenses SET used_at = now() - interval '10 minutes' WHERE num_id = $1",
            &[&id],
        )
        .await
        .expect("first use");
    assert_eq!(n, 1);
}

#[tokio::test]
async fn create_answers_201_with_every_key_field() {
    let cp = Cp::start().await;
    let t = tenant(&cp, "alice").await;
    let p = t.provider(&cp, "Linkvertise", Some(60)).await;
    let s = t.service(&cp, "Hub").await;
    let k = t
        .key(
            &cp,
            json!({"provider_id": p, "service_id": s, "key_name": "vip", "validity_minutes": 30,
                   "hwid": "HW-1", "discord_id": "123456789012345678", "is_premium": true,
                   "hwid_limit": 2}),
        )
        .await;
    for f in &KEY_FIELDS[..23] {
        assert!(k.get(*f).is_some(), "Key lacks {f}: {k}");
    }
    for f in &KEY_FIELDS[23..] {
        assert!(k["hwids"][0].get(*f).is_some(), "hwids[0] lacks {f}: {k}");
    }
    assert!(k["id"].is_i64() && k["user_id"].is_i64(), "{k}");
    // The owner's integer id is the account's, which the native API tells its admin (the
    // `identifier` Junkie's SDK sends).
    let me = cp.ok(Method::GET, "/v1/account", &t.jwt, None).await;
    assert_eq!(me["num_id"], k["user_id"], "{me}");
    assert!(k["key_value"].as_str().is_some_and(|v| v.len() >= 8));
    assert_eq!(k["service_id"], s);
    assert_eq!(k["service_name"], "Hub");
    assert_eq!(k["provider_id"], p);
    assert_eq!(k["provider_name"], "Linkvertise");
    assert_eq!(k["folder_id"], Value::Null);
    assert_eq!(k["folder_name"], Value::Null);
    assert_eq!(k["key_name"], "vip");
    assert_eq!(k["discord_id"], "123456789012345678");
    assert_eq!(k["is_premium"], true);
    assert_eq!(k["is_invalidated"], false);
    assert_eq!(k["one_time_use"], false);
    assert_eq!(k["no_hwid"], false);
    assert_eq!(k["expiry_on_first_use"], false);
    assert_eq!(k["hwid_limit"], 2);
    assert_eq!(k["used_at"], Value::Null);
    assert_eq!(k["validity_minutes"], 30);
    assert_eq!(minutes_between(&k["created_at"], &k["expires_at"]), 30);
    assert_eq!(k["hwids"][0]["hwid"], "HW-1");
    assert_eq!(k["hwids"][0]["bound_by"], "api");
    assert_eq!(k["hwids"][0]["executor_user_id"], Value::Null);
    time(&k["hwids"][0]["bound_at"]);
    assert_eq!(k["keys_hwid"], json!(["HW-1"]));

    // The same integer account id on every key; the key reads back the same.
    let again = t.key(&cp, json!({"provider_id": p, "service_id": s})).await;
    assert_eq!(again["user_id"], k["user_id"]);
    let got = t
        .ok(&cp, Method::GET, &format!("/keys/{}", k["id"]), None)
        .await;
    assert_eq!(got["key"], k);

    // The provider's validity is the default; null or 0 is forever; hwids wins over hwid.
    assert_eq!(again["validity_minutes"], 60);
    assert_eq!(
        minutes_between(&again["created_at"], &again["expires_at"]),
        60
    );
    assert_eq!(again["hwid_limit"], Value::Null, "unlimited by default");
    assert_eq!(again["hwids"], json!([]));
    for forever in [json!(0), Value::Null] {
        let k = t
            .key(
                &cp,
                json!({"provider_id": p, "service_id": s, "validity_minutes": forever}),
            )
            .await;
        assert_eq!(k["expires_at"], Value::Null, "{forever}: {k}");
        assert_eq!(k["validity_minutes"], Value::Null);
    }
    let k = t
        .key(
            &cp,
            json!({"provider_id": p, "service_id": s, "hwid": "A", "hwids": ["B", "C"],
                   "no_hwid": true, "one_time_use": true}),
        )
        .await;
    assert_eq!(k["keys_hwid"], json!(["B", "C"]));
    assert_eq!(k["no_hwid"], true);
    assert_eq!(k["one_time_use"], true);

    // Expiry on first use: no expiry until then, the validity (given or the provider's) kept.
    for (body, minutes) in [(json!({"validity_minutes": 10}), 10), (json!({}), 60)] {
        let mut body = body;
        body["provider_id"] = json!(p);
        body["service_id"] = json!(s);
        body["expiry_on_first_use"] = json!(true);
        let k = t.key(&cp, body).await;
        assert_eq!(k["expires_at"], Value::Null, "{k}");
        assert_eq!(k["expiry_on_first_use"], true);
        assert_eq!(k["validity_minutes"], minutes);
    }
}

#[tokio::test]
async fn create_refuses_what_is_missing_or_wrong() {
    let cp = Cp::start().await;
    let t = tenant(&cp, "alice").await;
    let p = t.provider(&cp, "P", None).await;
    let no_service = t
        .call(&cp, Method::POST, "/keys", Some(json!({"provider_id": p})))
        .await;
    junkie_error(&no_service, 400, "no service yet");
    assert!(no_service.body["message"]
        .as_str()
        .is_some_and(|m| m.contains("service_id")));
    // With exactly one service, it is the default.
    let s = t.service(&cp, "Only").await;
    let k = t.key(&cp, json!({"provider_id": p})).await;
    assert_eq!(k["service_id"], s);
    t.service(&cp, "Second").await;
    let r = t
        .call(&cp, Method::POST, "/keys", Some(json!({"provider_id": p})))
        .await;
    junkie_error(&r, 400, "two services");
    assert!(r.body["message"]
        .as_str()
        .unwrap_or("")
        .contains("service_id is required"));

    let camel = t
        .call(
            &cp,
            Method::POST,
            "/keys/batch",
            Some(json!({"serviceId": s, "providerId": p, "count": 2})),
        )
        .await;
    junkie_error(&camel, 400, "camelCase batch");
    let m = camel.body["message"].as_str().unwrap_or("");
    assert!(m.contains("provider_id") && m.contains("amount"), "{m}");
    for (body, what) in [
        (json!({"service_id": s}), "provider_id"),
        (json!({"provider_id": 0, "service_id": s}), "provider_id"),
        (json!({"provider_id": "x", "service_id": s}), "provider_id"),
        (
            json!({"provider_id": p, "service_id": s, "discord_id": "12"}),
            "discord_id",
        ),
        (
            json!({"provider_id": p, "service_id": s, "validity_minutes": -5}),
            "validity_minutes",
        ),
        (
            json!({"provider_id": p, "service_id": s, "is_premium": "yes"}),
            "is_premium",
        ),
        (
            json!({"provider_id": p, "service_id": s, "hwids": "HW"}),
            "hwids",
        ),
    ] {
        let r = t.call(&cp, Method::POST, "/keys", Some(body.clone())).await;
        junkie_error(&r, 400, &body.to_string());
        assert!(
            r.body["message"].as_str().unwrap_or("").contains(what),
            "{body} → {}",
            r.body
        );
    }
    let r = t
        .call(
            &cp,
            Method::POST,
            "/keys",
            Some(json!({"provider_id": 999_999, "service_id": s})),
        )
        .await;
    junkie_error(&r, 404, "unknown provider");
    let r = t
        .call(
            &cp,
            Method::POST,
            "/keys",
            Some(json!({"provider_id": p, "service_id": 999_999})),
        )
        .await;
    junkie_error(&r, 404, "unknown service");
    let r = cp
        .raw(
            Method::POST,
            "/api/v2/keys",
            Some(&t.key),
            Some("application/json"),
            b"{not json".to_vec(),
        )
        .await;
    junkie_error(&r, 400, "malformed JSON");
}

#[tokio::test]
async fn batch_makes_1_to_100_keys() {
    let cp = Cp::start().await;
    let t = tenant(&cp, "alice").await;
    let p = t.provider(&cp, "P", None).await;
    let s = t.service(&cp, "S").await;
    let r = t
        .call(
            &cp,
            Method::POST,
            "/keys/batch",
            Some(
                json!({"provider_id": p, "service_id": s, "amount": 3, "hwid": "SHARED",
                        "discord_id": "123456789012345678", "key_name": "drop"}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let keys = r.body["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 3);
    for k in keys {
        assert_eq!(k["keys_hwid"], json!(["SHARED"]));
        assert_eq!(k["discord_id"], "123456789012345678");
        assert_eq!(k["key_name"], "drop");
    }
    for amount in [0, 101, -1] {
        let r = t
            .call(
                &cp,
                Method::POST,
                "/keys/batch",
                Some(json!({"provider_id": p, "service_id": s, "amount": amount})),
            )
            .await;
        junkie_error(&r, 400, &format!("amount {amount}"));
        assert!(r.body["message"].as_str().unwrap_or("").contains("amount"));
    }
    let r = t
        .call(
            &cp,
            Method::POST,
            "/keys/batch",
            Some(json!({"provider_id": p, "service_id": s, "amount": 100})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["keys"].as_array().map(Vec::len), Some(100));
    let all = t.ok(&cp, Method::GET, "/keys?limit=1", None).await;
    assert_eq!(all["pagination"]["total"], 103);
}

#[tokio::test]
async fn list_filters_and_pages() {
    let cp = Cp::start().await;
    let t = tenant(&cp, "alice").await;
    let p1 = t.provider(&cp, "P1", None).await;
    let p2 = t.provider(&cp, "P2", None).await;
    let s1 = t.service(&cp, "S1").await;
    let s2 = t.service(&cp, "S2").await;
    let mut a = Vec::new();
    for i in 0..5 {
        a.push(
            t.key(
                &cp,
                json!({"provider_id": p1, "service_id": s1, "hwid": format!("HW-A{i}")}),
            )
            .await,
        );
    }
    let b1 = t
        .key(
            &cp,
            json!({"provider_id": p2, "service_id": s2, "discord_id": "111111111111111111",
                   "hwid": "HW-xyz-B1", "validity_minutes": 10}),
        )
        .await;
    let b2 = t
        .key(
            &cp,
            json!({"provider_id": p2, "service_id": s2, "discord_id": "111111111111111111"}),
        )
        .await;
    let id = |k: &Value| k["id"].as_i64().expect("id");
    // One invalidated, one expired, one used.
    t.ok(
        &cp,
        Method::PUT,
        &format!("/keys/{}", id(&a[0])),
        Some(json!({"is_invalidated": true})),
    )
    .await;
    t.ok(
        &cp,
        Method::PUT,
        &format!("/keys/{}", id(&a[1])),
        Some(json!({"expires_at": "2020-01-01T00:00:00Z"})),
    )
    .await;
    first_use(&cp, id(&a[2])).await;

    let list = |q: String| {
        let t = &t;
        let cp = &cp;
        async move { t.ok(cp, Method::GET, &format!("/keys{q}"), None).await }
    };
    let all = list(String::new()).await;
    assert_eq!(all["keys"].as_array().map(Vec::len), Some(7));
    assert_eq!(
        all["pagination"],
        json!({"page": 1, "limit": 50, "total": 7, "pages": 1})
    );
    // Newest first.
    assert_eq!(all["keys"][0]["id"], b2["id"]);

    let a_ids: Vec<i64> = {
        let mut v: Vec<i64> = a.iter().map(id).collect();
        v.sort_unstable();
        v
    };
    let b_ids = {
        let mut v = vec![id(&b1), id(&b2)];
        v.sort_unstable();
        v
    };
    for (q, want) in [
        (format!("?service_id={s1}"), a_ids.clone()),
        (format!("?serviceId={s2}"), b_ids.clone()),
        (format!("?provider_id={p1}"), a_ids.clone()),
        (format!("?providerId={p2}"), b_ids.clone()),
        ("?discord_id=111111111111111111".into(), b_ids.clone()),
        (
            format!("?key={}", &b1["key_value"].as_str().unwrap_or("")[2..7]),
            vec![id(&b1)],
        ),
        ("?hwid=xyz-b".into(), vec![id(&b1)]),
        ("?hwid=HW-A".into(), a_ids.clone()),
        ("?status=invalidated".into(), vec![id(&a[0])]),
        ("?status=expired".into(), vec![id(&a[1])]),
        ("?status=used".into(), vec![id(&a[2])]),
        (
            "?status=unused".into(),
            ids(&json!([a[0], a[1], a[3], a[4], b1, b2])),
        ),
        (
            "?status=active".into(),
            ids(&json!([a[2], a[3], a[4], b1, b2])),
        ),
        (
            "?expires_before=2021-01-01T00:00:00Z".into(),
            vec![id(&a[1])],
        ),
        (
            "?expires_after=2021-01-01T00:00:00.000Z".into(),
            vec![id(&b1)],
        ),
        (
            format!("?service_id={s1}&status=active&foo=bar"),
            ids(&json!([a[2], a[3], a[4]])),
        ),
        // A service the account does not have matches nothing.
        ("?service_id=999999".into(), vec![]),
        ("?status=&discord_id=".into(), ids(&all["keys"])),
    ] {
        let r = list(q.clone()).await;
        assert_eq!(ids(&r["keys"]), want, "{q}");
        assert_eq!(r["pagination"]["total"], want.len(), "{q}");
    }

    // Pages: 7 keys by 3.
    let mut seen = Vec::new();
    for page in 1..=3 {
        let r = list(format!("?limit=3&page={page}")).await;
        assert_eq!(
            r["pagination"],
            json!({"page": page, "limit": 3, "total": 7, "pages": 3})
        );
        seen.extend(ids(&r["keys"]));
    }
    seen.sort_unstable();
    assert_eq!(seen, ids(&all["keys"]), "every key once across the pages");
    assert_eq!(list("?limit=3&page=4".into()).await["keys"], json!([]));
    // Clamped, not refused.
    assert_eq!(list("?limit=500".into()).await["pagination"]["limit"], 100);
    assert_eq!(list("?limit=0".into()).await["pagination"]["limit"], 1);
    assert_eq!(list("?page=0".into()).await["pagination"]["page"], 1);
    for bad in [
        "?status=bogus",
        "?status=banned",
        "?expires_before=yesterday",
        "?page=x",
        "?service_id=abc",
    ] {
        let r = t.call(&cp, Method::GET, &format!("/keys{bad}"), None).await;
        junkie_error(&r, 400, bad);
    }
    let r = t.call(&cp, Method::GET, "/keys?status=bogus", None).await;
    let m = r.body["message"].as_str().unwrap_or("");
    assert!(m.contains("active") && m.contains("unused"), "{m}");
}

#[tokio::test]
async fn one_key_by_id_or_value_read_updated_deleted() {
    let cp = Cp::start().await;
    let t = tenant(&cp, "alice").await;
    let p = t.provider(&cp, "P", None).await;
    let s = t.service(&cp, "S").await;
    let k = t
        .key(
            &cp,
            json!({"provider_id": p, "service_id": s, "validity_minutes": 60, "hwid": "H0"}),
        )
        .await;
    let (id, value) = (
        k["id"].as_i64().expect("id"),
        k["key_value"].as_str().expect("value").to_string(),
    );
    let by_id = t.ok(&cp, Method::GET, &format!("/keys/{id}"), None).await;
    let by_value = t
        .ok(&cp, Method::GET, &format!("/keys/{value}"), None)
        .await;
    assert_eq!(by_id, by_value);
    assert_eq!(by_id["key"]["key_value"], value.as_str());
    for unknown in ["999999999", "NOPE-NOT-A-KEY"] {
        let r = t
            .call(&cp, Method::GET, &format!("/keys/{unknown}"), None)
            .await;
        junkie_error(&r, 404, unknown);
        assert_eq!(r.body["message"], "Key not found");
    }

    // Traits.
    let put = |path: String, body: Value| {
        let t = &t;
        let cp = &cp;
        async move {
            let r = t.call(cp, Method::PUT, &path, Some(body.clone())).await;
            assert_eq!(r.status, 200, "PUT {path} {body} → {}", r.body);
            r.body["key"].clone()
        }
    };
    let u = put(
        format!("/keys/{value}"),
        json!({"key_name": "renamed", "is_premium": true, "one_time_use": true,
               "no_hwid": true, "hwid_limit": 3, "is_invalidated": true}),
    )
    .await;
    assert_eq!(u["key_name"], "renamed");
    assert_eq!(u["is_premium"], true);
    assert_eq!(u["one_time_use"], true);
    assert_eq!(u["no_hwid"], true);
    assert_eq!(u["hwid_limit"], 3);
    assert_eq!(u["is_invalidated"], true);
    // The core's ban, seen natively.
    let native = cp
        .ok(
            Method::GET,
            &format!("/v1/licenses?search={value}"),
            &t.jwt,
            None,
        )
        .await;
    assert_eq!(native["items"][0]["status"], "banned");
    assert_eq!(native["items"][0]["traits"]["num_id"], id);
    let u = put(
        format!("/keys/{id}"),
        json!({"is_invalidated": false, "key_name": null, "hwid_limit": 0, "no_hwid": false}),
    )
    .await;
    assert_eq!(u["is_invalidated"], false);
    assert_eq!(u["key_name"], Value::Null);
    assert_eq!(u["hwid_limit"], Value::Null);
    assert_eq!(u["no_hwid"], false);
    // The HWIDs were left alone by trait edits.
    assert_eq!(u["keys_hwid"], json!(["H0"]));

    // Validity: from creation; from the first use (none yet, then the recorded one); fixed.
    let u = put(format!("/keys/{id}"), json!({"validity_minutes": 120})).await;
    assert_eq!(u["validity_minutes"], 120);
    assert_eq!(minutes_between(&u["created_at"], &u["expires_at"]), 120);
    let u = put(
        format!("/keys/{id}"),
        json!({"expiry_on_first_use": true, "validity_minutes": 45}),
    )
    .await;
    assert_eq!(u["expires_at"], Value::Null, "{u}");
    assert_eq!(u["expiry_on_first_use"], true);
    assert_eq!(u["validity_minutes"], 45);
    first_use(&cp, id).await;
    let u = put(format!("/keys/{id}"), json!({"validity_minutes": 30})).await;
    assert_eq!(u["expiry_on_first_use"], true);
    assert_eq!(minutes_between(&u["used_at"], &u["expires_at"]), 30);
    let u = put(
        format!("/keys/{id}"),
        json!({"expires_at": "2031-05-06T07:08:09Z"}),
    )
    .await;
    assert_eq!(u["expires_at"], "2031-05-06T07:08:09.000Z");
    assert_eq!(u["expiry_on_first_use"], false);
    let u = put(format!("/keys/{id}"), json!({"expires_at": null})).await;
    assert_eq!(u["expires_at"], Value::Null);
    assert_eq!(u["validity_minutes"], Value::Null);
    let r = t
        .call(
            &cp,
            Method::PUT,
            &format!("/keys/{id}"),
            Some(json!({"expires_at": "2031-01-01T00:00:00Z", "validity_minutes": 5})),
        )
        .await;
    junkie_error(&r, 400, "expires_at with validity_minutes");

    // hwids[] replaces every bound HWID (bound_by manual); [] clears them.
    let u = put(format!("/keys/{id}"), json!({"hwids": ["A", "B"]})).await;
    assert_eq!(u["keys_hwid"], json!(["A", "B"]));
    assert!(u["hwids"]
        .as_array()
        .is_some_and(|h| h.iter().all(|h| h["bound_by"] == "manual")));
    let u = put(format!("/keys/{id}"), json!({"hwids": ["C"]})).await;
    assert_eq!(u["keys_hwid"], json!(["C"]));
    let u = put(format!("/keys/{id}"), json!({"hwids": []})).await;
    assert_eq!(u["hwids"], json!([]));
    let r = t
        .call(
            &cp,
            Method::PUT,
            "/keys/999999999",
            Some(json!({"is_premium": true})),
        )
        .await;
    junkie_error(&r, 404, "PUT unknown");

    // Delete by value, then by id.
    let other = t.key(&cp, json!({"provider_id": p, "service_id": s})).await;
    let r = t
        .call(&cp, Method::DELETE, &format!("/keys/{value}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"message": "Key deleted"}));
    junkie_error(
        &t.call(&cp, Method::GET, &format!("/keys/{id}"), None).await,
        404,
        "deleted",
    );
    junkie_error(
        &t.call(&cp, Method::DELETE, &format!("/keys/{id}"), None)
            .await,
        404,
        "deleted twice",
    );
    let r = t
        .call(&cp, Method::DELETE, &format!("/keys/{}", other["id"]), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let left = t.ok(&cp, Method::GET, "/keys", None).await;
    assert_eq!(left["pagination"]["total"], 0);
}

#[tokio::test]
async fn bulk_delete_by_ids_and_values() {
    let cp = Cp::start().await;
    let t = tenant(&cp, "alice").await;
    let p = t.provider(&cp, "P", None).await;
    let s = t.service(&cp, "S").await;
    let r = t
        .ok(
            &cp,
            Method::POST,
            "/keys/batch",
            Some(json!({"provider_id": p, "service_id": s, "amount": 6})),
        )
        .await;
    let k = r["keys"].as_array().expect("keys").clone();
    let del = |body: Value| {
        let t = &t;
        let cp = &cp;
        async move {
            t.call(cp, Method::POST, "/keys/bulk-delete", Some(body))
                .await
        }
    };
    let r = del(json!({"ids": [k[0]["id"], k[1]["id"]]})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"deleted": 2, "message": "Keys deleted"}));
    let r = del(
        json!({"keys": [k[2]["key_value"]], "key_values": [k[3]["key_value"]],
                       "ids": [k[4]["id"]]}),
    )
    .await;
    assert_eq!(r.body["deleted"], 3, "{}", r.body);
    let r = del(json!({"ids": [], "keys": ["NOT-A-KEY"]})).await;
    assert_eq!(r.body["deleted"], 0, "{}", r.body);
    junkie_error(&del(json!({})).await, 400, "nothing named");
    junkie_error(&del(json!({"ids": ["x"]})).await, 400, "ids of strings");
    let left = t.ok(&cp, Method::GET, "/keys", None).await;
    assert_eq!(left["pagination"]["total"], 1);
    assert_eq!(left["keys"][0]["id"], k[5]["id"]);
}

#[tokio::test]
async fn reset_hwid_obeys_the_cooldown_unless_forced() {
    let cp = Cp::start().await;
    let t = tenant(&cp, "alice").await;
    let p = t.provider(&cp, "P", None).await;
    let s = t.service(&cp, "S").await;
    let apps = cp.ok(Method::GET, "/v1/apps", &t.jwt, None).await;
    let app = apps["items"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["key_system"]["num_id"] == s))
        .and_then(|a| a["id"].as_str())
        .expect("the service's app")
        .to_string();
    cp.ok(
        Method::PATCH,
        &format!("/v1/apps/{app}"),
        &t.jwt,
        Some(json!({"hwid_reset_cooldown_secs": 3600})),
    )
    .await;
    let k = t
        .key(
            &cp,
            json!({"provider_id": p, "service_id": s, "hwid": "H1"}),
        )
        .await;
    let path = format!("/keys/{}/reset-hwid", k["id"]);
    let r = t.call(&cp, Method::POST, &path, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({"message": "HWIDs reset"}));
    let got = t
        .ok(&cp, Method::GET, &format!("/keys/{}", k["id"]), None)
        .await;
    assert_eq!(got["key"]["hwids"], json!([]));

    let bind = || {
        let t = &t;
        let cp = &cp;
        let k = &k;
        async move {
            t.ok(
                cp,
                Method::PUT,
                &format!("/keys/{}", k["id"]),
                Some(json!({"hwids": ["H2"]})),
            )
            .await;
        }
    };
    bind().await;
    let r = t.call(&cp, Method::POST, &path, None).await;
    junkie_error(&r, 429, "within the cooldown");
    let wait: u64 = r
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((3500..=3600).contains(&wait), "{wait}");
    let still = t
        .ok(&cp, Method::GET, &format!("/keys/{}", k["id"]), None)
        .await;
    assert_eq!(
        still["key"]["keys_hwid"],
        json!(["H2"]),
        "nothing was reset"
    );

    // force=true, in the query or the body, skips the cooldown.
    let r = t
        .call(&cp, Method::POST, &format!("{path}?force=true"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    bind().await;
    let r = t
        .call(&cp, Method::POST, &path, Some(json!({"force": true})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let after = t
        .ok(&cp, Method::GET, &format!("/keys/{}", k["id"]), None)
        .await;
    assert_eq!(after["key"]["hwids"], json!([]));
    junkie_error(
        &t.call(&cp, Method::POST, "/keys/999999999/reset-hwid", None)
            .await,
        404,
        "unknown key",
    );
}

#[tokio::test]
async fn auth_and_routing_refusals_take_junkies_shape() {
    let cp = Cp::start().await;
    let t = tenant(&cp, "alice").await;
    let none = cp.call(Method::GET, "/api/v2/keys", None, None).await;
    junkie_error(&none, 401, "no credentials");
    let unknown = cp
        .call(
            Method::GET,
            "/api/v2/keys",
            Some(&format!("kw_{}", "A".repeat(40))),
            None,
        )
        .await;
    junkie_error(&unknown, 401, "unknown API key");
    let r = cp
        .raw(Method::GET, "/api/v2/services", None, None, Vec::new())
        .await;
    junkie_error(&r, 401, "no credentials on services");
    let narrow = cp
        .ok(
            Method::POST,
            "/v1/api-keys",
            &t.jwt,
            Some(json!({"name": "reader", "scopes": ["apps:read"]})),
        )
        .await;
    let narrow = narrow["key"].as_str().expect("key");
    for (method, path) in [
        (Method::GET, "/api/v2/keys"),
        (Method::POST, "/api/v2/keys"),
        (Method::GET, "/api/v2/services"),
        (Method::DELETE, "/api/v2/providers/1"),
    ] {
        let r = cp.call(method.clone(), path, Some(narrow), None).await;
        junkie_error(&r, 403, &format!("{method} {path} without the scope"));
        assert_eq!(r.body["error"], "FORBIDDEN");
    }
    let star = cp
        .ok(
            Method::POST,
            "/v1/api-keys",
            &t.jwt,
            Some(json!({"name": "all", "scopes": ["*"]})),
        )
        .await;
    let r = cp
        .call(
            Method::GET,
            "/api/v2/keys",
            Some(star["key"].as_str().expect("key")),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "* allows rest-api:*: {}", r.body);
    let r = cp
        .call(Method::GET, "/api/v2/keys", Some(&t.jwt), None)
        .await;
    assert_eq!(r.status, 200, "an admin's JWT: {}", r.body);

    // The router's and the input guard's refusals under the prefix.
    junkie_error(
        &cp.call(Method::GET, "/api/v2/nope", Some(&t.key), None)
            .await,
        404,
        "unknown route",
    );
    junkie_error(
        &cp.call(Method::GET, "/api/v2", Some(&t.key), None).await,
        404,
        "the prefix alone",
    );
    junkie_error(
        &cp.call(Method::PATCH, "/api/v2/keys", Some(&t.key), None)
            .await,
        405,
        "wrong method",
    );
    let r = cp
        .call(Method::GET, "/api/v2/keys?key=a%00b", Some(&t.key), None)
        .await;
    junkie_error(&r, 400, "NUL in the query");
    assert!(r.body["message"].as_str().unwrap_or("").contains("key"));
    let r = cp
        .raw(
            Method::POST,
            "/api/v2/keys",
            Some(&t.key),
            Some("application/json"),
            br#"{"key_name":"a\u0000b","provider_id":1}"#.to_vec(),
        )
        .await;
    junkie_error(&r, 400, "NUL in the body");
    assert!(r.body["message"]
        .as_str()
        .unwrap_or("")
        .contains("key_name"));
}

#[tokio::test]
async fn services_and_providers() {
    let cp = Cp::start().await;
    let t = tenant(&cp, "alice").await;
    let r = t
        .call(
            &cp,
            Method::POST,
            "/services",
            Some(
                json!({"name": "Hub", "description": "the hub", "is_premium": true,
                        "keyless_mode": true}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let svc = r.body["service"].clone();
    let s = svc["id"].as_i64().expect("integer service id");
    assert_eq!(svc["name"], "Hub");
    assert_eq!(svc["is_premium"], true);
    assert_eq!(svc["description"], "the hub");
    assert_eq!(svc["keyless_mode"], true);
    let list = t.ok(&cp, Method::GET, "/services", None).await;
    assert_eq!(list["services"], json!([svc]));
    // The core's app: keyless mode its own, description and premium its metadata.
    let apps = cp.ok(Method::GET, "/v1/apps", &t.jwt, None).await;
    let app = &apps["items"][0];
    assert_eq!(app["key_system"]["num_id"], s);
    assert_eq!(app["key_system"]["keyless_mode"], true);
    assert_eq!(app["metadata"]["description"], "the hub");
    junkie_error(
        &t.call(&cp, Method::POST, "/services", Some(json!({"name": "Hub"})))
            .await,
        409,
        "a second service with the name",
    );
    junkie_error(
        &t.call(&cp, Method::POST, "/services", Some(json!({})))
            .await,
        400,
        "no name",
    );

    let r = t
        .call(
            &cp,
            Method::POST,
            "/providers",
            Some(json!({"name": "Work.ink", "key_valid_minutes": 90,
                        "link_url": "https://work.ink/x"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let prov = r.body["provider"].clone();
    let p = prov["id"].as_i64().expect("integer provider id");
    assert_eq!(prov["is_active"], true);
    assert_eq!(prov["key_valid_minutes"], 90);
    let list = t.ok(&cp, Method::GET, "/providers", None).await;
    assert_eq!(list["providers"], json!([prov]));
    let native = cp
        .ok(Method::GET, &format!("/v1/providers/{p}"), &t.jwt, None)
        .await;
    assert_eq!(native["name"], "Work.ink");
    assert_eq!(native["link_url"], "https://work.ink/x");

    // A provider's deletion leaves its keys, unattributed; a service's takes its keys.
    let k = t.key(&cp, json!({"provider_id": p, "service_id": s})).await;
    assert_eq!(k["validity_minutes"], 90);
    let r = t
        .call(&cp, Method::DELETE, &format!("/providers/{p}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let k2 = t
        .ok(&cp, Method::GET, &format!("/keys/{}", k["id"]), None)
        .await;
    assert_eq!(k2["key"]["provider_id"], 0);
    assert_eq!(k2["key"]["provider_name"], Value::Null);
    junkie_error(
        &t.call(&cp, Method::DELETE, &format!("/providers/{p}"), None)
            .await,
        404,
        "deleted provider",
    );
    let r = t
        .call(&cp, Method::DELETE, &format!("/services/{s}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    junkie_error(
        &t.call(&cp, Method::GET, &format!("/keys/{}", k["id"]), None)
            .await,
        404,
        "a deleted service's key",
    );
    junkie_error(
        &t.call(&cp, Method::DELETE, &format!("/services/{s}"), None)
            .await,
        404,
        "deleted service",
    );
    junkie_error(
        &t.call(&cp, Method::DELETE, "/services/abc", None).await,
        404,
        "not an id",
    );
}

#[tokio::test]
async fn tenants_are_isolated() {
    let cp = Cp::start().await;
    let alice = tenant(&cp, "alice").await;
    let bob = tenant(&cp, "bob").await;
    let ap = alice.provider(&cp, "alice-provider", None).await;
    let asvc = alice.service(&cp, "alice-service").await;
    let k = alice
        .key(
            &cp,
            json!({"provider_id": ap, "service_id": asvc, "hwid": "ALICE-HW"}),
        )
        .await;
    let (id, value) = (
        k["id"].clone(),
        k["key_value"].as_str().unwrap_or("").to_string(),
    );
    let bp = bob.provider(&cp, "bob-provider", None).await;
    let bsvc = bob.service(&cp, "bob-service").await;

    for key in [id.to_string(), value.clone()] {
        for (method, path, body) in [
            (Method::GET, format!("/keys/{key}"), None),
            (
                Method::PUT,
                format!("/keys/{key}"),
                Some(json!({"is_invalidated": true, "hwids": []})),
            ),
            (
                Method::POST,
                format!("/keys/{key}/reset-hwid?force=true"),
                None,
            ),
            (Method::DELETE, format!("/keys/{key}"), None),
        ] {
            let r = bob.call(&cp, method.clone(), &path, body).await;
            junkie_error(&r, 404, &format!("Bob {method} {path}"));
        }
    }
    for (method, path) in [
        (Method::DELETE, format!("/services/{asvc}")),
        (Method::DELETE, format!("/providers/{ap}")),
    ] {
        let r = bob.call(&cp, method.clone(), &path, None).await;
        junkie_error(&r, 404, &format!("Bob {method} {path}"));
    }
    let r = bob
        .call(
            &cp,
            Method::POST,
            "/keys/bulk-delete",
            Some(json!({"ids": [id], "keys": [value]})),
        )
        .await;
    assert_eq!(r.body["deleted"], 0, "{}", r.body);
    // Bob cannot make keys in Alice's service or with her provider.
    junkie_error(
        &bob.call(
            &cp,
            Method::POST,
            "/keys",
            Some(json!({"provider_id": bp, "service_id": asvc})),
        )
        .await,
        404,
        "Alice's service",
    );
    junkie_error(
        &bob.call(
            &cp,
            Method::POST,
            "/keys",
            Some(json!({"provider_id": ap, "service_id": bsvc})),
        )
        .await,
        404,
        "Alice's provider",
    );
    // Bob's lists show nothing of Alice's.
    for path in [
        "/keys".to_string(),
        format!("/keys?key={value}"),
        format!("/keys?service_id={asvc}"),
        format!("/keys?provider_id={ap}"),
        "/keys?hwid=ALICE".into(),
        "/services".into(),
        "/providers".into(),
    ] {
        let text = bob.ok(&cp, Method::GET, &path, None).await.to_string();
        for mark in [
            value.as_str(),
            "alice-provider",
            "alice-service",
            "ALICE-HW",
        ] {
            assert!(!text.contains(mark), "Bob's {path} shows {mark}: {text}");
        }
    }
    // Alice's key is as it was.
    let now = alice
        .ok(&cp, Method::GET, &format!("/keys/{id}"), None)
        .await;
    assert_eq!(now["key"], k);
    let svcs = alice.ok(&cp, Method::GET, "/services", None).await;
    assert_eq!(svcs["services"][0]["id"], asvc);
    let provs = alice.ok(&cp, Method::GET, "/providers", None).await;
    assert_eq!(provs["providers"][0]["id"], ap);
}

#[tokio::test]
async fn native_providers_and_license_traits() {
    let cp = Cp::start().await;
    let jwt = cp.admin("alice").await;
    let j = jwt.as_str();
    let r = cp
        .call(
            Method::POST,
            "/v1/providers",
            Some(j),
            Some(json!({"name": "Lootlabs", "key_valid_minutes": 1440})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let p = r.body["id"].as_i64().expect("id");
    assert_eq!(r.body["is_active"], true);
    let list = cp.ok(Method::GET, "/v1/providers", j, None).await;
    assert_eq!(list["items"][0]["id"], p);
    let r = cp
        .call(
            Method::POST,
            "/v1/providers",
            Some(j),
            Some(json!({"name": "X", "bogus": 1})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let reader = cp
        .ok(
            Method::POST,
            "/v1/api-keys",
            j,
            Some(json!({"name": "r", "scopes": ["licenses:read"]})),
        )
        .await;
    let reader = reader["key"].as_str().expect("key");
    let r = cp
        .call(
            Method::GET,
            &format!("/v1/providers/{p}"),
            Some(reader),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = cp
        .call(
            Method::DELETE,
            &format!("/v1/providers/{p}"),
            Some(reader),
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // Generation: the provider's default validity, or none with no_expiry.
    let app = cp.app(j, "game").await;
    let l = cp
        .licenses(j, &app, json!({"provider_id": p, "premium": true}))
        .await
        .remove(0);
    assert_eq!(l["traits"]["provider_id"], p);
    assert_eq!(l["traits"]["premium"], true);
    assert!(l["expires_at"].is_string(), "{l}");
    let l = cp
        .licenses(j, &app, json!({"provider_id": p, "no_expiry": true}))
        .await
        .remove(0);
    assert_eq!(l["expires_at"], Value::Null, "{l}");
    let id = l["id"].as_str().expect("id").to_string();

    // PATCH carries the traits, in one transaction with the license's own fields.
    let r = cp
        .call(
            Method::PATCH,
            &format!("/v1/licenses/{id}"),
            Some(j),
            Some(json!({"note": "n1", "premium": true, "hwid_check": false,
                        "one_time_use": true, "discord_id": "123456789012345678",
                        "provider_id": null})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let t = &r.body["traits"];
    assert_eq!(r.body["note"], "n1");
    assert_eq!(t["premium"], true);
    assert_eq!(t["hwid_check"], false);
    assert_eq!(t["one_time_use"], true);
    assert_eq!(t["discord_id"], "123456789012345678");
    assert_eq!(t["provider_id"], Value::Null);
    let r = cp
        .call(
            Method::PATCH,
            &format!("/v1/licenses/{id}"),
            Some(j),
            Some(json!({"note": "n2", "provider_id": 999_999})),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let now = cp
        .ok(Method::GET, &format!("/v1/licenses/{id}"), j, None)
        .await;
    assert_eq!(now["note"], "n1", "the failed PATCH wrote nothing");
    let r = cp
        .call(
            Method::PATCH,
            &format!("/v1/licenses/{id}"),
            Some(j),
            Some(json!({"provider_id": p, "discord_id": "12"})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = cp
        .call(
            Method::PATCH,
            &format!("/v1/licenses/{id}"),
            Some(j),
            Some(json!({"premium": false, "bogus": 1})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = cp
        .call(Method::DELETE, &format!("/v1/providers/{p}"), Some(j), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = cp
        .call(Method::GET, &format!("/v1/providers/{p}"), Some(j), None)
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
}
