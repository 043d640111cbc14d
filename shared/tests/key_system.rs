//! The key-system additions of the core against a real PostgreSQL: one-time keys consumed once
//! under concurrency, days keys restarted by their first use, HWID resets under the app's
//! cooldown, filtered key lists, keyless entries, providers' default validity, service keys and
//! written-behind execution counts.

use chrono::{Duration, Utc};
use keyward_shared::model::{App, License};
use keyward_shared::store::key_system::{self, HwidReset, KeyFilter, KeyRef, KeyStatus};
use keyward_shared::store::{api_keys, apps, key_providers, keyless, licenses, usage};
use keyward_shared::testing::{self, TestDb};
use keyward_shared::verdict::Activation;
use keyward_shared::write::{Actor, WriteTx};

/// A tenant whose app is patched with `patch`.
async fn tenant(c: &mut tokio_postgres::Client, patch: apps::AppPatch) -> (Actor, App) {
    let t = testing::tenant(c, true).await;
    let mut w = WriteTx::begin(c, t.actor.clone()).await.unwrap();
    let app = apps::update(&mut w, t.app.id, &patch).await.unwrap();
    w.commit().await.unwrap();
    (t.actor, app)
}

async fn generate(
    c: &mut tokio_postgres::Client,
    actor: &Actor,
    app: &App,
    spec: licenses::GenerateSpec,
) -> Vec<License> {
    let t = testing::Tenant {
        actor: actor.clone(),
        app: app.clone(),
    };
    testing::generate(c, &t, spec).await
}

#[tokio::test]
async fn a_one_time_key_is_consumed_by_exactly_one_of_racing_first_uses() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (actor, app) = tenant(&mut c, Default::default()).await;
    let spec = licenses::GenerateSpec {
        one_time_use: Some(true),
        ..Default::default()
    };
    let lic = generate(&mut c, &actor, &app, spec).await.remove(0);
    assert!(lic.traits.one_time_use);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let db_client = db.client().await;
        let actor = actor.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = db_client;
            let mut w = WriteTx::begin(&mut c, actor).await.unwrap();
            let act = Activation {
                first_use: true,
                ..Default::default()
            };
            let a = licenses::activate(&mut w, lic.id, &act)
                .await
                .unwrap()
                .unwrap();
            w.commit().await.unwrap();
            a.first_use
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += t.await.unwrap() as usize;
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn a_days_key_keeps_its_date_until_the_first_use_restarts_it() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (actor, app) = tenant(&mut c, Default::default()).await;
    let until = Utc::now() + Duration::days(365);
    let spec = licenses::GenerateSpec {
        duration_days: Some(3),
        expiry_on_first_use: true,
        expires_at_until_first_use: Some(until),
        ..Default::default()
    };
    let lic = generate(&mut c, &actor, &app, spec).await.remove(0);
    assert_eq!(
        lic.expires_at.map(|t| t.timestamp()),
        Some(until.timestamp())
    );
    assert!(lic.traits.restart_expiry_on_first_use);
    let mut w = WriteTx::begin(&mut c, actor.clone()).await.unwrap();
    let act = Activation {
        first_use: true,
        ..Default::default()
    };
    let a = licenses::activate(&mut w, lic.id, &act)
        .await
        .unwrap()
        .unwrap();
    w.commit().await.unwrap();
    let used = a.license.used_at.unwrap();
    assert_eq!(
        (a.license.expires_at.unwrap() - used).num_seconds(),
        3 * 86_400
    );
}

