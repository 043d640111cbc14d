use super::*;
use crate::fixtures::app;
use crate::model::{BlacklistEntry, BlacklistKind, BoundHwid, License};
use chrono::Duration;
use proptest::prelude::*;
use uuid::Uuid;

fn license() -> License {
    License {
        id: Uuid::new_v4(),
        account_id: Uuid::new_v4(),
        app_id: Uuid::new_v4(),
        policy_id: Uuid::new_v4(),
        key: "AAAA-BBBB".into(),
        status: LicenseStatus::Active,
        level: 1,
        note: None,
        created_at: Utc::now(),
        used_at: Some(Utc::now()),
        expires_at: None,
        duration_secs: None,
        hwid_limit: 1,
        ip_limit: 0,
        ban_reason: None,
        hwids: vec![bound("H1")],
        ips: vec![],
        last_validated_at: None,
        validation_count: 0,
        max_uses: Some(1),
        uses: 0,
        used_by: None,
        traits: crate::model::KeyTraits {
            hwid_check: true,
            ..Default::default()
        },
        license_type: crate::model::LicenseType::Fixed,
        owner_id: None,
    }
}

fn bound(h: &str) -> BoundHwid {
    BoundHwid {
        hwid: h.into(),
        bound_at: Utc::now(),
        bound_by: "validate".into(),
    }
}

fn facts<'a>(hwid: Option<&'a str>, ip: Option<&str>) -> RequestFacts<'a> {
    RequestFacts {
        hwid,
        ip: ip.map(|s| s.parse().unwrap()),
        hwid_optional: false,
    }
}

fn code(d: Decision) -> Code {
    match d {
        Decision::Final(v) => v.code,
        Decision::Activate(_) => panic!("expected a final verdict, got {d:?}"),
    }
}

fn empty() -> BlacklistView {
    BlacklistView::default()
}

#[test]
fn valid_when_bound_hwid_matches() {
    let d = decide(
        &app(),
        Some(&license().facts()),
        &empty(),
        facts(Some("H1"), None),
        Utc::now(),
    );
    assert_eq!(d, Decision::Final(Verdict::valid()));
}

#[test]
fn unknown_key_is_not_found() {
    let d = decide(&app(), None, &empty(), facts(Some("H1"), None), Utc::now());
    assert_eq!(code(d), Code::NotFound);
}

#[test]
fn paused_app_wins_over_everything() {
    let mut a = app();
    a.paused = true;
    let mut l = license();
    l.status = LicenseStatus::Banned;
    assert_eq!(
        code(decide(
            &a,
            Some(&l.facts()),
            &empty(),
            facts(None, None),
            Utc::now()
        )),
        Code::AppPaused
    );
    assert_eq!(
        code(decide(&a, None, &empty(), facts(None, None), Utc::now())),
        Code::AppPaused
    );
}

#[test]
fn blacklist_precedes_license_rules() {
    let entries = [
        BlacklistEntry {
            id: Uuid::new_v4(),
            app_id: Uuid::nil(),
            kind: BlacklistKind::Ip,
            value: "10.0.0.0/8".into(),
            note: None,
            created_at: Utc::now(),
        },
        BlacklistEntry {
            id: Uuid::new_v4(),
            app_id: Uuid::nil(),
            kind: BlacklistKind::Hwid,
            value: "EVIL".into(),
            note: None,
            created_at: Utc::now(),
        },
    ];
    let bl = BlacklistView::from_entries(&entries);
    let l = license();
    assert_eq!(
        code(decide(
            &app(),
            Some(&l.facts()),
            &bl,
            facts(Some("H1"), Some("10.9.8.7")),
            Utc::now()
        )),
        Code::Blacklisted
    );
    assert_eq!(
        code(decide(
            &app(),
            Some(&l.facts()),
            &bl,
            facts(Some("EVIL"), Some("192.0.2.1")),
            Utc::now()
        )),
        Code::Blacklisted
    );
    assert_eq!(
        code(decide(
            &app(),
            None,
            &bl,
            facts(Some("EVIL"), None),
            Utc::now()
        )),
        Code::Blacklisted
    );
    assert_eq!(
        code(decide(
            &app(),
            Some(&l.facts()),
            &bl,
            facts(Some("H1"), Some("192.0.2.1")),
            Utc::now()
        )),
        Code::Valid
    );
}

