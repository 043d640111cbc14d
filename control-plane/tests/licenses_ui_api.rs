//! What the admin UI's license and machine pages need of `/v1`: the list's expiry and level
//! filters and their counts, keys by KeyAuth's masks, one HWID unbound, bulk actions, the
//! account's machines across licenses, and a license's metadata; each with its refusals and
//! another tenant's reach.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use keyward_shared::invalidation::Invalidation;
use reqwest::Method;
use serde_json::{json, Value};

/// The keys of a list answer, sorted.
fn keys(page: &Value) -> BTreeSet<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|l| l["key"].as_str().expect("key").to_string())
        .collect()
}

fn key(l: &Value) -> String {
    l["key"].as_str().expect("key").to_string()
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

/// Waits until notifications have named each of `wanted` (other writes may announce theirs,
/// and one transaction announces all of its own together).
async fn announced(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<Invalidation>>,
    wanted: &[Invalidation],
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut missing: Vec<&Invalidation> = wanted.iter().collect();
    while !missing.is_empty() {
        let items = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no notification of {missing:?} within 5 s"))
            .expect("listener alive");
        missing.retain(|w| !items.contains(w));
    }
}

#[tokio::test]
async fn list_filters_by_expiry_and_level_and_counts_them() {
    let cp = Cp::start().await;
    let t = cp.admin("alice").await;
    let app = cp.app(&t, "Tool").await;
    let other_app = cp.app(&t, "Other").await;
    let gen = |spec: Value| {
        let (cp, t, app) = (&cp, &t, &app);
        async move { cp.licenses(t, app, spec).await.remove(0) }
    };
    let soon = gen(json!({"duration_days": 2, "level": 3})).await;
    let later = gen(json!({"duration_days": 30, "level": 3})).await;
    let never = gen(json!({"note": "no expiry"})).await;
    let pending = gen(json!({"duration_days": 5, "expiry_on_first_use": true})).await;
    let past = gen(json!({"duration_days": 5})).await;
    assert!(
        never["expires_at"].is_null() && never["duration_secs"].is_null(),
        "{never}"
    );
    // Expired an hour ago.
    let hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    cp.ok(
        Method::PATCH,
        &format!("/v1/licenses/{}", id(&past)),
        &t,
        Some(json!({"expires_at": hour_ago})),
    )
    .await;
    cp.licenses(&t, &other_app, json!({"count": 3, "duration_days": 1}))
        .await;

    let list = |q: &str| {
        let (cp, t, app) = (&cp, &t, &app);
        let q = q.to_string();
        async move {
            cp.ok(
                Method::GET,
                &format!("/v1/licenses?app_id={app}&{q}"),
                t,
                None,
            )
            .await
        }
    };
    let set = |ls: &[&Value]| ls.iter().map(|l| key(l)).collect::<BTreeSet<_>>();
    assert_eq!(keys(&list("expiry=expired").await), set(&[&past]));
    assert_eq!(keys(&list("expiry=expiring").await), set(&[&soon]));
    assert_eq!(
        keys(&list("expiry=expiring&within_days=60").await),
        set(&[&soon, &later])
    );
    assert_eq!(
        keys(&list("expiry=unexpired").await),
        set(&[&soon, &later, &never, &pending])
    );
    assert_eq!(keys(&list("expiry=never").await), set(&[&never]));
    assert_eq!(keys(&list("level=3").await), set(&[&soon, &later]));
    assert_eq!(keys(&list("level=3&expiry=expiring").await), set(&[&soon]));
    // status=expired is the active licenses past their date; expiry=expired whatever the status.
    assert_eq!(keys(&list("status=expired").await), set(&[&past]));
    cp.ok(
        Method::POST,
        &format!("/v1/licenses/{}/ban", id(&past)),
        &t,
        Some(json!({})),
    )
    .await;
    assert!(keys(&list("status=expired").await).is_empty());
    assert_eq!(keys(&list("expiry=expired").await), set(&[&past]));

    // Pages of a filtered list: each license once, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("expiry=unexpired&limit=1&cursor={c}"),
            None => "expiry=unexpired&limit=1".into(),
        };
        let page = list(&q).await;
        seen.extend(keys(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(
        seen.iter().cloned().collect::<BTreeSet<_>>(),
        set(&[&soon, &later, &never, &pending])
    );

    // Counts: the same filters, in all and per app.
    let count = |q: &str| {
        let (cp, t) = (&cp, &t);
        let q = q.to_string();
        async move {
            cp.ok(Method::GET, &format!("/v1/licenses/count?{q}"), t, None)
                .await
        }
    };
    let all = count("").await;
    assert_eq!(all["total"], 8, "{all}");
    assert_eq!(all["by_app"][&app], 5, "{all}");
    assert_eq!(all["by_app"][&other_app], 3, "{all}");
    let expiring = count("expiry=expiring").await;
    assert_eq!(expiring["total"], 4, "{expiring}");
    assert_eq!(expiring["by_app"][&other_app], 3, "{expiring}");
    let one_app = count(&format!("app_id={app}&expiry=unexpired")).await;
    assert_eq!(one_app["total"], 4, "{one_app}");
    assert_eq!(one_app["by_app"].as_object().map(|o| o.len()), Some(1));
    let none = count("status=revoked").await;
    assert_eq!(none, json!({"total": 0, "by_app": {}}));

    // Refusals: each names what is wrong.
    for (q, says) in [
        ("expiry=soon", "expiry"),
        ("within_days=3", "within_days goes with expiry=expiring"),
        (
            "expiry=expiring&within_days=0",
            "within_days must be between 1 and 3650",
        ),
        (
            "expiry=expiring&within_days=9999",
            "within_days must be between 1 and 3650",
        ),
        ("level=high", "level"),
    ] {
        for path in ["/v1/licenses", "/v1/licenses/count"] {
            let r = cp
                .call(Method::GET, &format!("{path}?{q}"), Some(&t), None)
                .await;
            assert_eq!(r.status, 400, "{path}?{q}: {}", r.body);
            assert!(
                r.body["message"].as_str().unwrap_or("").contains(says),
                "{path}?{q}: {}",
                r.body
            );
        }
    }
    let r = cp
        .call(Method::GET, "/v1/licenses/count?limit=5", Some(&t), None)
        .await;
    assert_eq!(r.status, 400, "a count has no pages: {}", r.body);

    // Another tenant counts and lists none of these.
    let b = cp.admin("bob").await;
    let theirs = cp.ok(Method::GET, "/v1/licenses/count", &b, None).await;
    assert_eq!(theirs, json!({"total": 0, "by_app": {}}));
    let r = cp
        .call(
            Method::GET,
            &format!("/v1/licenses/count?app_id={app}"),
            Some(&b),
            None,
        )
        .await;
    assert_eq!(r.body["total"], 0, "{}", r.body);
}

#[tokio::test]
async fn keys_follow_keyauth_masks_in_batches_of_a_hundred() {
    let cp = Cp::start().await;
    let t = cp.admin("alice").await;
    let app = cp.app(&t, "Tool").await;
    let made = cp
        .licenses(
            &t,
            &app,
            json!({"count": 100, "mask": "KW-****-****", "duration_days": 7, "level": 2, "note": "batch"}),
        )
        .await;
    assert_eq!(made.len(), 100);
    let distinct: BTreeSet<String> = made.iter().map(key).collect();
    assert_eq!(distinct.len(), 100);
    for k in &distinct {
        let (prefix, rest) = k.split_at(3);
        assert_eq!(prefix, "KW-", "{k}");
        assert_eq!(rest.len(), 9, "{k}");
        assert!(
            rest.bytes().enumerate().all(|(i, b)| if i == 4 {
                b == b'-'
            } else {
                b.is_ascii_uppercase() || b.is_ascii_digit()
            }),
            "{k}"
        );
    }
    assert!(made.iter().all(|l| l["level"] == 2 && l["note"] == "batch"));
    let count = cp
        .ok(
            Method::GET,
            &format!("/v1/licenses/count?app_id={app}"),
            &t,
            None,
        )
        .await;
    assert_eq!(count["total"], 100);

    let r = cp
        .call(
            Method::POST,
            &format!("/v1/apps/{app}/licenses"),
            Some(&t),
            Some(json!({"count": 2, "mask": "KW-***"})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("random positions"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn one_hwid_is_unbound_and_the_validators_told() {
    let cp = Cp::start().await;
    let t = cp.admin("alice").await;
    let app = cp.app(&t, "Tool").await;
    let lic = cp
        .licenses(&t, &app, json!({"duration_days": 30, "hwid_limit": 3}))
        .await
        .remove(0);
    let lid = id(&lic);
    // A HWID with a slash, a space and a percent travels percent-encoded in one segment.
    let odd = "pc 2/ü%";
    for fp in ["pc-1", odd, "pc-3"] {
        cp.ok(
            Method::POST,
            &format!("/v1/licenses/{lid}/machines"),
            &t,
            Some(json!({"fingerprint": fp})),
        )
        .await;
    }
    let (_listener, mut rx) = listening(&cp).await;
    let encoded: String = odd
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let after = cp
        .ok(
            Method::DELETE,
            &format!("/v1/licenses/{lid}/hwids/{encoded}"),
            &t,
            None,
        )
        .await;
    let left: Vec<&str> = after["hwids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["hwid"].as_str().unwrap())
        .collect();
    assert_eq!(left, ["pc-1", "pc-3"], "{after}");
    announced(
        &mut rx,
        &[Invalidation::License {
            app: app.parse().unwrap(),
            key: key(&lic),
        }],
    )
    .await;
    // Its machine went with it.
    let machines = cp
        .ok(
            Method::GET,
            &format!("/v1/licenses/{lid}/machines"),
            &t,
            None,
        )
        .await;
    assert_eq!(machines["items"].as_array().unwrap().len(), 2);

    // Again: that HWID is not bound any more.
    let r = cp
        .call(
            Method::DELETE,
            &format!("/v1/licenses/{lid}/hwids/{encoded}"),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.body["message"].as_str()),
        (404, Some("HWID not found"))
    );
    let r = cp
        .call(
            Method::DELETE,
            &format!("/v1/licenses/{}/hwids/pc-1", uuid::Uuid::new_v4()),
            Some(&t),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.body["message"].as_str()),
        (404, Some("license not found"))
    );

    // Audited with what it was before and after.
    let audit = cp
        .ok(
            Method::GET,
            "/v1/audit-log?action=license.remove_hwid",
            &t,
            None,
        )
        .await;
    let entry = &audit["items"][0];
    assert_eq!(entry["details"]["hwid"], odd, "{audit}");
    assert_eq!(
        entry["details"]["before"]["hwids"],
        json!(["pc-1", odd, "pc-3"])
    );
    assert_eq!(entry["details"]["after"]["hwids"], json!(["pc-1", "pc-3"]));

    // Another tenant cannot unbind it.
    let b = cp.admin("bob").await;
    let r = cp
        .call(
            Method::DELETE,
            &format!("/v1/licenses/{lid}/hwids/pc-1"),
            Some(&b),
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let still = cp
        .ok(Method::GET, &format!("/v1/licenses/{lid}"), &t, None)
        .await;
    assert_eq!(still["hwids"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bulk_actions_change_every_license_or_none() {
    let cp = Cp::start().await;
    let t = cp.admin("alice").await;
    let app = cp.app(&t, "Tool").await;
    let made = cp
        .licenses(&t, &app, json!({"count": 4, "duration_days": 10}))
        .await;
    let ids: Vec<String> = made.iter().map(id).collect();
    let bulk = |body: Value| {
        let (cp, t) = (&cp, &t);
        async move {
            cp.call(Method::POST, "/v1/licenses/bulk", Some(t), Some(body))
                .await
        }
    };
    let get = |lid: String| {
        let (cp, t) = (&cp, &t);
        async move {
            cp.ok(Method::GET, &format!("/v1/licenses/{lid}"), t, None)
                .await
        }
    };

    let (_listener, mut rx) = listening(&cp).await;
    // Repeats count once.
    let r = bulk(json!({"ids": [ids[0], ids[1], ids[0]], "action": "ban", "reason": "chargeback"}))
        .await;
    assert_eq!((r.status, &r.body), (200, &json!({"count": 2})));
    for lid in &ids[..2] {
        let l = get(lid.clone()).await;
        assert_eq!(
            (l["status"].as_str(), l["ban_reason"].as_str()),
            (Some("banned"), Some("chargeback"))
        );
    }
    let both: Vec<Invalidation> = made[..2]
        .iter()
        .map(|l| Invalidation::License {
            app: app.parse().unwrap(),
            key: key(l),
        })
        .collect();
    announced(&mut rx, &both).await;
    assert_eq!(get(ids[2].clone()).await["status"], "active");
    let audit = cp
        .ok(Method::GET, "/v1/audit-log?action=license.ban", &t, None)
        .await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 2, "{audit}");

    let r = bulk(json!({"ids": [ids[0], ids[1]], "action": "unban"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(get(ids[0].clone()).await["status"], "active");

    // Extend by days: every expiry moves by as much.
    let before: Vec<String> = made
        .iter()
        .map(|l| l["expires_at"].as_str().unwrap().to_string())
        .collect();
    let r = bulk(json!({"ids": ids, "action": "extend", "days": 5})).await;
    assert_eq!((r.status, &r.body), (200, &json!({"count": 4})));
    for (i, lid) in ids.iter().enumerate() {
        let was = chrono::DateTime::parse_from_rfc3339(&before[i]).unwrap();
        let now = get(lid.clone()).await;
        let is = chrono::DateTime::parse_from_rfc3339(now["expires_at"].as_str().unwrap()).unwrap();
        assert_eq!(is - was, chrono::Duration::days(5), "{now}");
    }

    // One license refuses (a revoked one cannot be unbanned... nor banned): nothing changes.
    cp.ok(
        Method::POST,
        &format!("/v1/licenses/{}/revoke", ids[3]),
        &t,
        None,
    )
    .await;
    let r = bulk(json!({"ids": [ids[2], ids[3]], "action": "ban"})).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.body["message"].as_str().unwrap().contains(&key(&made[3])),
        "the refusal names the key: {}",
        r.body
    );
    assert_eq!(get(ids[2].clone()).await["status"], "active", "rolled back");

    // Machines bound, then reset in bulk.
    for lid in &ids[..2] {
        cp.ok(
            Method::POST,
            &format!("/v1/licenses/{lid}/machines"),
            &t,
            Some(json!({"fingerprint": "fp"})),
        )
        .await;
    }
    let r = bulk(json!({"ids": [ids[0], ids[1]], "action": "reset_hwids"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(get(ids[0].clone()).await["hwids"], json!([]));

    // Another tenant's id among them: not found, and nothing happens to the caller's.
    let b = cp.admin("bob").await;
    let bob_app = cp.app(&b, "Bob's").await;
    let bobs = id(&cp.licenses(&b, &bob_app, json!({})).await.remove(0));
    let r = bulk(json!({"ids": [ids[2], bobs], "action": "delete"})).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(get(ids[2].clone()).await["status"], "active");
    let r = cp
        .call(
            Method::POST,
            "/v1/licenses/bulk",
            Some(&b),
            Some(json!({"ids": [ids[2]], "action": "delete"})),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);

    // Delete.
    let r = bulk(json!({"ids": [ids[0], ids[1]], "action": "delete"})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for lid in &ids[..2] {
        let r = cp
            .call(Method::GET, &format!("/v1/licenses/{lid}"), Some(&t), None)
            .await;
        assert_eq!(r.status, 404);
    }

    // Malformed requests, each named.
    let many: Vec<String> = (0..101).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for (body, says) in [
        (json!({"ids": [], "action": "ban"}), "1 to 100"),
        (json!({"ids": many, "action": "ban"}), "1 to 100"),
        (json!({"ids": [ids[2]], "action": "extend"}), "days"),
        (
            json!({"ids": [ids[2]], "action": "extend", "days": 0}),
            "days",
        ),
        (
            json!({"ids": [ids[2]], "action": "ban", "days": 3}),
            "days goes with action extend",
        ),
        (
            json!({"ids": [ids[2]], "action": "unban", "reason": "x"}),
            "reason goes with action ban",
        ),
        (json!({"ids": [ids[2]], "action": "explode"}), "action"),
        (json!({"ids": ["nope"], "action": "ban"}), "ids"),
    ] {
        let r = bulk(body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(
            r.body["message"].as_str().unwrap_or("").contains(says),
            "{body}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn machines_are_listed_across_the_account() {
    let cp = Cp::start().await;
    let t = cp.admin("alice").await;
    let app = cp.app(&t, "Tool").await;
    let other = cp.app(&t, "Other").await;
    let l1 = cp
        .licenses(&t, &app, json!({"hwid_limit": 5}))
        .await
        .remove(0);
    let l2 = cp
        .licenses(&t, &other, json!({"hwid_limit": 5}))
        .await
        .remove(0);
    let mut made = Vec::new();
    for (lic, fp, name) in [
        (&l1, "fp-a", "Office"),
        (&l1, "fp-b", "Laptop"),
        (&l2, "fp-c", "Office annex"),
    ] {
        made.push(
            cp.ok(
                Method::POST,
                &format!("/v1/licenses/{}/machines", id(lic)),
                &t,
                Some(json!({"fingerprint": fp, "name": name})),
            )
            .await,
        );
    }
    let list = |q: &str| {
        let (cp, t) = (&cp, &t);
        let q = q.to_string();
        async move {
            cp.ok(Method::GET, &format!("/v1/machines?{q}"), t, None)
                .await
        }
    };
    let fps = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["fingerprint"].as_str().unwrap().to_string())
            .collect()
    };
    let all = list("").await;
    assert_eq!(fps(&all), ["fp-c", "fp-b", "fp-a"], "newest first: {all}");
    assert_eq!(all["items"][0]["license_key"], l2["key"]);
    assert_eq!(all["items"][0]["id"], made[2]["id"]);
    assert_eq!(all["items"][0]["name"], "Office annex");
    assert!(all["next_cursor"].is_null());
    assert_eq!(fps(&list(&format!("app_id={app}")).await), ["fp-b", "fp-a"]);
    assert_eq!(
        fps(&list(&format!("license_id={}", id(&l2))).await),
        ["fp-c"]
    );
    assert_eq!(fps(&list("search=office").await), ["fp-c", "fp-a"]);
    let by_key = &key(&l1)[..10];
    assert_eq!(
        fps(&list(&format!("search={by_key}")).await),
        ["fp-b", "fp-a"]
    );
    // Pages.
    let first = list("limit=2").await;
    assert_eq!(fps(&first), ["fp-c", "fp-b"]);
    let c = first["next_cursor"].as_str().expect("a next page");
    let second = list(&format!("limit=2&cursor={c}")).await;
    assert_eq!(fps(&second), ["fp-a"]);
    assert!(second["next_cursor"].is_null());

    for q in [
        "cursor=nonsense",
        "limit=x",
        "app_id=not-a-uuid",
        "fingerprint=fp-a",
    ] {
        let r = cp
            .call(Method::GET, &format!("/v1/machines?{q}"), Some(&t), None)
            .await;
        assert_eq!(r.status, 400, "{q}: {}", r.body);
    }

    // Deactivated: gone from the list.
    cp.ok(
        Method::DELETE,
        &format!("/v1/machines/{}", id(&made[0])),
        &t,
        None,
    )
    .await;
    assert_eq!(fps(&list("").await), ["fp-c", "fp-b"]);

    // Another tenant sees none of them.
    let b = cp.admin("bob").await;
    let theirs = cp.ok(Method::GET, "/v1/machines", &b, None).await;
    assert_eq!(theirs["items"], json!([]));
    let theirs = cp
        .ok(
            Method::GET,
            &format!("/v1/machines?license_id={}", id(&l1)),
            &b,
            None,
        )
        .await;
    assert_eq!(theirs["items"], json!([]));
}

#[tokio::test]
async fn a_license_shows_its_metadata() {
    let cp = Cp::start().await;
    let t = cp.admin("alice").await;
    let app = cp.app(&t, "Tool").await;
    let lic = cp
        .licenses(&t, &app, json!({"metadata": {"order": 42, "plan": "pro"}}))
        .await
        .remove(0);
    let got = cp
        .ok(Method::GET, &format!("/v1/licenses/{}", id(&lic)), &t, None)
        .await;
    assert_eq!(got["metadata"], json!({"order": 42, "plan": "pro"}));
    assert_eq!(got["key"], lic["key"]);
    // Lists leave it out.
    let listed = cp
        .ok(Method::GET, &format!("/v1/licenses?app_id={app}"), &t, None)
        .await;
    assert!(listed["items"][0].get("metadata").is_none(), "{listed}");
    let b = cp.admin("bob").await;
    let r = cp
        .call(
            Method::GET,
            &format!("/v1/licenses/{}", id(&lic)),
            Some(&b),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
}