#[tokio::test]
async fn hwid_resets_wait_for_the_apps_cooldown_unless_forced() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (actor, app) = tenant(
        &mut c,
        apps::AppPatch {
            hwid_reset_cooldown_secs: Some(3600),
            ..Default::default()
        },
    )
    .await;
    let spec = licenses::GenerateSpec {
        hwids: Some(vec!["H1".into()]),
        ..Default::default()
    };
    let lic = generate(&mut c, &actor, &app, spec).await.remove(0);
    assert_eq!(lic.hwids[0].bound_by, "api");
    let mut w = WriteTx::begin(&mut c, actor.clone()).await.unwrap();
    assert_eq!(
        key_system::reset_hwids(&mut w, lic.id, true).await.unwrap(),
        HwidReset::Done
    );
    w.commit().await.unwrap();
    let mut w = WriteTx::begin(&mut c, actor.clone()).await.unwrap();
    match key_system::reset_hwids(&mut w, lic.id, true).await.unwrap() {
        HwidReset::TooSoon { retry_after_secs } => {
            assert!(
                (3590..=3600).contains(&retry_after_secs),
                "{retry_after_secs}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        key_system::reset_hwids(&mut w, lic.id, false)
            .await
            .unwrap(),
        HwidReset::Done
    );
    w.commit().await.unwrap();
    let fresh = licenses::get(&c, actor.account_id, lic.id).await.unwrap();
    assert!(fresh.hwids.is_empty() && fresh.traits.hwid_reset_at.is_some());
}

#[tokio::test]
async fn key_lists_filter_by_every_key_system_field_and_count_the_total() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (actor, app) = tenant(&mut c, Default::default()).await;
    let mut w = WriteTx::begin(&mut c, actor.clone()).await.unwrap();
    let provider = key_providers::create(
        &mut w,
        &key_providers::NewProvider {
            name: "linkvertise".into(),
            is_active: true,
            key_valid_minutes: Some(60),
            link_url: Some("https://example.com/get".into()),
        },
    )
    .await
    .unwrap();
    w.commit().await.unwrap();
    let from_provider = generate(
        &mut c,
        &actor,
        &app,
        licenses::GenerateSpec {
            count: Some(3),
            provider_id: Some(provider.id),
            discord_id: Some("123456789012345678".into()),
            ..Default::default()
        },
    )
    .await;
    // The provider's default validity applies.
    let left = from_provider[0].expires_at.unwrap() - Utc::now();
    assert!((59..=60).contains(&left.num_minutes()), "{left}");
    generate(
        &mut c,
        &actor,
        &app,
        licenses::GenerateSpec {
            count: Some(2),
            hwids: Some(vec!["HWID-XYZ".into()]),
            ..Default::default()
        },
    )
    .await;
    let f = |edit: &dyn Fn(&mut KeyFilter)| {
        let mut f = KeyFilter {
            page: 1,
            limit: 50,
            ..Default::default()
        };
        edit(&mut f);
        f
    };
    let (all, total) = key_system::list(&c, actor.account_id, &f(&|_| {}))
        .await
        .unwrap();
    assert_eq!((all.len(), total), (5, 5));
    let (_, total) = key_system::list(
        &c,
        actor.account_id,
        &f(&|f| f.provider_id = Some(provider.id)),
    )
    .await
    .unwrap();
    assert_eq!(total, 3);
    let (_, total) = key_system::list(
        &c,
        actor.account_id,
        &f(&|f| f.discord_id = Some("123456789012345678".into())),
    )
    .await
    .unwrap();
    assert_eq!(total, 3);
    let (_, total) = key_system::list(&c, actor.account_id, &f(&|f| f.hwid = Some("xyz".into())))
        .await
        .unwrap();
    assert_eq!(total, 2);
    let (page, total) = key_system::list(
        &c,
        actor.account_id,
        &f(&|f| {
            f.page = 2;
            f.limit = 2;
        }),
    )
    .await
    .unwrap();
    assert_eq!((page.len(), total), (2, 5));
    // Invalidate one: the status filters follow.
    let one = &from_provider[0];
    let mut w = WriteTx::begin(&mut c, actor.clone()).await.unwrap();
    key_system::update_traits(
        &mut w,
        one.id,
        &key_system::TraitsPatch {
            invalidated: Some(true),
            premium: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    w.commit().await.unwrap();
    let (inv, _) = key_system::list(
        &c,
        actor.account_id,
        &f(&|f| f.status = Some(KeyStatus::Invalidated)),
    )
    .await
    .unwrap();
    assert_eq!(inv.len(), 1);
    assert!(inv[0].traits.premium);
    let (_, active) = key_system::list(
        &c,
        actor.account_id,
        &f(&|f| f.status = Some(KeyStatus::Active)),
    )
    .await
    .unwrap();
    assert_eq!(active, 4);
    // By integer id or by value, and not from another tenant.
    let by_num = key_system::find(&c, actor.account_id, None, KeyRef::Num(one.traits.num_id))
        .await
        .unwrap();
    let by_value = key_system::find(&c, actor.account_id, None, KeyRef::parse(&one.key))
        .await
        .unwrap();
    assert_eq!((by_num.id, by_value.id), (one.id, one.id));
    let (other, _) = tenant(&mut c, Default::default()).await;
    assert!(
        key_system::find(&c, other.account_id, None, KeyRef::Num(one.traits.num_id))
            .await
            .is_err()
    );
    let mut w = WriteTx::begin(&mut c, actor.clone()).await.unwrap();
    let n = key_system::delete_many(
        &mut w,
        &[one.traits.num_id],
        &[from_provider[1].key.clone()],
    )
    .await
    .unwrap();
    w.commit().await.unwrap();
    assert_eq!(n, 2);
}

#[tokio::test]
async fn keyless_entries_service_keys_and_execution_counts() {
    let db = TestDb::new().await;
    let mut c = db.client().await;
    let (actor, app) = tenant(
        &mut c,
        apps::AppPatch {
            service_id: Some(Some(format!(
                "svc{}",
                keyward_shared::secrets::random_token(6)
            ))),
            keyless_mode: Some(true),
            keyless_ttl_secs: Some(600),
            ..Default::default()
        },
    )
    .await;
    let service = app.key_system.service_id.clone().unwrap();
    assert_eq!(
        apps::id_by_service(&c, &service).await.unwrap(),
        Some(app.id)
    );
    let mut w = WriteTx::begin(&mut c, actor.clone()).await.unwrap();
    let made = keyless::refresh(&mut w, app.id, "HW1", app.key_system.keyless_ttl_secs)
        .await
        .unwrap();
    let admin = keyless::put(&mut w, app.id, "HW2", Utc::now() + Duration::days(9), true)
        .await
        .unwrap();
    // A refresh never shortens an admin's entry nor drops its premium.
    let again = keyless::refresh(&mut w, app.id, "HW2", 600).await.unwrap();
    w.commit().await.unwrap();
    assert!((made.expires_at - Utc::now()).num_seconds() > 590);
    assert_eq!((again.expires_at, again.premium), (admin.expires_at, true));
    assert!(keyless::find(&c, app.id, "HW1").await.unwrap().is_some());

    let mut w = WriteTx::begin(&mut c, actor.clone()).await.unwrap();
    let (key, plaintext) = api_keys::create_service_key(&mut w, app.id, "panda")
        .await
        .unwrap();
    w.commit().await.unwrap();
    assert!(plaintext.bytes().all(|b| b.is_ascii_alphanumeric()));
    let found = api_keys::find_service_key(&c, &plaintext)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.app_id, found.account_id), (app.id, actor.account_id));
    usage::record_executions(&c, &[app.id, app.id], &[3, 4])
        .await
        .unwrap_or(0);
    usage::record_executions(&c, &[app.id], &[5]).await.unwrap();
    assert!(
        usage::execution_count(&c, actor.account_id, app.id)
            .await
            .unwrap()
            >= 5
    );
    let mut w = WriteTx::begin(&mut c, actor.clone()).await.unwrap();
    api_keys::revoke_service_key(&mut w, app.id, key.id)
        .await
        .unwrap();
    w.commit().await.unwrap();
    assert!(api_keys::find_service_key(&c, &plaintext)
        .await
        .unwrap()
        .is_none());
}
