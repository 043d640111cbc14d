//! Acceptance with the real third-party Roblox key-system clients, unmodified but for their base
//! URL (spec `roblox-key-systems.md` §3–§4): Panda's V2LoaderLib @ aacdee3 and @ HEAD 6edee22,
//! PandaBetaLib, Junkie's SDK `library.lua` (under Lua 5.1 with the stand-in of
//! `roblox_clients/prelude.lua`) and PyPI's PandaAuthPy 1.0.2, each against a validator on port 0
//! over a real PostgreSQL, the keys written through the core.
//!
//! Each case asserts what the library hands back to its caller and that every exchange it made
//! reached this server on the expected path. The Lua libraries are kept out of the repository
//! (`roblox_clients/README.md`): their tests skip, saying so, where they are absent; PandaAuthPy
//! is installed from PyPI and always runs.

mod common;
mod key_system;

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::lua::{run_driver_async, third_party_present, ClientRun};
use common::panda_py::{run_panda_py_async, BAD_REQUEST_HWID};
use common::{post_raw, validator};
use key_system::*;
use keyward_shared::model::License;
use keyward_shared::store::{apps, key_providers, licenses};
use keyward_shared::testing::{eventually, Tenant, TestDb};
use keyward_shared::write::WriteTx;
use serde_json::{json, Value};

const V1: &str = "panda_v2loader_v1";
const HEAD: &str = "panda_v2loader_head";
const BETA: &str = "panda_beta";
const JUNKIE: &str = "junkie";
/// The service's get-key page (where `/getkey/...` sends the player).
const GET_KEY_PAGE: &str = "https://keys.example.com/get";
const PROVIDER_LINK: &str = "https://link.example.com/get?svc=1";
/// How long a ban or a settings change may take to reach the validator's caches.
const PROPAGATION: Duration = Duration::from_secs(5);

fn small_pool(cfg: &mut keyward_validator::Config) {
    cfg.pool_size = 6;
}

/// Runs a driver to its `done` line: `KEYWARD_SERVICE`, `KEYWARD_KEY`, `KEYWARD_STEPS`, plus
/// `extra`, as a player whose `gethwid()` and `GetClientId()` are `hwid`.
async fn drive(
    base: &str,
    driver: &str,
    hwid: &str,
    service: &str,
    key: &str,
    steps: &str,
    extra: &[(&str, &str)],
) -> ClientRun {
    let mut env = vec![
        ("KEYWARD_SERVICE", service),
        ("KEYWARD_KEY", key),
        ("KEYWARD_STEPS", steps),
    ];
    env.extend_from_slice(extra);
    let run = run_driver_async(base, hwid, driver, &env).await;
    run.assert_done();
    run
}

/// Every line of a step with this name, in order (a step may be run more than once).
fn lines_of(run: &ClientRun, step: &str) -> Vec<Value> {
    let lines: Vec<Value> = run
        .lines()
        .into_iter()
        .filter(|l| l["step"] == step)
        .collect();
    assert!(!lines.is_empty(), "no step {step:?}:\n{}", run.stdout);
    lines
}

/// The return values of one step line that did not raise.
fn returned(line: &Value) -> &Value {
    assert_eq!(line["ok"], true, "the step raised: {line}");
    &line["result"]
}

/// Asserts that a step line's exchanges were exactly `want` (method, then the path where it
/// arrived here, or `refused:<url>` for a host the stand-in refuses), all answered by this
/// server; returns them.
fn reached(line: &Value, base: &str, want: &[(&str, &str)]) -> Vec<Value> {
    let http = line["http"].as_array().cloned().unwrap_or_default();
    let got: Vec<(String, String)> = http
        .iter()
        .map(|x| {
            let method = x["method"].as_str().unwrap_or("").to_string();
            let place = match x["target"].as_str() {
                Some(target) => {
                    let rest = target.strip_prefix(base).unwrap_or_else(|| {
                        panic!("{target} is not on the server under test {base}: {x}")
                    });
                    assert!(x["refused"].is_null(), "an exchange was refused: {x}");
                    let status = x["status"].as_u64().unwrap_or(0);
                    assert!(
                        (100..600).contains(&status),
                        "no answer from the server: {x}"
                    );
                    rest.split('?').next().unwrap_or("").to_string()
                }
                None => format!("refused:{}", x["url"].as_str().unwrap_or("")),
            };
            (method, place)
        })
        .collect();
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(got, want, "exchanges of {}: {http:?}", line["step"]);
    http
}

/// The decoded body the server answered with (an exchange's `response`).
fn response(exchange: &Value) -> Value {
    let text = exchange["response"].as_str().unwrap_or("");
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {exchange}"))
}