#[test]
fn banned_reports_reason_and_precedes_expiry() {
    let mut l = license();
    l.status = LicenseStatus::Banned;
    l.ban_reason = Some("chargeback".into());
    l.expires_at = Some(Utc::now() - Duration::days(1));
    match decide(
        &app(),
        Some(&l.facts()),
        &empty(),
        facts(Some("H1"), None),
        Utc::now(),
    ) {
        Decision::Final(v) => {
            assert_eq!(v.code, Code::Banned);
            assert!(v.detail.contains("chargeback"));
            assert!(!v.valid);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn expiry_is_exclusive_of_the_instant() {
    let now = Utc::now();
    let mut l = license();
    l.expires_at = Some(now);
    assert_eq!(
        code(decide(
            &app(),
            Some(&l.facts()),
            &empty(),
            facts(Some("H1"), None),
            now
        )),
        Code::Expired
    );
    l.expires_at = Some(now + Duration::seconds(1));
    assert_eq!(
        code(decide(
            &app(),
            Some(&l.facts()),
            &empty(),
            facts(Some("H1"), None),
            now
        )),
        Code::Valid
    );
}

#[test]
fn hwid_rules() {
    let a = app();
    let mut l = license();
    assert_eq!(
        code(decide(
            &a,
            Some(&l.facts()),
            &empty(),
            facts(None, None),
            Utc::now()
        )),
        Code::HwidRequired
    );
    assert_eq!(
        code(decide(
            &a,
            Some(&l.facts()),
            &empty(),
            facts(Some("H2"), None),
            Utc::now()
        )),
        Code::HwidMismatch
    );
    l.hwid_limit = 2;
    assert_eq!(
        decide(
            &a,
            Some(&l.facts()),
            &empty(),
            facts(Some("H2"), None),
            Utc::now()
        ),
        Decision::Activate(Activation {
            bind_hwid: Some("H2".into()),
            ..Default::default()
        })
    );
    l.hwids.push(bound("H2"));
    assert_eq!(
        code(decide(
            &a,
            Some(&l.facts()),
            &empty(),
            facts(Some("H3"), None),
            Utc::now()
        )),
        Code::TooManyHwids
    );
    l.hwid_limit = 0;
    assert!(matches!(
        decide(
            &a,
            Some(&l.facts()),
            &empty(),
            facts(Some("H3"), None),
            Utc::now()
        ),
        Decision::Activate(_)
    ));
    let mut unlocked = app();
    unlocked.hwid_lock = false;
    assert_eq!(
        code(decide(
            &unlocked,
            Some(&license().facts()),
            &empty(),
            facts(None, None),
            Utc::now()
        )),
        Code::Valid
    );
    assert_eq!(
        code(decide(
            &unlocked,
            Some(&license().facts()),
            &empty(),
            facts(Some("other"), None),
            Utc::now()
        )),
        Code::Valid
    );
}

#[test]
fn ip_limit_rules() {
    let mut l = license();
    l.ip_limit = 1;
    let a = app();
    assert_eq!(
        decide(
            &a,
            Some(&l.facts()),
            &empty(),
            facts(Some("H1"), Some("192.0.2.1")),
            Utc::now()
        ),
        Decision::Activate(Activation {
            record_ip: Some("192.0.2.1".parse().unwrap()),
            ..Default::default()
        })
    );
    l.ips.push("192.0.2.1".parse().unwrap());
    assert_eq!(
        code(decide(
            &a,
            Some(&l.facts()),
            &empty(),
            facts(Some("H1"), Some("192.0.2.1")),
            Utc::now()
        )),
        Code::Valid
    );
    assert_eq!(
        code(decide(
            &a,
            Some(&l.facts()),
            &empty(),
            facts(Some("H1"), Some("192.0.2.2")),
            Utc::now()
        )),
        Code::IpLimit
    );
}

#[test]
fn first_use_requests_activation() {
    let mut l = license();
    l.used_at = None;
    l.duration_secs = Some(3600);
    assert_eq!(
        decide(
            &app(),
            Some(&l.facts()),
            &empty(),
            facts(Some("H1"), None),
            Utc::now()
        ),
        Decision::Activate(Activation {
            first_use: true,
            ..Default::default()
        })
    );
}

#[test]
fn refused_activation_becomes_limit_verdict() {
    let mut l = license();
    l.hwid_limit = 2;
    let v = decide_after_activation(
        &app(),
        &l.facts(),
        &empty(),
        facts(Some("H9"), None),
        Utc::now(),
        false,
    );
    assert_eq!(v.code, Code::TooManyHwids);
    l.hwid_limit = 0;
    l.ip_limit = 1;
    l.ips.push("192.0.2.1".parse().unwrap());
    let v = decide_after_activation(
        &app(),
        &l.facts(),
        &empty(),
        facts(Some("H1"), Some("192.0.2.7")),
        Utc::now(),
        false,
    );
    assert_eq!(v.code, Code::IpLimit);
}

#[test]
fn code_strings_match_serde() {
    for c in Code::ALL {
        assert_eq!(
            serde_json::to_value(c).unwrap(),
            serde_json::Value::String(c.as_str().into())
        );
        assert_eq!(Code::ALL[c.index()], c);
    }
}

proptest! {
    /// Whatever the license looks like, a valid answer implies every rule passes; and a refusal
    /// never asks for a write.
    #[test]
    fn valid_implies_all_rules_pass(
        paused in any::<bool>(),
        hwid_lock in any::<bool>(),
        banned in any::<bool>(),
        expired in proptest::option::of(any::<bool>()),
        hwid_limit in 0i32..4,
        bound in 0usize..4,
        ip_limit in 0i32..3,
        seen in 0usize..3,
        req_hwid in proptest::option::of(0usize..6),
        req_ip in proptest::option::of(0u8..6),
    ) {
        let mut a = app();
        a.paused = paused;
        a.hwid_lock = hwid_lock;
        let mut l = license();
        l.status = if banned { LicenseStatus::Banned } else { LicenseStatus::Active };
        let now = Utc::now();
        l.expires_at = expired.map(|e| if e { now - Duration::seconds(1) } else { now + Duration::days(1) });
        l.hwid_limit = hwid_limit;
        l.hwids = (0..bound).map(|i| self::bound(&format!("H{i}"))).collect();
        l.ip_limit = ip_limit;
        l.ips = (0..seen).map(|i| format!("192.0.2.{i}").parse().unwrap()).collect();
        let hwid = req_hwid.map(|i| format!("H{i}"));
        let ip = req_ip.map(|i| format!("192.0.2.{i}").parse().unwrap());
        let f = RequestFacts { hwid: hwid.as_deref(), ip, hwid_optional: false };
        match decide(&a, Some(&l.facts()), &empty(), f, now) {
            Decision::Final(v) if v.valid => {
                prop_assert!(!paused && !banned && expired != Some(true));
                if hwid_lock { prop_assert!(l.has_hwid(hwid.as_deref().unwrap())); }
                if ip_limit > 0 { if let Some(ip) = ip { prop_assert!(l.has_ip(ip)); } }
            }
            Decision::Final(v) => prop_assert_ne!(v.code, Code::Valid),
            Decision::Activate(act) => {
                prop_assert!(!paused && !banned && expired != Some(true));
                if let Some(h) = &act.bind_hwid {
                    prop_assert!(hwid_lock && !l.has_hwid(h));
                    prop_assert!(hwid_limit == 0 || (bound as i32) < hwid_limit);
                }
                if act.record_ip.is_some() { prop_assert!(ip_limit > 0 && (seen as i32) < ip_limit); }
            }
        }
    }
}

#[test]
fn a_spent_one_time_key_is_refused_except_to_the_use_that_spent_it() {
    let mut l = license();
    l.traits.one_time_use = true;
    let d = decide(
        &app(),
        Some(&l.facts()),
        &empty(),
        facts(Some("H1"), None),
        Utc::now(),
    );
    assert_eq!(
        d,
        Decision::Final(Verdict::fail(
            Code::AlreadyUsed,
            "this one-time key has already been used"
        ))
    );
    let v = decide_after_activation(
        &app(),
        &l.facts(),
        &empty(),
        facts(Some("H1"), None),
        Utc::now(),
        true,
    );
    assert!(v.valid, "{v:?}");
    let v = decide_after_activation(
        &app(),
        &l.facts(),
        &empty(),
        facts(Some("H1"), None),
        Utc::now(),
        false,
    );
    assert_eq!(v.code, Code::AlreadyUsed);
    l.used_at = None;
    let d = decide(
        &app(),
        Some(&l.facts()),
        &empty(),
        facts(Some("H1"), None),
        Utc::now(),
    );
    assert!(matches!(
        d,
        Decision::Activate(Activation {
            first_use: true,
            ..
        })
    ));
}

#[test]
fn a_key_without_hwid_check_neither_binds_nor_compares() {
    let mut l = license();
    l.traits.hwid_check = false;
    let d = decide(
        &app(),
        Some(&l.facts()),
        &empty(),
        facts(Some("OTHER"), None),
        Utc::now(),
    );
    assert_eq!(d, Decision::Final(Verdict::valid()));
    let d = decide(
        &app(),
        Some(&l.facts()),
        &empty(),
        facts(None, None),
        Utc::now(),
    );
    assert_eq!(d, Decision::Final(Verdict::valid()));
}

#[test]
fn an_optional_hwid_left_out_skips_the_hwid_rules_but_one_sent_is_checked() {
    let optional = |hwid| RequestFacts {
        hwid,
        ip: None,
        hwid_optional: true,
    };
    // Bound to H1 with a limit of 1: no HWID passes without binding, H1 passes, H2 mismatches.
    let l = license().facts();
    let d = decide(&app(), Some(&l), &empty(), optional(None), Utc::now());
    assert_eq!(d, Decision::Final(Verdict::valid()));
    let d = decide(&app(), Some(&l), &empty(), optional(Some("H1")), Utc::now());
    assert_eq!(d, Decision::Final(Verdict::valid()));
    assert_eq!(
        code(decide(
            &app(),
            Some(&l),
            &empty(),
            optional(Some("H2")),
            Utc::now()
        )),
        Code::HwidMismatch
    );
    // A first use without a HWID activates (used_at) but binds nothing.
    let mut fresh = license();
    fresh.used_at = None;
    fresh.hwids.clear();
    match decide(
        &app(),
        Some(&fresh.facts()),
        &empty(),
        optional(None),
        Utc::now(),
    ) {
        Decision::Activate(a) => assert_eq!(
            a,
            Activation {
                first_use: true,
                ..Activation::default()
            }
        ),
        d => panic!("expected a first-use activation, got {d:?}"),
    }
    // Not optional: the same request still needs a HWID.
    assert_eq!(
        code(decide(
            &app(),
            Some(&l),
            &empty(),
            facts(None, None),
            Utc::now()
        )),
        Code::HwidRequired
    );
}
