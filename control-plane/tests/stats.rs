//! `/v1/stats`: the Overview's counts and per-minute validation series over real HTTP against a
//! real PostgreSQL: exact counts for a tenant and for one of its apps, nothing of another
//! tenant's, and bad queries answered 400.

mod common;

use chrono::{Duration, Utc};
use common::Cp;
use keyward_shared::store::validation_buckets::{self, minute_of, Count};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

fn id(v: &Value) -> Uuid {
    v["id"].as_str().expect("id").parse().expect("uuid")
}

/// Licenses of `app` in every state the Overview counts, its machines, end users, sessions and
/// validations; `second` gets a little of each. Returns nothing: the test knows the numbers.
async fn populate(cp: &Cp, t: &str, account: Uuid, app: Uuid, second: Uuid) {
    let ls = cp.licenses(t, &app.to_string(), json!({"count": 8})).await;
    let soon = (Utc::now() + Duration::days(3)).to_rfc3339();
    cp.licenses(t, &app.to_string(), json!({"count": 1, "expires_at": soon}))
        .await;
    let others = cp
        .licenses(t, &second.to_string(), json!({"count": 2}))
        .await;
    let l = |i: usize| id(&ls[i]);
    cp.ok(
        Method::POST,
        &format!("/v1/licenses/{}/ban", l(0)),
        t,
        Some(json!({"reason": "chargeback"})),
    )
    .await;
    cp.ok(
        Method::POST,
        &format!("/v1/licenses/{}/revoke", l(1)),
        t,
        None,
    )
    .await;
    cp.ok(
        Method::POST,
        &format!("/v1/licenses/{}/disable", l(2)),
        t,
        None,
    )
    .await;
    for (license, fingerprint) in [(l(4), "m-1"), (l(5), "m-2"), (id(&others[0]), "m-3")] {
        cp.ok(
            Method::POST,
            &format!("/v1/licenses/{license}/machines"),
            t,
            Some(json!({"fingerprint": fingerprint})),
        )
        .await;
    }

    let c = cp.db.client().await;
    // What only validators and clients do: an expiry passed, first uses, users and sessions.
    c.execute(
        "UPDATE licenses SET expires_at = now() - interval '1 day' WHERE id = $1",
        &[&l(3)],
    )
    .await
    .unwrap();
    c.execute(
        "UPDATE licenses SET used_at = now() WHERE id = ANY($1)",
        &[&vec![l(4), l(5)]],
    )
    .await
    .unwrap();
    for (n, user_app) in [(1, Some(app)), (2, Some(app)), (3, Some(second)), (4, None)] {
        c.execute(
            "INSERT INTO app_users (id, account_id, app_id, username, email, password_hash)
             VALUES ($1, $2, $3, $4, $5, 'x')",
            &[
                &Uuid::new_v4(),
                &account,
                &user_app,
                &format!("user{n}"),
                &format!("user{n}@example.com"),
            ],
        )
        .await
        .unwrap();
    }
    for (n, (session_app, validated, expires)) in [
        (app, true, "1 hour"),
        (app, true, "1 hour"),
        (app, true, "-1 hour"),
        (app, false, "1 hour"),
        (second, true, "1 hour"),
    ]
    .into_iter()
    .enumerate()
    {
        c.execute(
            "INSERT INTO sessions (id, account_id, app_id, validated, expires_at)
             VALUES ($1, $2, $3, $4, now() + $5::text::interval)",
            &[
                &format!("session{n}-{}", Uuid::new_v4().simple()),
                &account,
                &session_app,
                &validated,
                &expires,
            ],
        )
        .await
        .unwrap();
    }

    let now = Utc::now();
    let bucket = |app_id: Uuid, ago: Duration, outcome: &str, n: i64| Count {
        account_id: account,
        app_id,
        minute: minute_of(now - ago),
        outcome: outcome.into(),
        n,
    };
    let counts = [
        bucket(app, Duration::zero(), "valid", 5),
        bucket(app, Duration::minutes(30), "banned", 2),
        bucket(app, Duration::hours(2), "valid", 7),
        bucket(app, Duration::hours(23), "expired", 1),
        bucket(app, Duration::hours(25), "valid", 100),
        bucket(second, Duration::zero(), "valid", 3),
    ];
    validation_buckets::record(&c, &counts).await.unwrap();
}

