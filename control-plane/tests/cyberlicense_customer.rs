//! Customers end to end: the native customer API (`/v1/customers`, customer tokens), the Discord
//! OAuth2 login of both portals against a local stand-in of Discord (token and user endpoints),
//! and CyberLicense's customer API (`/api/customer/licenses…`) over statistics recorded with the
//! validators' own writer (`license_stats::write::record`).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use chrono::{DateTime, Duration, DurationRound, NaiveDate, Utc};
use common::*;
use keyward_shared::store::license_stats::write::{record, UseEvent, UseStatus};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const CLIENT_ID: &str = "discord-client-id";
const CLIENT_SECRET: &str = "discord-client-secret";
const REDIRECT: &str = "https://portal.example/discord/callback";
const AUTHORIZE: &str = "https://discord.example/oauth2/authorize";
const JWT_SECRET: &str = "0123456789abcdef0123456789abcdef-test";

const ADMIN_DISCORD: &str = "111111111111111111";
const CUSTOMER_DISCORD: &str = "222222222222222222";
const UNLINKED_DISCORD: &str = "333333333333333333";

/// A stand-in of Discord's token and user endpoints: codes map to Discord users; a token
/// request must carry the configured client id, secret and redirect URL.
async fn fake_discord() -> SocketAddr {
    let users: Arc<HashMap<&'static str, &'static str>> = Arc::new(HashMap::from([
        ("code-admin", ADMIN_DISCORD),
        ("code-customer", CUSTOMER_DISCORD),
        ("code-unlinked", UNLINKED_DISCORD),
    ]));
    let for_token = users.clone();
    let app = axum::Router::new()
        .route(
            "/api/v10/oauth2/token",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let users = for_token.clone();
                async move {
                    let form: HashMap<String, String> =
                        form_urlencoded::parse(&body).into_owned().collect();
                    let form_ct = headers.get("content-type").and_then(|v| v.to_str().ok())
                        == Some("application/x-www-form-urlencoded");
                    let f = |k: &str| form.get(k).map(String::as_str);
                    let known = f("code").is_some_and(|c| users.contains_key(c));
                    if !form_ct
                        || f("client_id") != Some(CLIENT_ID)
                        || f("client_secret") != Some(CLIENT_SECRET)
                        || f("grant_type") != Some("authorization_code")
                        || f("redirect_uri") != Some(REDIRECT)
                        || !known
                    {
                        return (
                            StatusCode::BAD_REQUEST,
                            axum::Json(json!({"error": "invalid_grant"})),
                        );
                    }
                    let code = f("code").unwrap_or_default();
                    (
                        StatusCode::OK,
                        axum::Json(json!({"access_token": format!("at-{code}"),
                            "token_type": "Bearer", "expires_in": 604800, "scope": "identify"})),
                    )
                }
            }),
        )
        .route(
            "/api/v10/users/@me",
            axum::routing::get(move |headers: HeaderMap| {
                let users = users.clone();
                async move {
                    let user = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer at-"))
                        .and_then(|code| users.get(code));
                    match user {
                        Some(id) => (
                            StatusCode::OK,
                            axum::Json(json!({"id": id, "username": "someone"})),
                        ),
                        None => (
                            StatusCode::UNAUTHORIZED,
                            axum::Json(json!({"message": "401: Unauthorized", "code": 0})),
                        ),
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

async fn start_with_discord() -> Cp {
    let discord = fake_discord().await;
    Cp::start_with(|cfg| {
        cfg.jwt_secret = Some(JWT_SECRET.into());
        // The statistics' prune must not run during the test (its first tick is at start).
        cfg.janitor_ms = 3_600_000;
        cfg.discord.client_id = Some(CLIENT_ID.into());
        cfg.discord.client_secret = Some(CLIENT_SECRET.into());
        cfg.discord.redirect_url = Some(REDIRECT.into());
        cfg.discord.api_base = format!("http://{discord}/api/v10");
        cfg.discord.authorize_url = AUTHORIZE.into();
    })
    .await
}

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Starts a login; returns the state from the authorize URL, after checking the URL.
async fn begin(cp: &Cp, query: &str) -> String {
    let r = no_redirects()
        .get(format!("{}/v1/auth/discord?{query}", cp.base))
        .send()
        .await
        .expect("start");
    assert_eq!(r.status().as_u16(), 302, "{query}");
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_string();
    let (base, q) = location.split_once('?').expect("query");
    assert_eq!(base, AUTHORIZE);
    let q: HashMap<String, String> = form_urlencoded::parse(q.as_bytes()).into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["scope"], "identify");
    assert_eq!(q["redirect_uri"], REDIRECT);
    assert!(!q.contains_key("client_secret"));
    q["state"].clone()
}

async fn finish(cp: &Cp, code: &str, state: &str) -> Resp {
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("code", code)
        .append_pair("state", state)
        .finish();
    cp.call(
        Method::GET,
        &format!("/v1/auth/discord/callback?{q}"),
        None,
        None,
    )
    .await
}

fn hours_from_now(v: &Value) -> f64 {
    let at: DateTime<Utc> = v.as_str().expect("time").parse().expect("rfc3339");
    (at - Utc::now()).num_seconds() as f64 / 3600.0
}

/// The state token's key, as the control-plane derives it from its JWT secret.
fn forged_state(claims: Value) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(JWT_SECRET.as_bytes());
    let key = keyward_shared::secrets::sha256(&format!("keyward:discord-state\n{encoded}"));
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&key),
    )
    .expect("sign")
}

async fn account_id(cp: &Cp, jwt: &str) -> String {
    cp.ok(Method::GET, "/v1/account", jwt, None).await["id"]
        .as_str()
        .expect("id")
        .to_string()
}

#[tokio::test]
async fn discord_login_for_both_portals() {
    let cp = start_with_discord().await;
    let alice = cp.admin("alice").await;
    let alice_account = account_id(&cp, &alice).await;

    // Linking: admins through /v1/account/discord, customers through /v1/customers.
    let r = cp
        .call(
            Method::PUT,
            "/v1/account/discord",
            Some(&alice),
            Some(json!({"discord_id": "not-digits"})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let linked = cp
        .ok(
            Method::PUT,
            "/v1/account/discord",
            &alice,
            Some(json!({"discord_id": ADMIN_DISCORD})),
        )
        .await;
    assert_eq!(linked["discord_id"], ADMIN_DISCORD);
    assert_eq!(
        cp.ok(Method::GET, "/v1/account", &alice, None).await["discord_id"],
        ADMIN_DISCORD
    );
    // One Discord user is one admin.
    let bob = cp.admin("bob").await;
    let r = cp
        .call(
            Method::PUT,
            "/v1/account/discord",
            Some(&bob),
            Some(json!({"discord_id": ADMIN_DISCORD})),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let customer = cp
        .ok(
            Method::POST,
            "/v1/customers",
            &alice,
            Some(json!({"email": "carol@example.com", "discord_id": CUSTOMER_DISCORD})),
        )
        .await;
    let customer_id = customer["id"].as_str().expect("id").to_string();
    // The same Discord user may be a customer of another account too.
    let bob_customer = cp
        .ok(
            Method::POST,
            "/v1/customers",
            &bob,
            Some(json!({"email": "carol@example.com", "discord_id": CUSTOMER_DISCORD})),
        )
        .await;
    let bob_account = account_id(&cp, &bob).await;

    // Admin portal: the JWT works on the admin API (CyberLicense's included).
    let state = begin(&cp, "portal=admin").await;
    let r = finish(&cp, "code-admin", &state).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["portal"], "admin");
    assert_eq!(r.body["account_id"], alice_account.as_str());
    assert!(r.headers.get("set-cookie").is_none());
    let h = hours_from_now(&r.body["expires_at"]);
    assert!((23.9..=24.1).contains(&h), "{h}");
    let admin_jwt = r.body["token"].as_str().expect("token").to_string();
    let products = cp
        .call(Method::GET, "/api/products", Some(&admin_jwt), None)
        .await;
    assert_eq!(products.status, 200, "{}", products.body);
    assert_eq!(products.body["success"], true);
    assert_eq!(
        account_id(&cp, &admin_jwt).await,
        alice_account,
        "the JWT acts for the linked account"
    );
    // The same state again is still a valid state (stateless), but Discord's code is what
    // proves the user: another code for another user does not become Alice.
    let r = finish(&cp, "code-unlinked", &state).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("not linked"),
        "{}",
        r.body
    );

    // Customer portal: a customer token for the named account's linked customer.
    let state = begin(&cp, &format!("portal=customer&account={alice_account}")).await;
    let r = finish(&cp, "code-customer", &state).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["portal"], "customer");
    assert_eq!(r.body["customer_id"], customer_id.as_str());
    let h = hours_from_now(&r.body["expires_at"]);
    assert!((23.9..=24.1).contains(&h), "{h}");
    let customer_token = r.body["token"].as_str().expect("token").to_string();
    let own = cp
        .call(
            Method::GET,
            "/api/customer/licenses",
            Some(&customer_token),
            None,
        )
        .await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(own.body, json!({"success": true, "licenses": []}));
    // A customer token is no admin credential, and an admin's is no customer's.
    for path in ["/api/products", "/v1/apps", "/v1/customers", "/v1/account"] {
        let r = cp
            .call(Method::GET, path, Some(&customer_token), None)
            .await;
        assert_eq!(r.status, 401, "{path}: {}", r.body);
    }
    for token in [&admin_jwt, &alice] {
        let r = cp
            .call(
                Method::GET,
                "/api/customer/licenses",
                Some(token.as_str()),
                None,
            )
            .await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.body, json!({"success": false, "error": "Unauthorized"}));
    }
    // The same Discord user in Bob's portal is Bob's customer.
    let state = begin(&cp, &format!("portal=customer&account={bob_account}")).await;
    let r = finish(&cp, "code-customer", &state).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["customer_id"], bob_customer["id"]);
    assert_eq!(r.body["account_id"], bob_account.as_str());

    // Unlinked Discord users are refused on both portals.
    let state = begin(&cp, "portal=admin").await;
    let r = finish(&cp, "code-unlinked", &state).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let state = begin(&cp, &format!("portal=customer&account={alice_account}")).await;
    let r = finish(&cp, "code-unlinked", &state).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body["message"]
        .as_str()
        .unwrap_or("")
        .contains("not linked"));
    // Alice's admin identity is no customer of hers.
    let r = finish(&cp, "code-admin", &state).await;
    assert_eq!(r.status, 403, "{}", r.body);

    // Discord refusing the code.
    let r = finish(&cp, "code-forged", &state).await;
    assert_eq!(r.status, 401, "{}", r.body);

    // Bad states: missing, tampered, another key's (an admin JWT), expired.
    let r = cp
        .call(
            Method::GET,
            "/v1/auth/discord/callback?code=code-admin",
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let good = begin(&cp, "portal=admin").await;
    let mut tampered = good.clone();
    tampered.push('x');
    let now = Utc::now().timestamp();
    let expired = forged_state(json!({"portal": "admin", "account": null, "nonce": "n",
        "aud": "keyward:discord-state", "iat": now - 3600, "exp": now - 600}));
    let fresh = forged_state(json!({"portal": "admin", "account": null, "nonce": "n",
        "aud": "keyward:discord-state", "iat": now, "exp": now + 600}));
    for bad in [tampered.as_str(), alice.as_str(), expired.as_str(), ""] {
        let r = finish(&cp, "code-admin", bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    // (The forging itself is right: the same claims, unexpired, pass.)
    assert_eq!(finish(&cp, "code-admin", &fresh).await.status, 200);
    // Discord's own refusal (the user cancelled).
    let r = cp
        .call(
            Method::GET,
            &format!("/v1/auth/discord/callback?error=access_denied&state={good}"),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.body);

    // Starting: the portal is required, and the customer portal names an existing account.
    for (q, status) in [
        ("", 400),
        ("portal=root", 400),
        ("portal=customer", 400),
        (
            &format!("portal=customer&account={}", Uuid::new_v4()) as &str,
            404,
        ),
    ] {
        let r = cp
            .call(Method::GET, &format!("/v1/auth/discord?{q}"), None, None)
            .await;
        assert_eq!(r.status, status, "{q}: {}", r.body);
    }

    // A banned customer does not log in.
    cp.ok(
        Method::PATCH,
        &format!("/v1/customers/{customer_id}"),
        &alice,
        Some(json!({"banned": true})),
    )
    .await;
    let state = begin(&cp, &format!("portal=customer&account={alice_account}")).await;
    let r = finish(&cp, "code-customer", &state).await;
    assert_eq!(r.status, 403, "{}", r.body);

    // The logins are audited with their origin.
    let audit = cp
        .ok(
            Method::GET,
            "/v1/audit-log?action=account.login",
            &alice,
            None,
        )
        .await;
    // (Password logins share the action; only the Discord ones are counted here.)
    let items: Vec<&Value> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["details"]["method"] == "discord")
        .collect();
    assert_eq!(items.len(), 3, "{audit}");
    for e in &items {
        assert_eq!(e["ip"], "127.0.0.1", "{e}");
        assert_eq!(e["details"]["method"], "discord", "{e}");
    }
    assert!(items
        .iter()
        .any(|e| e["details"]["portal"] == "customer" && e["target_id"] == customer_id.as_str()));

    // Unlinking ends the admin's Discord login.
    let r = cp
        .call(Method::DELETE, "/v1/account/discord", Some(&alice), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let state = begin(&cp, "portal=admin").await;
    assert_eq!(finish(&cp, "code-admin", &state).await.status, 403);
}

#[tokio::test]
async fn discord_login_is_off_unless_configured() {
    let cp = Cp::start().await;
    for path in [
        "/v1/auth/discord?portal=admin",
        "/v1/auth/discord/callback?code=a&state=b",
    ] {
        let r = cp.call(Method::GET, path, None, None).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert!(
            r.body["message"]
                .as_str()
                .unwrap_or("")
                .contains("not configured"),
            "{}",
            r.body
        );
    }
}

#[tokio::test]
async fn native_customers_and_their_tokens() {
    let cp = Cp::start().await;
    let alice = cp.admin("alice").await;
    let bob = cp.admin("bob").await;
    let made = cp
        .call(
            Method::POST,
            "/v1/customers",
            Some(&alice),
            Some(
                json!({"email": "dave.smith@example.com", "first_name": "Dave",
                "last_name": "Smith", "password": "a long password", "discord_id": "4444",
                "metadata": {"tier": "gold"}}),
            ),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let dave = made.body["id"].as_str().expect("id").to_string();
    assert_eq!(made.body["email"], "dave.smith@example.com");
    assert_eq!(made.body["first_name"], "Dave");
    assert_eq!(made.body["discord_id"], "4444");
    assert_eq!(made.body["metadata"], json!({"tier": "gold"}));
    assert_eq!(made.body["banned"], false);
    assert!(made.body.get("password").is_none() && made.body.get("password_hash").is_none());
    for (body, status) in [
        (json!({"email": "DAVE.smith@example.com"}), 409),
        (
            json!({"email": "other@example.com", "discord_id": "4444"}),
            409,
        ),
        (
            json!({"email": "other@example.com", "discord_id": "44a"}),
            400,
        ),
        (
            json!({"email": "other@example.com", "discord_id": "1".repeat(26)}),
            400,
        ),
        (
            json!({"email": "other@example.com", "password": "short"}),
            400,
        ),
        (json!({"email": "other@example.com", "nickname": "x"}), 400),
        (
            json!({"email": format!("{}@example.com", "a".repeat(200))}),
            400,
        ),
        (json!({"first_name": "No e-mail"}), 400),
    ] {
        let r = cp
            .call(
                Method::POST,
                "/v1/customers",
                Some(&alice),
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
    }
    let r = cp
        .call(
            Method::POST,
            "/v1/customers",
            Some(&alice),
            Some(json!({"email": "x@example.com", "discord_id": "4444"})),
        )
        .await;
    assert!(r.body["message"].as_str().unwrap_or("").contains("Discord"));
    for (email, first) in [("erin@example.com", "Erin"), ("frank@example.com", "Frank")] {
        cp.ok(
            Method::POST,
            "/v1/customers",
            &alice,
            Some(json!({"email": email, "first_name": first})),
        )
        .await;
    }
    // Bob's customers are his own (the same e-mail is fine there).
    cp.ok(
        Method::POST,
        "/v1/customers",
        &bob,
        Some(json!({"email": "dave.smith@example.com", "discord_id": "4444"})),
    )
    .await;

    // Search and keyset pages, newest first.
    let all = cp.ok(Method::GET, "/v1/customers", &alice, None).await;
    let emails: Vec<&str> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["email"].as_str().expect("email"))
        .collect();
    assert_eq!(
        emails,
        [
            "frank@example.com",
            "erin@example.com",
            "dave.smith@example.com"
        ]
    );
    assert!(all["next_cursor"].is_null());
    let found = cp
        .ok(Method::GET, "/v1/customers?search=SMITH", &alice, None)
        .await;
    assert_eq!(found["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(found["items"][0]["id"], dave.as_str());
    let found = cp
        .ok(Method::GET, "/v1/customers?search=erin", &alice, None)
        .await;
    assert_eq!(found["items"][0]["first_name"], "Erin");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/customers?limit=2&cursor={c}"),
            None => "/v1/customers?limit=2".into(),
        };
        let page = cp.ok(Method::GET, &path, &alice, None).await;
        for c in page["items"].as_array().expect("items") {
            seen.push(c["email"].as_str().expect("email").to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, emails);
    let r = cp
        .call(
            Method::GET,
            "/v1/customers?cursor=garbage",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);

    // Read, change, unlink; another tenant sees nothing.
    let got = cp
        .ok(Method::GET, &format!("/v1/customers/{dave}"), &alice, None)
        .await;
    assert_eq!(got["last_name"], "Smith");
    let changed = cp
        .ok(
            Method::PATCH,
            &format!("/v1/customers/{dave}"),
            &alice,
            Some(json!({"first_name": "David", "discord_id": null})),
        )
        .await;
    assert_eq!(changed["first_name"], "David");
    assert!(changed["discord_id"].is_null());
    assert_eq!(changed["last_name"], "Smith");
    let audit = cp
        .ok(
            Method::GET,
            "/v1/audit-log?action=user.update",
            &alice,
            None,
        )
        .await;
    assert_eq!(audit["items"][0]["details"]["before"]["first_name"], "Dave");
    assert_eq!(audit["items"][0]["details"]["after"]["first_name"], "David");
    assert_eq!(audit["items"][0]["details"]["before"]["discord_id"], "4444");
    cp.all_not_found(
        &bob,
        vec![
            (Method::GET, format!("/v1/customers/{dave}"), None),
            (
                Method::PATCH,
                format!("/v1/customers/{dave}"),
                Some(json!({"first_name": "Mallory"})),
            ),
            (Method::POST, format!("/v1/customers/{dave}/tokens"), None),
            (Method::DELETE, format!("/v1/customers/{dave}"), None),
        ],
    )
    .await;

    // Customer tokens: expiring (24 h by default), shown once, customer-only.
    let r = cp
        .call(
            Method::POST,
            &format!("/v1/customers/{dave}/tokens"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["customer_id"], dave.as_str());
    let h = hours_from_now(&r.body["expires_at"]);
    assert!((23.9..=24.1).contains(&h), "{h}");
    let token = r.body["token"].as_str().expect("token").to_string();
    let r = cp
        .call(Method::GET, "/api/customer/licenses", Some(&token), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = cp
        .call(Method::GET, "/v1/customers", Some(&token), None)
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    let short = cp
        .ok(
            Method::POST,
            &format!("/v1/customers/{dave}/tokens"),
            &alice,
            Some(json!({"expires_in_secs": 120, "name": "script"})),
        )
        .await;
    let h = hours_from_now(&short["expires_at"]);
    assert!(h > 0.0 && h < 0.05, "{h}");
    for body in [
        json!({"expires_in_secs": 0}),
        json!({"expires_in_secs": -5}),
        json!({"expires_in_secs": i64::MAX}),
        json!({"expires_in_secs": "soon"}),
        json!({"ttl": 5}),
    ] {
        let r = cp
            .call(
                Method::POST,
                &format!("/v1/customers/{dave}/tokens"),
                Some(&alice),
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
    }
    // An expired token is refused.
    let expired = cp
        .ok(
            Method::POST,
            &format!("/v1/customers/{dave}/tokens"),
            &alice,
            None,
        )
        .await;
    let db = cp.db.client().await;
    db.execute(
        "UPDATE api_keys SET expires_at = now() - interval '1 minute' WHERE id = $1",
        &[&Uuid::parse_str(expired["id"].as_str().expect("id")).expect("uuid")],
    )
    .await
    .expect("expire");
    let r = cp
        .call(
            Method::GET,
            "/api/customer/licenses",
            expired["token"].as_str(),
            None,
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    // A banned customer gets no new token; a deleted one's tokens stop working.
    cp.ok(
        Method::PATCH,
        &format!("/v1/customers/{dave}"),
        &alice,
        Some(json!({"banned": true})),
    )
    .await;
    let r = cp
        .call(
            Method::POST,
            &format!("/v1/customers/{dave}/tokens"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = cp
        .call(
            Method::DELETE,
            &format!("/v1/customers/{dave}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = cp
        .call(
            Method::GET,
            &format!("/v1/customers/{dave}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.body["message"], "customer not found");
    let r = cp
        .call(Method::GET, "/api/customer/licenses", Some(&token), None)
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
}

/// A license of `app` for `owner` (none: unowned), with extra generate fields.
async fn license(cp: &Cp, jwt: &str, app: &str, owner: Option<&str>, spec: Value) -> Value {
    let mut spec = spec;
    spec["count"] = json!(1);
    if let Some(o) = owner {
        spec["owner_id"] = json!(o);
    }
    cp.licenses(jwt, app, spec).await.remove(0)
}

fn id(v: &Value) -> Uuid {
    Uuid::parse_str(v["id"].as_str().expect("id")).expect("uuid")
}

fn at(day: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
    day.and_hms_opt(h, m, 0).expect("time").and_utc()
}

fn event(license: Uuid, ip: &str, hwid: &str, status: UseStatus, t: DateTime<Utc>) -> UseEvent {
    UseEvent {
        license_id: license,
        ip: Some(ip.into()),
        hwid: Some(hwid.into()),
        status,
        at: t,
    }
}

fn ms(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[tokio::test]
async fn customer_api_shapes_and_values() {
    let cp = Cp::start_with(|cfg| cfg.janitor_ms = 3_600_000).await;
    let alice = cp.admin("alice").await;
    let bob = cp.admin("bob").await;
    let app = cp.app(&alice, "Widget").await;
    cp.ok(
        Method::PATCH,
        &format!("/v1/apps/{app}"),
        &alice,
        Some(json!({"description": "The widget tool"})),
    )
    .await;
    let carol = cp
        .ok(
            Method::POST,
            "/v1/customers",
            &alice,
            Some(json!({"email": "carol@example.com"})),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let other = cp
        .ok(
            Method::POST,
            "/v1/customers",
            &alice,
            Some(json!({"email": "oscar@example.com"})),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let expires = (Utc::now() + Duration::days(10))
        .duration_trunc(Duration::seconds(1))
        .expect("trunc");
    let fixed = license(
        &cp,
        &alice,
        &app,
        Some(&carol),
        json!({"expires_at": expires, "hwid_limit": 2, "ip_limit": 3, "hwids": ["HWID-A"]}),
    )
    .await;
    let trial = license(&cp, &alice, &app, Some(&carol), json!({"duration_days": 5})).await;
    let metered = license(&cp, &alice, &app, Some(&carol), json!({"max_uses": 10})).await;
    let banned = license(&cp, &alice, &app, Some(&carol), json!({})).await;
    let revoked = license(&cp, &alice, &app, Some(&carol), json!({})).await;
    let oscars = license(&cp, &alice, &app, Some(&other), json!({})).await;
    let unowned = license(&cp, &alice, &app, None, json!({})).await;
    let bob_app = cp.app(&bob, "Gadget").await;
    let bobs = license(&cp, &bob, &bob_app, None, json!({})).await;
    cp.ok(
        Method::POST,
        &format!("/v1/licenses/{}/ban", id(&banned)),
        &alice,
        Some(json!({"reason": "chargeback"})),
    )
    .await;
    // What the native API cannot set yet here: types, a past expiry, a revocation, uses.
    let db = cp.db.client().await;
    for (l, sql) in [
        (&trial, "UPDATE licenses SET license_type = 'trial', expires_at = now() - interval '1 day' WHERE id = $1"),
        (&metered, "UPDATE licenses SET license_type = 'consumption', uses = 3 WHERE id = $1"),
        (&banned, "UPDATE licenses SET license_type = 'enterprise' WHERE id = $1"),
        (&revoked, "UPDATE licenses SET status = 'revoked' WHERE id = $1"),
    ] {
        db.execute(sql, &[&id(l)]).await.expect("update");
    }

    // Statistics as the validators write them: three recent days, and one past the window of
    // distinct values.
    let today = Utc::now().date_naive();
    let (day_a, day_b, day_c) = (
        today - Duration::days(3),
        today - Duration::days(2),
        today - Duration::days(1),
    );
    let old_day = today - Duration::days(40);
    let fid = id(&fixed);
    let mut batches: Vec<Vec<UseEvent>> = Vec::new();
    batches.push(vec![event(
        fid,
        "10.9.9.9",
        "HWID-OLD",
        UseStatus::Success,
        at(old_day, 12, 0),
    )]);
    batches.push(
        (0..60)
            .map(|i| {
                let ip = format!("10.0.0.{}", i % 3);
                event(fid, &ip, "HWID-A", UseStatus::Success, at(day_a, 1, i))
            })
            .collect(),
    );
    batches.push(
        (0..50)
            .map(|i| match i {
                0..40 => event(
                    fid,
                    "10.0.0.1",
                    "HWID-A",
                    UseStatus::Success,
                    at(day_b, 10, i),
                ),
                40..46 => event(
                    fid,
                    "10.0.0.9",
                    "HWID-X",
                    UseStatus::Blocked,
                    at(day_b, 10, i),
                ),
                _ => event(
                    fid,
                    "10.0.0.1",
                    "HWID-A",
                    UseStatus::Invalid,
                    at(day_b, 10, i),
                ),
            })
            .collect(),
    );
    batches.push(
        (0..40)
            .map(|i| {
                event(
                    fid,
                    "10.0.0.2",
                    "HWID-B",
                    UseStatus::Success,
                    at(day_c, 0, i),
                )
            })
            .collect(),
    );
    batches.push(
        (0..5)
            .map(|i| {
                event(
                    id(&metered),
                    "10.1.1.1",
                    "M",
                    UseStatus::Success,
                    at(day_c, 5, i),
                )
            })
            .collect(),
    );
    // Another customer's license: counted for nobody here.
    batches.push(vec![event(
        id(&oscars),
        "10.2.2.2",
        "O",
        UseStatus::Success,
        at(day_c, 6, 0),
    )]);
    for b in &batches {
        record(&db, b).await.expect("record");
    }
    let token = cp
        .ok(
            Method::POST,
            &format!("/v1/customers/{carol}/tokens"),
            &alice,
            None,
        )
        .await["token"]
        .as_str()
        .expect("token")
        .to_string();
    let get = |path: String| {
        let cp = &cp;
        let token = token.clone();
        async move { cp.call(Method::GET, &path, Some(&token), None).await }
    };

    // The list: exactly CustomerLicense's keys, newest first.
    let r = get("/api/customer/licenses".into()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["success"], true);
    let list = r.body["licenses"].as_array().expect("licenses");
    let ids: Vec<&str> = list
        .iter()
        .map(|l| l["_id"].as_str().expect("_id"))
        .collect();
    let want: Vec<String> = [&revoked, &banned, &metered, &trial, &fixed]
        .iter()
        .map(|l| id(l).to_string())
        .collect();
    assert_eq!(ids, want);
    let first = list.last().expect("fixed");
    assert_eq!(
        first,
        &json!({
            "_id": fid.to_string(),
            "key": fixed["key"],
            "product": {"_id": app, "name": "Widget"},
            "active": true,
            "expiresAt": ms(expires),
            "licenseType": "fixed",
            "ipLimit": 3,
            "hwidLimit": 2,
            "usedIps": [],
            "usedHwids": ["HWID-A"],
        })
    );
    let by_id = |l: &Value| {
        list.iter()
            .find(|x| x["_id"] == id(l).to_string())
            .expect("listed")
            .clone()
    };
    assert_eq!(by_id(&banned)["active"], false);
    assert_eq!(by_id(&banned)["licenseType"], "enterprise");
    assert_eq!(by_id(&revoked)["active"], false);
    assert_eq!(
        by_id(&trial)["active"],
        true,
        "expiry is separate from active"
    );
    assert_eq!(by_id(&trial)["licenseType"], "trial");
    assert!(by_id(&metered)["expiresAt"].is_null());

    // Stats: recorded events of Carol's licenses only; every type present.
    let r = get("/api/customer/licenses/stats".into()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"success": true, "stats": {
            "totalLicenses": 5,
            "activeLicenses": 2,
            "expiredLicenses": 1,
            "suspendedLicenses": 1,
            "totalRequests": 156,
            "successfulRequests": 146,
            "byType": {"fixed": 2, "trial": 1, "consumption": 1, "enterprise": 1},
        }})
    );

    // Detail with usageStats: distinct values within the 30-day window only.
    let r = get(format!("/api/customer/licenses/{fid}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let l = &r.body["license"];
    assert_eq!(
        l["product"],
        json!({"_id": app, "name": "Widget", "description": "The widget tool"})
    );
    assert_eq!(
        l["usageStats"],
        json!({
            "totalRequests": 151,
            "successfulRequests": 141,
            "blockedRequests": 6,
            "lastUsed": ms(at(day_c, 0, 39)),
            "uniqueIPs": 4,
            "uniqueHWIDs": 3,
        })
    );
    for k in [
        "key",
        "active",
        "expiresAt",
        "licenseType",
        "ipLimit",
        "hwidLimit",
        "usedIps",
        "usedHwids",
    ] {
        assert_eq!(l[k], first[k], "{k}");
    }
    let quiet = get(format!("/api/customer/licenses/{}", id(&trial))).await;
    assert_eq!(
        quiet.body["license"]["usageStats"],
        json!({"totalRequests": 0, "successfulRequests": 0, "blockedRequests": 0,
               "lastUsed": null, "uniqueIPs": 0, "uniqueHWIDs": 0})
    );

    // Usage over everything stored: counts, daily by UTC day, the newest 100 requests.
    let r = get(format!("/api/customer/licenses/{fid}/usage")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let u = &r.body["usage"];
    assert_eq!(u["total"], 151);
    assert_eq!(
        u["byStatus"],
        json!({"success": 141, "blocked": 6, "invalid": 4})
    );
    let day = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    assert_eq!(
        u["dailyStats"],
        json!({
            day(old_day): {"success": 1, "blocked": 0, "invalid": 0},
            day(day_a): {"success": 60, "blocked": 0, "invalid": 0},
            day(day_b): {"success": 40, "blocked": 6, "invalid": 4},
            day(day_c): {"success": 40, "blocked": 0, "invalid": 0},
        })
    );
    let requests = u["requests"].as_array().expect("requests");
    assert_eq!(requests.len(), 100);
    assert_eq!(
        requests[0].as_object().map(|o| {
            let mut k: Vec<&str> = o.keys().map(String::as_str).collect();
            k.sort_unstable();
            k
        }),
        Some(vec!["_id", "createdAt", "hwid", "ipAddress", "status"])
    );
    assert_eq!(requests[0]["createdAt"], ms(at(day_c, 0, 39)));
    assert_eq!(requests[0]["ipAddress"], "10.0.0.2");
    assert_eq!(requests[0]["hwid"], "HWID-B");
    assert_eq!(requests[0]["status"], "success");
    // 40 of day C, 50 of day B, then the newest 10 of day A.
    assert_eq!(requests[99]["createdAt"], ms(at(day_a, 1, 50)));
    let times: Vec<&str> = requests
        .iter()
        .map(|r| r["createdAt"].as_str().expect("createdAt"))
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let blocked = requests
        .iter()
        .find(|r| r["status"] == "blocked")
        .expect("a blocked request");
    assert_eq!(blocked["ipAddress"], "10.0.0.9");
    assert_eq!(blocked["hwid"], "HWID-X");

    // A window of whole days (bare dates: the end date is included whole).
    let r = get(format!(
        "/api/customer/licenses/{fid}/usage?startDate={}&endDate={}",
        day(day_b),
        day(day_b)
    ))
    .await;
    let u = &r.body["usage"];
    assert_eq!(u["total"], 50, "{}", r.body);
    assert_eq!(
        u["byStatus"],
        json!({"success": 40, "blocked": 6, "invalid": 4})
    );
    assert_eq!(
        u["dailyStats"],
        json!({day(day_b): {"success": 40, "blocked": 6, "invalid": 4}})
    );
    assert_eq!(u["requests"].as_array().map(Vec::len), Some(50));
    assert_eq!(u["requests"][0]["createdAt"], ms(at(day_b, 10, 49)));
    assert_eq!(u["requests"][0]["status"], "invalid");
    // Instants: counts by the days they touch, requests exactly (the end included).
    let r = get(format!(
        "/api/customer/licenses/{fid}/usage?startDate={}&endDate={}",
        ms(at(day_b, 12, 0)),
        ms(at(day_c, 0, 30))
    ))
    .await;
    let u = &r.body["usage"];
    assert_eq!(u["total"], 90, "{}", r.body);
    assert_eq!(u["dailyStats"].as_object().map(|o| o.len()), Some(2));
    let requests = u["requests"].as_array().expect("requests");
    assert_eq!(requests.len(), 31);
    assert_eq!(requests[0]["createdAt"], ms(at(day_c, 0, 30)));
    assert_eq!(requests[30]["createdAt"], ms(at(day_c, 0, 0)));
    // Only a start; an empty window.
    let r = get(format!(
        "/api/customer/licenses/{fid}/usage?startDate={}",
        day(day_c)
    ))
    .await;
    assert_eq!(r.body["usage"]["total"], 40, "{}", r.body);
    let r = get(format!(
        "/api/customer/licenses/{fid}/usage?startDate={}&endDate={}",
        day(today + Duration::days(1)),
        day(today + Duration::days(2))
    ))
    .await;
    assert_eq!(
        r.body["usage"],
        json!({"total": 0, "byStatus": {"success": 0, "blocked": 0, "invalid": 0},
               "dailyStats": {}, "requests": []})
    );
    for q in [
        "startDate=yesterday",
        "endDate=2024-13-45",
        "startDate=1700000000",
    ] {
        let r = get(format!("/api/customer/licenses/{fid}/usage?{q}")).await;
        assert_eq!(r.status, 400, "{q}: {}", r.body);
        assert_eq!(r.body["success"], false);
        assert!(r.body["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("Invalid query parameter: "));
    }

    // Credits: consumption licenses only.
    let r = get(format!("/api/customer/licenses/{}/credits", id(&metered))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"success": true, "credits": {"total": 10, "used": 3, "remaining": 7}})
    );
    let r = get(format!("/api/customer/licenses/{fid}/credits")).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"success": false, "error": "License is not a consumption-based license"})
    );

    // Not Carol's (another customer's, unowned, another tenant's), unknown or malformed: 404.
    let elsewhere = [
        id(&oscars).to_string(),
        id(&unowned).to_string(),
        id(&bobs).to_string(),
        Uuid::new_v4().to_string(),
        "not-a-uuid".into(),
        "0".into(),
    ];
    for lid in &elsewhere {
        for suffix in ["", "/usage", "/credits"] {
            let r = get(format!("/api/customer/licenses/{lid}{suffix}")).await;
            assert_eq!(r.status, 404, "{lid}{suffix}: {}", r.body);
            assert_eq!(
                r.body,
                json!({"success": false, "error": "License not found"})
            );
        }
    }

    // Without a token, with a bad one, with admin credentials: 401 on every route.
    let key = cp
        .ok(
            Method::POST,
            "/v1/api-keys",
            &alice,
            Some(json!({"name": "k", "scopes": ["*"]})),
        )
        .await["key"]
        .as_str()
        .expect("key")
        .to_string();
    let paths = [
        "/api/customer/licenses".to_string(),
        "/api/customer/licenses/stats".into(),
        format!("/api/customer/licenses/{fid}"),
        format!("/api/customer/licenses/{fid}/usage"),
        format!("/api/customer/licenses/{}/credits", id(&metered)),
    ];
    for path in &paths {
        for bad in [
            None,
            Some("user-deadbeefv3"),
            Some(alice.as_str()),
            Some(key.as_str()),
        ] {
            let r = cp.call(Method::GET, path, bad, None).await;
            assert_eq!(r.status, 401, "{path} {bad:?}: {}", r.body);
            assert_eq!(r.body, json!({"success": false, "error": "Unauthorized"}));
        }
        // A cookie session is no credential.
        let r = cp
            .http
            .get(format!("{}{path}", cp.base))
            .header("cookie", "connect.sid=s%3Aabc")
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 401, "{path}");
    }
    // Oscar sees his own license and none of Carol's.
    let oscar_token = cp
        .ok(
            Method::POST,
            &format!("/v1/customers/{other}/tokens"),
            &alice,
            None,
        )
        .await["token"]
        .as_str()
        .expect("token")
        .to_string();
    let r = cp
        .call(
            Method::GET,
            "/api/customer/licenses",
            Some(&oscar_token),
            None,
        )
        .await;
    assert_eq!(r.body["licenses"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.body["licenses"][0]["_id"], id(&oscars).to_string());
    let r = cp
        .call(
            Method::GET,
            &format!("/api/customer/licenses/{fid}"),
            Some(&oscar_token),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = cp
        .call(
            Method::GET,
            "/api/customer/licenses/stats",
            Some(&oscar_token),
            None,
        )
        .await;
    assert_eq!(r.body["stats"]["totalRequests"], 1, "{}", r.body);
    assert_eq!(
        r.body["stats"]["byType"],
        json!({"fixed": 1, "trial": 0, "consumption": 0, "enterprise": 0})
    );
}

#[tokio::test]
async fn distinct_values_follow_the_retention() {
    let cp = Cp::start_with(|cfg| {
        cfg.janitor_ms = 3_600_000;
        cfg.usage_retention_days = 50;
    })
    .await;
    let alice = cp.admin("alice").await;
    let app = cp.app(&alice, "Widget").await;
    let carol = cp
        .ok(
            Method::POST,
            "/v1/customers",
            &alice,
            Some(json!({"email": "carol@example.com"})),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let lic = id(&license(&cp, &alice, &app, Some(&carol), json!({})).await);
    let now = Utc::now();
    let db = cp.db.client().await;
    let events = [
        event(
            lic,
            "10.0.0.1",
            "H1",
            UseStatus::Success,
            now - Duration::days(60),
        ),
        event(
            lic,
            "10.0.0.2",
            "H2",
            UseStatus::Success,
            now - Duration::days(40),
        ),
        event(
            lic,
            "10.0.0.3",
            "H2",
            UseStatus::Success,
            now - Duration::hours(1),
        ),
    ];
    record(&db, &events).await.expect("record");
    let token = cp
        .ok(
            Method::POST,
            &format!("/v1/customers/{carol}/tokens"),
            &alice,
            None,
        )
        .await["token"]
        .as_str()
        .expect("token")
        .to_string();
    let r = cp
        .call(
            Method::GET,
            &format!("/api/customer/licenses/{lic}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let stats = &r.body["license"]["usageStats"];
    assert_eq!(stats["totalRequests"], 3, "{stats}");
    assert_eq!(stats["uniqueIPs"], 2, "{stats}");
    assert_eq!(stats["uniqueHWIDs"], 1, "{stats}");
}