/// An app that is a Panda service with this id (and `patch`'s other settings).
async fn panda_service(c: &mut tokio_postgres::Client, sid: &str, patch: apps::AppPatch) -> Tenant {
    service(
        c,
        apps::AppPatch {
            service_id: Some(Some(sid.to_string())),
            ..patch
        },
    )
    .await
}

fn premium() -> licenses::GenerateSpec {
    licenses::GenerateSpec {
        premium: true,
        ..Default::default()
    }
}

fn expiring_in_days(days: i64) -> licenses::GenerateSpec {
    licenses::GenerateSpec {
        expires_at: Some(Utc::now() + chrono::Duration::days(days)),
        ..Default::default()
    }
}

fn one_time() -> licenses::GenerateSpec {
    licenses::GenerateSpec {
        one_time_use: Some(true),
        ..Default::default()
    }
}

/// A key whose expiry has passed: made valid, then given an expiry an hour ago through the core
/// (before any validation, so no cache holds it).
async fn expired_key(c: &mut tokio_postgres::Client, t: &Tenant) -> License {
    let k = key(c, t, Default::default()).await;
    let mut w = WriteTx::begin(c, t.actor.clone()).await.expect("begin");
    licenses::update(
        &mut w,
        k.id,
        &licenses::LicensePatch {
            expires_at: Some(Some(Utc::now() - chrono::Duration::hours(1))),
            ..Default::default()
        },
    )
    .await
    .expect("expire the key");
    w.commit().await.expect("commit");
    k
}