#[tokio::test]
async fn overview_and_series_count_the_tenant_and_each_app_exactly() {
    let cp = Cp::start().await;
    let t = cp.admin("stats-admin").await;
    let account: Uuid = cp.ok(Method::GET, "/v1/account", &t, None).await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let app: Uuid = cp.app(&t, "main").await.parse().unwrap();
    let second: Uuid = cp.app(&t, "second").await.parse().unwrap();
    populate(&cp, &t, account, app, second).await;

    let all = cp.ok(Method::GET, "/v1/stats/overview", &t, None).await;
    assert_eq!(
        all,
        json!({
            "apps": 2,
            "licenses": {"total": 11, "unused": 9, "used": 2, "active": 7, "banned": 1,
                         "expired": 1, "revoked": 1, "disabled": 1, "expiring_soon": 1},
            "end_users": 3,
            "online_sessions": 3,
            "machines": 3,
            "validations": {"last_hour": 10, "last_24h": 18},
        })
    );
    let one = cp
        .ok(
            Method::GET,
            &format!("/v1/stats/overview?app_id={app}"),
            &t,
            None,
        )
        .await;
    assert_eq!(
        one,
        json!({
            "apps": 1,
            "licenses": {"total": 9, "unused": 7, "used": 2, "active": 5, "banned": 1,
                         "expired": 1, "revoked": 1, "disabled": 1, "expiring_soon": 1},
            "end_users": 2,
            "online_sessions": 2,
            "machines": 2,
            "validations": {"last_hour": 7, "last_24h": 15},
        })
    );

    // The default window is three hours.
    let s = cp.ok(Method::GET, "/v1/stats/validations", &t, None).await;
    assert_eq!(s["step_secs"], 60);
    let minutes = s["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 180);
    assert_eq!(s["from"], minutes[0]);
    assert_eq!(s["totals"], json!({"valid": 15, "banned": 2}));
    for (outcome, total) in [("valid", 15), ("banned", 2)] {
        let series = s["series"][outcome].as_array().unwrap();
        assert_eq!(series.len(), 180, "{outcome} zero-filled");
        let sum: i64 = series.iter().map(|v| v.as_i64().unwrap()).sum();
        assert_eq!(sum, total, "{outcome}");
    }
    let hour = cp
        .ok(
            Method::GET,
            &format!("/v1/stats/validations?minutes=60&app_id={second}"),
            &t,
            None,
        )
        .await;
    assert_eq!(hour["totals"], json!({"valid": 3}));
    assert_eq!(hour["minutes"].as_array().unwrap().len(), 60);
    let day = cp
        .ok(
            Method::GET,
            "/v1/stats/validations?minutes=100000",
            &t,
            None,
        )
        .await;
    assert_eq!(day["minutes"].as_array().unwrap().len(), 1440, "clamped");
    assert_eq!(
        day["totals"],
        json!({"valid": 15, "banned": 2, "expired": 1})
    );

    // An API key needs licenses:read.
    let key = |scopes: Value| {
        let (cp, t) = (&cp, &t);
        async move {
            cp.ok(
                Method::POST,
                "/v1/api-keys",
                t,
                Some(json!({"name": "stats", "scopes": scopes})),
            )
            .await["key"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let reader = key(json!(["licenses:read"])).await;
    assert_eq!(
        cp.ok(Method::GET, "/v1/stats/overview", &reader, None)
            .await["apps"],
        2
    );
    let apps_only = key(json!(["apps:read"])).await;
    for path in ["/v1/stats/overview", "/v1/stats/validations"] {
        let r = cp.call(Method::GET, path, Some(&apps_only), None).await;
        assert_eq!(r.status, 403, "{path}: {}", r.body);
    }
}

#[tokio::test]
async fn another_tenant_sees_none_of_it_and_bad_queries_are_400() {
    let cp = Cp::start().await;
    let t = cp.admin("stats-owner").await;
    let account: Uuid = cp.ok(Method::GET, "/v1/account", &t, None).await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let app: Uuid = cp.app(&t, "main").await.parse().unwrap();
    let second: Uuid = cp.app(&t, "second").await.parse().unwrap();
    populate(&cp, &t, account, app, second).await;

    let stranger = cp.admin("stats-stranger").await;
    let theirs = cp
        .ok(Method::GET, "/v1/stats/overview", &stranger, None)
        .await;
    assert_eq!(
        theirs,
        json!({
            "apps": 0,
            "licenses": {"total": 0, "unused": 0, "used": 0, "active": 0, "banned": 0,
                         "expired": 0, "revoked": 0, "disabled": 0, "expiring_soon": 0},
            "end_users": 0,
            "online_sessions": 0,
            "machines": 0,
            "validations": {"last_hour": 0, "last_24h": 0},
        })
    );
    let series = cp
        .ok(Method::GET, "/v1/stats/validations", &stranger, None)
        .await;
    assert_eq!(series["totals"], json!({}));
    assert_eq!(series["series"], json!({}));
    cp.all_not_found(
        &stranger,
        vec![
            (
                Method::GET,
                format!("/v1/stats/overview?app_id={app}"),
                None,
            ),
            (
                Method::GET,
                format!("/v1/stats/validations?app_id={app}"),
                None,
            ),
        ],
    )
    .await;

    for (path, says) in [
        ("/v1/stats/validations?minutes=abc", "minutes"),
        ("/v1/stats/validations?minutes=1.5", "minutes"),
        (
            "/v1/stats/validations?minutes=99999999999999999999",
            "minutes",
        ),
        ("/v1/stats/validations?app_id=nope", "app_id"),
        ("/v1/stats/overview?app_id=nope", "app_id"),
        ("/v1/stats/overview?color=blue", "color"),
    ] {
        let r = cp.call(Method::GET, path, Some(&t), None).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        let message = r.body["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{path}: {message}");
    }
    for path in ["/v1/stats/overview", "/v1/stats/validations"] {
        let r = cp.call(Method::GET, path, None, None).await;
        assert_eq!(r.status, 401, "{path}");
    }
}