/// Panda's `Key_Information.Notes` for a key, straight over HTTP (to wait for a change to reach
/// the validator before a library run asserts on it).
async fn panda_note(
    http: &reqwest::Client,
    addr: SocketAddr,
    sid: &str,
    key: &str,
    hwid: &str,
) -> String {
    let r = get(
        http,
        addr,
        &format!("/v2_validation?hwid={hwid}&service={sid}&key={key}"),
    )
    .await;
    r.body["Key_Information"]["Notes"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Bans a key through the core and waits until the validator refuses it.
async fn ban_and_wait(
    c: &mut tokio_postgres::Client,
    t: &Tenant,
    k: &License,
    addr: SocketAddr,
    sid: &str,
    hwid: &str,
) {
    ban(c, t, k.id).await;
    let http = reqwest::Client::new();
    eventually(PROPAGATION, "ban seen by the validator", || {
        let http = &http;
        async move { (panda_note(http, addr, sid, &k.key, hwid).await == "Key banned").then_some(()) }
    })
    .await;
}

/// Turns the service's keyless mode on and waits until the validator lets a keyless request in.
async fn keyless_on_and_wait(
    c: &mut tokio_postgres::Client,
    t: &Tenant,
    patch: apps::AppPatch,
    addr: SocketAddr,
    sid: &str,
) {
    update(
        c,
        t,
        apps::AppPatch {
            keyless_mode: Some(true),
            ..patch
        },
    )
    .await;
    let http = reqwest::Client::new();
    eventually(PROPAGATION, "keyless mode seen by the validator", || {
        let http = &http;
        async move {
            (panda_note(http, addr, sid, "keyless", "SYNC-PROBE").await == "Keyless access")
                .then_some(())
        }
    })
    .await;
}

/// V2LoaderLib's `Expire_Date`: UTC `YYYY-MM-DD HH:MM:SS`.
fn loader_date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

#[tokio::test]
async fn v2loader_aacdee3_validates_through_its_url_knob_and_reads_every_refusal() {
    if !third_party_present() {
        return;
    }
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let sid = service_id("v1");
    let t = panda_service(
        &mut c,
        &sid,
        apps::AppPatch {
            get_key_url: Some(Some(GET_KEY_PAGE.into())),
            ..Default::default()
        },
    )
    .await;
    let v = validator(&db.url, small_pool).await;
    let (addr, base) = (v.addr(), format!("http://{}", v.addr()));
    let path = [("POST", "/api/v1/keys/validate")];
    let step = |run: &ClientRun, name: &str| lines_of(run, name).remove(0);

    // Valid: `Config{URL = base}`; the library appends /api/v1 itself. First use binds.
    let k = key(&mut c, &t, expiring_in_days(10)).await;
    let run = drive(&base, V1, "V1-A", &sid, &k.key, "validate", &[]).await;
    let line = step(&run, "validate");
    assert_eq!(
        returned(&line)[0],
        json!({"success": true, "message": "Key is valid", "isPremium": false,
               "expireDate": loader_date(k.expires_at.unwrap())})
    );
    let http = reached(&line, &base, &path);
    assert_eq!(http[0]["url"], format!("{base}/api/v1/keys/validate"));
    assert_eq!(
        serde_json::from_str::<Value>(http[0]["body"].as_str().unwrap()).unwrap(),
        json!({"HWID": "V1-A", "Key": k.key, "ServiceID": sid})
    );
    assert_eq!(bound_hwids(&c, k.id).await, ["V1-A"]);
    // Its default URL (new.pandadevelopment.net) reaches the same route.
    let run = drive(
        &base,
        V1,
        "V1-A",
        &sid,
        &k.key,
        "validate",
        &[("KEYWARD_URL", "default")],
    )
    .await;
    let line = step(&run, "validate");
    assert_eq!(returned(&line)[0]["success"], true, "{line}");
    let http = reached(&line, &base, &path);
    assert_eq!(
        http[0]["url"],
        "https://new.pandadevelopment.net/api/v1/keys/validate"
    );

    // Wrong HWID: another machine after the first bound the key.
    let run = drive(&base, V1, "V1-B", &sid, &k.key, "validate", &[]).await;
    let line = step(&run, "validate");
    assert_eq!(
        returned(&line)[0],
        json!({"success": false, "message": "HWID mismatch", "isPremium": false})
    );
    reached(&line, &base, &path);
    assert_eq!(bound_hwids(&c, k.id).await, ["V1-A"]);

    // Expired.
    let expired = expired_key(&mut c, &t).await;
    let run = drive(&base, V1, "V1-A", &sid, &expired.key, "validate", &[]).await;
    let line = step(&run, "validate");
    assert_eq!(
        returned(&line)[0],
        json!({"success": false, "message": "Key expired", "isPremium": false})
    );
    reached(&line, &base, &path);

    // Premium gate: `Validate(key, true)` refuses a valid non-premium key on the client side,
    // and passes a premium one.
    let plain = key(&mut c, &t, Default::default()).await;
    let run = drive(&base, V1, "V1-A", &sid, &plain.key, "validate_premium", &[]).await;
    let line = step(&run, "validate_premium");
    assert_eq!(
        returned(&line)[0],
        json!({"success": false, "message": "Premium key required", "isPremium": false})
    );
    let http = reached(&line, &base, &path);
    assert_eq!(response(&http[0])["Authenticated_Status"], "Success");
    let gold = key(&mut c, &t, premium()).await;
    let run = drive(&base, V1, "V1-A", &sid, &gold.key, "validate_premium", &[]).await;
    let line = step(&run, "validate_premium");
    assert_eq!(
        returned(&line)[0],
        json!({"success": true, "message": "Key is valid", "isPremium": true})
    );
    reached(&line, &base, &path);

    // Invalidated: banned through the core after a first good use.
    let banned = key(&mut c, &t, Default::default()).await;
    let run = drive(&base, V1, "V1-A", &sid, &banned.key, "validate", &[]).await;
    assert_eq!(returned(&step(&run, "validate"))[0]["success"], true);
    ban_and_wait(&mut c, &t, &banned, addr, &sid, "V1-A").await;
    let run = drive(&base, V1, "V1-A", &sid, &banned.key, "validate", &[]).await;
    let line = step(&run, "validate");
    assert_eq!(
        returned(&line)[0],
        json!({"success": false, "message": "Key banned", "isPremium": false})
    );
    reached(&line, &base, &path);

    // A one-time key, twice in one session.
    let once = key(&mut c, &t, one_time()).await;
    let run = drive(&base, V1, "V1-A", &sid, &once.key, "validate,validate", &[]).await;
    let lines = lines_of(&run, "validate");
    assert_eq!(lines.len(), 2);
    assert_eq!(
        returned(&lines[0])[0],
        json!({"success": true, "message": "Key is valid", "isPremium": false})
    );
    assert_eq!(
        returned(&lines[1])[0],
        json!({"success": false, "message": "Key already used", "isPremium": false})
    );
    for l in &lines {
        reached(l, &base, &path);
    }

    // The get-key link it builds (no request) leads to the service's page here.
    let run = drive(&base, V1, "V1-A", &sid, "", "open_get_key", &[]).await;
    let line = step(&run, "open_get_key");
    let url = format!("{base}/getkey/{sid}?hwid=V1-A");
    assert_eq!(returned(&line)[0], json!(url));
    assert_eq!(line["clipboard"], json!([url]));
    reached(&line, &base, &[]);
    let r = no_redirects().get(&url).send().await.expect("get-key link");
    assert_eq!(r.status().as_u16(), 302);
    assert_eq!(r.headers()["location"], GET_KEY_PAGE);
    v.shutdown().await;
}

#[tokio::test]
async fn v2loader_head_validates_on_its_hard_coded_host() {
    if !third_party_present() {
        return;
    }
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let sid = service_id("head");
    let t = panda_service(&mut c, &sid, Default::default()).await;
    let v = validator(&db.url, small_pool).await;
    let base = format!("http://{}", v.addr());
    let path = [("POST", "/v2_validation")];
    let validate = |run: &ClientRun, name: &str| {
        let line = lines_of(run, name).remove(0);
        let http = reached(&line, &base, &path);
        assert_eq!(http[0]["url"], "https://secure.pandauth.com/v2_validation");
        // [authenticated, the decoded body as is]
        returned(&line).clone()
    };

    // Valid, bound on first use; the body names the key by lower-case fields.
    let k = key(&mut c, &t, Default::default()).await;
    let run = drive(&base, HEAD, "HEAD-A", &sid, &k.key, "validate", &[]).await;
    assert_eq!(
        validate(&run, "validate"),
        json!([true, {"Status": "Authenticate", "Is_Premium": false, "Note": "Key is valid"}])
    );
    let sent = &lines_of(&run, "validate")[0]["http"][0]["body"];
    assert_eq!(
        serde_json::from_str::<Value>(sent.as_str().unwrap()).unwrap(),
        json!({"hwid": "HEAD-A", "key": k.key, "serviceid": sid})
    );
    assert_eq!(bound_hwids(&c, k.id).await, ["HEAD-A"]);

    // Wrong HWID.
    let run = drive(&base, HEAD, "HEAD-B", &sid, &k.key, "validate", &[]).await;
    assert_eq!(
        validate(&run, "validate"),
        json!([false, {"Status": "Failed", "Is_Premium": false, "Note": "HWID mismatch"}])
    );

    // Expired.
    let expired = expired_key(&mut c, &t).await;
    let run = drive(&base, HEAD, "HEAD-A", &sid, &expired.key, "validate", &[]).await;
    assert_eq!(
        validate(&run, "validate"),
        json!([false, {"Status": "Failed", "Is_Premium": false, "Note": "Key expired"}])
    );

    // Premium: `Validate(key, true)` refuses a valid non-premium key, passes a premium one.
    let plain = key(&mut c, &t, Default::default()).await;
    let run = drive(
        &base,
        HEAD,
        "HEAD-A",
        &sid,
        &plain.key,
        "validate_premium",
        &[],
    )
    .await;
    assert_eq!(
        validate(&run, "validate_premium"),
        json!([false, {"Status": "Authenticate", "Is_Premium": false, "Note": "Key is valid"}])
    );
    let gold = key(&mut c, &t, premium()).await;
    let run = drive(
        &base,
        HEAD,
        "HEAD-A",
        &sid,
        &gold.key,
        "validate_premium",
        &[],
    )
    .await;
    assert_eq!(
        validate(&run, "validate_premium"),
        json!([true, {"Status": "Authenticate", "Is_Premium": true, "Note": "Key is valid"}])
    );
    v.shutdown().await;
}

#[tokio::test]
async fn panda_beta_lib_validates_after_getconfig_goes_keyless_and_resets_its_hwid() {
    if !third_party_present() {
        return;
    }
    let db = TestDb::new().await;
    let mut c = db.client().await;
    // Mixed case: the library lower-cases the service id for its HWID reset.
    let sid = service_id("Beta");
    let t = panda_service(&mut c, &sid, Default::default()).await;
    let v = validator(&db.url, small_pool).await;
    let (addr, base) = (v.addr(), format!("http://{}", v.addr()));
    let validation = [("GET", "/serviceapi"), ("GET", "/v2_validation")];
    // One validation step: its [bool] and what the server answered the validation.
    let outcome = |run: &ClientRun, name: &str| {
        let line = lines_of(run, name).remove(0);
        let http = reached(&line, &base, &validation);
        assert_eq!(
            http[0]["url"],
            format!("https://pandadevelopment.net/serviceapi?service={sid}&command=getconfig")
        );
        assert_eq!(response(&http[0]), json!({"AuthMode": "hwidonly"}));
        assert_eq!(http[1]["headers"]["user-agent"], "pandaauth");
        (
            returned(&line).clone(),
            response(&http[1]),
            http[1]["url"].clone(),
        )
    };

    // Valid: getconfig says hwidonly, so the HWID is GetClientId(); bound on first use.
    let k = key(&mut c, &t, Default::default()).await;
    let run = drive(&base, BETA, "BETA-A", &sid, &k.key, "validate", &[]).await;
    let (result, answer, url) = outcome(&run, "validate");
    assert_eq!(result, json!([true]));
    assert_eq!(
        url,
        format!(
            "https://pandadevelopment.net/v2_validation?hwid=BETA-A&service={sid}&key={}",
            k.key
        )
    );
    assert_eq!(answer["Key_Information"]["Hardware_ID"], "BETA-A");
    assert_eq!(bound_hwids(&c, k.id).await, ["BETA-A"]);

    // Wrong HWID.
    let run = drive(&base, BETA, "BETA-B", &sid, &k.key, "validate", &[]).await;
    let (result, answer, _) = outcome(&run, "validate");
    assert_eq!(result, json!([false]));
    assert_eq!(answer["Key_Information"]["Notes"], "HWID mismatch");

    // Expired.
    let expired = expired_key(&mut c, &t).await;
    let run = drive(&base, BETA, "BETA-A", &sid, &expired.key, "validate", &[]).await;
    let (result, answer, _) = outcome(&run, "validate");
    assert_eq!(result, json!([false]));
    assert_eq!(answer["Key_Information"]["Notes"], "Key expired");

    // Premium gate: ValidatePremiumKey wants V2_Authentication success and Premium_Mode true.
    let plain = key(&mut c, &t, Default::default()).await;
    let run = drive(
        &base,
        BETA,
        "BETA-A",
        &sid,
        &plain.key,
        "validate_premium",
        &[],
    )
    .await;
    let (result, answer, _) = outcome(&run, "validate_premium");
    assert_eq!(result, json!([false]));
    assert_eq!(answer["V2_Authentication"], "success");
    assert_eq!(answer["Key_Information"]["Premium_Mode"], false);
    let gold = key(&mut c, &t, premium()).await;
    let run = drive(
        &base,
        BETA,
        "BETA-A",
        &sid,
        &gold.key,
        "validate_premium",
        &[],
    )
    .await;
    let (result, answer, _) = outcome(&run, "validate_premium");
    assert_eq!(result, json!([true]));
    assert_eq!(answer["Key_Information"]["Premium_Mode"], true);

    // Keyless with the service's keyless mode off: refused, no entry made.
    let run = drive(&base, BETA, "BETA-K", &sid, "", "keyless", &[]).await;
    let (result, answer, url) = outcome(&run, "keyless");
    assert_eq!(result, json!([false]));
    assert_eq!(answer["Key_Information"]["Notes"], "Keyless mode disabled");
    assert!(url.as_str().unwrap().ends_with("&key=keyless"), "{url}");
    assert_eq!(stored_keyless(&c, t.app.id, "BETA-K").await, None);

    // Its HWID reset with self-service resets off: nothing changes (the library ignores the
    // answer and returns nothing).
    let reset_url = |hwid: &str| {
        format!(
            "https://pandadevelopment.net/serviceapi/edit/hwid/?service={}&key={}&newhwid={hwid}",
            sid.to_lowercase(),
            k.key
        )
    };
    let reset = |run: &ClientRun, hwid: &str| {
        let line = lines_of(run, "reset_hwid").remove(0);
        assert_eq!(
            returned(&line),
            &json!([]),
            "ResetHardwareID returns nothing"
        );
        let http = reached(&line, &base, &[("POST", "/serviceapi/edit/hwid/")]);
        assert_eq!(http[0]["url"], reset_url(hwid));
        assert_eq!(http[0]["headers"]["user-agent"], "pandaauth");
        (http[0]["status"].clone(), response(&http[0]))
    };
    let run = drive(&base, BETA, "BETA-B", &sid, &k.key, "reset_hwid", &[]).await;
    let (status, _) = reset(&run, "BETA-B");
    assert_eq!(status, 403);
    assert_eq!(bound_hwids(&c, k.id).await, ["BETA-A"]);

    // Keyless mode and self-service resets on.
    keyless_on_and_wait(
        &mut c,
        &t,
        apps::AppPatch {
            self_hwid_reset: Some(true),
            ..Default::default()
        },
        addr,
        &sid,
    )
    .await;
    let run = drive(&base, BETA, "BETA-K", &sid, "", "keyless", &[]).await;
    let (result, answer, _) = outcome(&run, "keyless");
    assert_eq!(result, json!([true]));
    assert_eq!(answer["Key_Information"]["NoKey_Requirement"], true);
    assert!(stored_keyless(&c, t.app.id, "BETA-K").await.is_some());

    // The reset from the new machine clears the binding; the new machine then binds.
    let http = reqwest::Client::new();
    eventually(PROPAGATION, "self-service resets on", || {
        let (http, url) = (
            &http,
            format!("http://{addr}/serviceapi/edit/hwid/?service={sid}&key=NOPE"),
        );
        async move {
            let r = http.post(url).send().await.expect("probe");
            (r.status().as_u16() != 403).then_some(())
        }
    })
    .await;
    let run = drive(
        &base,
        BETA,
        "BETA-B",
        &sid,
        &k.key,
        "reset_hwid,validate",
        &[],
    )
    .await;
    let (status, answer) = reset(&run, "BETA-B");
    assert_eq!(status, 200);
    assert_eq!(answer, json!({"message": "HWID reset successfully ✅"}));
    let (result, _, _) = outcome(&run, "validate");
    assert_eq!(
        result,
        json!([true]),
        "the new machine is let in after the reset"
    );
    assert_eq!(bound_hwids(&c, k.id).await, ["BETA-B"]);

    // Invalidated.
    let banned = key(&mut c, &t, Default::default()).await;
    let run = drive(&base, BETA, "BETA-A", &sid, &banned.key, "validate", &[]).await;
    assert_eq!(outcome(&run, "validate").0, json!([true]));
    ban_and_wait(&mut c, &t, &banned, addr, &sid, "BETA-A").await;
    let run = drive(&base, BETA, "BETA-A", &sid, &banned.key, "validate", &[]).await;
    let (result, answer, _) = outcome(&run, "validate");
    assert_eq!(result, json!([false]));
    assert_eq!(answer["Key_Information"]["Notes"], "Key banned");
    v.shutdown().await;
}

/// Junkie's `verifyOpen` message for a key, straight over HTTP (no HWID, as the SDK sends).
async fn junkie_message(
    http: &reqwest::Client,
    addr: SocketAddr,
    identifier: &str,
    service: &str,
    key: &str,
) -> String {
    let body = json!({"key": key, "service": service, "identifier": identifier});
    let r = post_raw(
        http,
        addr,
        "/api/v1/whitelist/verifyOpen",
        body.to_string(),
        &[],
    )
    .await;
    r.body["message"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn junkie_sdk_checks_keys_and_gets_its_providers_link() {
    if !third_party_present() {
        return;
    }
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let name = format!("Svc {}", service_id("junkie"));
    let t = service(
        &mut c,
        apps::AppPatch {
            name: Some(name.clone()),
            ..Default::default()
        },
    )
    .await;
    let identifier = account_num(&c, &t).await.to_string();
    let mut w = WriteTx::begin(&mut c, t.actor.clone())
        .await
        .expect("begin");
    key_providers::create(
        &mut w,
        &key_providers::NewProvider {
            name: "Linkvertise".into(),
            is_active: true,
            key_valid_minutes: Some(60),
            link_url: Some(PROVIDER_LINK.into()),
        },
    )
    .await
    .expect("provider");
    w.commit().await.expect("commit");
    let v = validator(&db.url, small_pool).await;
    let (addr, base) = (v.addr(), format!("http://{}", v.addr()));
    let who = [("KEYWARD_IDENTIFIER", identifier.as_str())];
    let verify = [("POST", "/api/v1/whitelist/verifyOpen")];
    // check_key's table, after checking the exchange and the body the SDK sent.
    let check = |line: &Value, key: &str, service: &str| {
        let http = reached(line, &base, &verify);
        assert_eq!(
            serde_json::from_str::<Value>(http[0]["body"].as_str().unwrap()).unwrap(),
            json!({"identifier": identifier, "key": key, "service": service})
        );
        returned(line)[0].clone()
    };
    let junkie = |hwid: &'static str, key: String, steps: &'static str| {
        let (base, name, who) = (base.clone(), name.clone(), who);
        async move { drive(&base, JUNKIE, hwid, &name, &key, steps, &who).await }
    };

    // Valid, the service named by its name; the SDK sends no HWID, so none is bound.
    let k = key(&mut c, &t, expiring_in_days(10)).await;
    let run = junkie("JK-A", k.key.clone(), "check_key").await;
    assert_eq!(
        check(&lines_of(&run, "check_key")[0], &k.key, &name),
        json!({"valid": true, "message": "KEY_VALID", "is_premium": false,
               "expires_at": k.expires_at.unwrap().timestamp()})
    );
    assert!(bound_hwids(&c, k.id).await.is_empty());
    // By its integer id, and from the SDK's default base URL (api.jnkie.com).
    let num = t.app.key_system.num_id.to_string();
    let env = [
        ("KEYWARD_IDENTIFIER", identifier.as_str()),
        ("KEYWARD_BASE_URL", "default"),
    ];
    let run = drive(&base, JUNKIE, "JK-A", &num, &k.key, "check_key", &env).await;
    let line = &lines_of(&run, "check_key")[0];
    assert_eq!(check(line, &k.key, &num)["message"], "KEY_VALID");
    assert_eq!(
        line["http"][0]["url"],
        "https://api.jnkie.com/api/v1/whitelist/verifyOpen"
    );

    // Expired.
    let expired = expired_key(&mut c, &t).await;
    let run = junkie("JK-A", expired.key.clone(), "check_key").await;
    assert_eq!(
        check(&lines_of(&run, "check_key")[0], &expired.key, &name),
        json!({"valid": false, "message": "KEY_EXPIRED", "is_premium": false})
    );

    // Invalidated: banned through the core after a good use.
    let banned = key(&mut c, &t, Default::default()).await;
    let run = junkie("JK-A", banned.key.clone(), "check_key").await;
    assert_eq!(returned(&lines_of(&run, "check_key")[0])[0]["valid"], true);
    ban(&mut c, &t, banned.id).await;
    let http = reqwest::Client::new();
    eventually(PROPAGATION, "ban seen", || {
        let (http, identifier, name, key) = (&http, &identifier, &name, &banned.key);
        async move {
            (junkie_message(http, addr, identifier, name, key).await == "KEY_INVALID").then_some(())
        }
    })
    .await;
    let run = junkie("JK-A", banned.key.clone(), "check_key").await;
    assert_eq!(
        check(&lines_of(&run, "check_key")[0], &banned.key, &name),
        json!({"valid": false, "message": "KEY_INVALID", "is_premium": false})
    );

    // A one-time key, twice.
    let once = key(&mut c, &t, one_time()).await;
    let run = junkie("JK-A", once.key.clone(), "check_key,check_key").await;
    let lines = lines_of(&run, "check_key");
    assert_eq!(check(&lines[0], &once.key, &name)["message"], "KEY_VALID");
    assert_eq!(
        check(&lines[1], &once.key, &name),
        json!({"valid": false, "message": "KEY_ALREADY_USED", "is_premium": false})
    );

    // Wrong HWID: the SDK sets no HWID, but an executor adds its fingerprint header to every
    // request (the stand-in's KEYWARD_FINGERPRINT_HEADER), which the validator reads.
    let locked = key(&mut c, &t, Default::default()).await;
    let fp = [
        ("KEYWARD_IDENTIFIER", identifier.as_str()),
        ("KEYWARD_FINGERPRINT_HEADER", "Syn-Fingerprint"),
    ];
    let run = drive(&base, JUNKIE, "JK-A", &name, &locked.key, "check_key", &fp).await;
    let line = &lines_of(&run, "check_key")[0];
    assert_eq!(check(line, &locked.key, &name)["message"], "KEY_VALID");
    assert_eq!(
        line["http"][0]["executor_headers"],
        json!({"Syn-Fingerprint": "JK-A"})
    );
    assert_eq!(bound_hwids(&c, locked.id).await, ["JK-A"]);
    let run = drive(&base, JUNKIE, "JK-B", &name, &locked.key, "check_key", &fp).await;
    assert_eq!(
        check(&lines_of(&run, "check_key")[0], &locked.key, &name),
        json!({"valid": false, "message": "KEY_HWID_MISMATCH", "is_premium": false})
    );

    // The provider's link, and a provider the account does not have.
    let get_key = [("POST", "/api/v1/whitelist/getKeyOpen")];
    let link_env = |provider: &'static str| {
        [
            ("KEYWARD_IDENTIFIER", identifier.clone()),
            ("KEYWARD_PROVIDER", provider.to_string()),
        ]
    };
    let env = link_env("Linkvertise");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = drive(&base, JUNKIE, "JK-A", &name, "", "get_key_link", &env).await;
    let line = &lines_of(&run, "get_key_link")[0];
    reached(line, &base, &get_key);
    assert_eq!(returned(line)[0], PROVIDER_LINK);
    assert_eq!(returned(line)[1], Value::Null);
    let env = link_env("Nope");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = drive(&base, JUNKIE, "JK-A", &name, "", "get_key_link", &env).await;
    let line = &lines_of(&run, "get_key_link")[0];
    reached(line, &base, &get_key);
    assert_eq!(returned(line), &json!([null, "PROVIDER_NOT_FOUND"]));

    // Keyless: any key is let in once the service's keyless mode is on.
    update(
        &mut c,
        &t,
        apps::AppPatch {
            keyless_mode: Some(true),
            ..Default::default()
        },
    )
    .await;
    eventually(PROPAGATION, "keyless mode seen", || {
        let (http, identifier, name) = (&http, &identifier, &name);
        async move {
            (junkie_message(http, addr, identifier, name, "x").await == "KEYLESS").then_some(())
        }
    })
    .await;
    let run = junkie("JK-A", "anything".into(), "check_key").await;
    let r = check(&lines_of(&run, "check_key")[0], "anything", &name);
    assert_eq!(
        (&r["valid"], &r["message"]),
        (&json!(true), &json!("KEYLESS"))
    );
    v.shutdown().await;

    // RATE_LIMITTED: a validator allowing one request per second per address.
    let tight = validator(&db.url, |cfg| {
        small_pool(cfg);
        cfg.rate_limit_per_sec = 1;
        cfg.rate_limit_burst = 1;
    })
    .await;
    let tight_base = format!("http://{}", tight.addr());
    let env = link_env("Linkvertise");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let steps = ["get_key_link"; 6].join(",");
    let run = drive(&tight_base, JUNKIE, "JK-A", &name, "", &steps, &env).await;
    let lines = lines_of(&run, "get_key_link");
    let results: Vec<Value> = lines
        .iter()
        .map(|l| {
            reached(l, &tight_base, &get_key);
            returned(l).clone()
        })
        .collect();
    assert_eq!(results[0][0], PROVIDER_LINK, "{results:?}");
    let limited = json!([null, "RATE_LIMITTED"]);
    assert!(results.contains(&limited), "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| r == &limited || r[0] == PROVIDER_LINK),
        "{results:?}"
    );
    tight.shutdown().await;
}

#[tokio::test]
async fn panda_auth_py_validates_plain_and_premium_keys() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let sid = service_id("py");
    let t = panda_service(&mut c, &sid, Default::default()).await;
    let v = validator(&db.url, small_pool).await;
    let (addr, base) = (v.addr(), format!("http://{}", v.addr()));
    // Its public-IP lookup is refused, so the HWID it sends is sha256("BAD_REQUEST").
    let path = [
        ("GET", "refused:https://api.ipify.org"),
        ("GET", "/v2_validation"),
    ];
    let py = |key: String, step: &'static str| {
        let (base, sid) = (base.clone(), sid.clone());
        async move {
            let run = run_panda_py_async(&base, &sid, &key, &[step]).await;
            run.assert_done();
            let line = lines_of(&run, step).remove(0);
            let http = reached(&line, &base, &path);
            assert_eq!(
                http[1]["url"],
                format!(
                    "https://pandadevelopment.net/v2_validation?key={key}&service={sid}&hwid={BAD_REQUEST_HWID}"
                )
            );
            assert_eq!(http[1]["status"], 200);
            (returned(&line)[0].clone(), response(&http[1]))
        }
    };

    // Valid; first use binds its HWID.
    let k = key(&mut c, &t, Default::default()).await;
    let (result, _) = py(k.key.clone(), "validate_key").await;
    assert_eq!(result, true);
    assert_eq!(bound_hwids(&c, k.id).await, [BAD_REQUEST_HWID]);

    // Expired.
    let expired = expired_key(&mut c, &t).await;
    let (result, answer) = py(expired.key.clone(), "validate_key").await;
    assert_eq!(result, false);
    assert_eq!(answer["Key_Information"]["Notes"], "Key expired");

    // Wrong HWID: the key is bound to another machine already.
    let elsewhere = key(
        &mut c,
        &t,
        licenses::GenerateSpec {
            hwids: Some(vec!["OTHER-MACHINE".into()]),
            ..Default::default()
        },
    )
    .await;
    let (result, answer) = py(elsewhere.key.clone(), "validate_key").await;
    assert_eq!(result, false);
    assert_eq!(answer["Key_Information"]["Notes"], "HWID mismatch");

    // Invalidated after a good use.
    ban_and_wait(&mut c, &t, &k, addr, &sid, BAD_REQUEST_HWID).await;
    let (result, answer) = py(k.key.clone(), "validate_key").await;
    assert_eq!(result, false);
    assert_eq!(answer["Key_Information"]["Notes"], "Key banned");

    // Premium: validate_premium_key hands back Premium_Mode as is, so a valid non-premium key
    // and a refused key must both say false.
    let gold = key(&mut c, &t, premium()).await;
    assert_eq!(py(gold.key.clone(), "validate_premium_key").await.0, true);
    let plain = key(&mut c, &t, Default::default()).await;
    let (result, answer) = py(plain.key.clone(), "validate_premium_key").await;
    assert_eq!(result, false);
    assert_eq!(answer["V2_Authentication"], "success");
    let (result, answer) = py(expired.key.clone(), "validate_premium_key").await;
    assert_eq!(result, false);
    assert_eq!(answer["Key_Information"]["Premium_Mode"], false);

    // Keyless (the library has no keyless call; Panda's keyless key is the word `keyless`).
    let (result, answer) = py("keyless".into(), "validate_key").await;
    assert_eq!(result, false);
    assert_eq!(answer["Key_Information"]["Notes"], "Keyless mode disabled");
    keyless_on_and_wait(&mut c, &t, Default::default(), addr, &sid).await;
    let (result, answer) = py("keyless".into(), "validate_key").await;
    assert_eq!(result, true);
    assert_eq!(answer["Key_Information"]["NoKey_Requirement"], true);
    assert!(stored_keyless(&c, t.app.id, BAD_REQUEST_HWID)
        .await
        .is_some());
    v.shutdown().await;
}
