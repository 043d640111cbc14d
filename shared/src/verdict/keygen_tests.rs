use std::collections::HashSet;

use chrono::TimeZone;
use serde_json::{json, Value};

use super::*;
use crate::policy::Scope as Required;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 15, 12, 0, 0).unwrap()
}

fn mins(n: i64) -> Duration {
    Duration::minutes(n)
}

/// An owned machine the tests shape freely, lent to the rules as a [`KeygenMachine`].
#[derive(Clone)]
struct M {
    id: Uuid,
    fingerprint: String,
    owner_id: Option<Uuid>,
    cores: Option<i32>,
    memory: Option<i64>,
    disk: Option<i64>,
    processes: u32,
    created_at: DateTime<Utc>,
    last_heartbeat_at: Option<DateTime<Utc>>,
}

fn machine(fingerprint: &str) -> M {
    M {
        id: Uuid::new_v4(),
        fingerprint: fingerprint.into(),
        owner_id: None,
        cores: None,
        memory: None,
        disk: None,
        processes: 0,
        created_at: now() - Duration::days(1),
        last_heartbeat_at: None,
    }
}

impl M {
    fn pinged(mut self, ago: Duration) -> M {
        self.last_heartbeat_at = Some(now() - ago);
        self
    }

    fn owned_by(mut self, owner: Uuid) -> M {
        self.owner_id = Some(owner);
        self
    }

    fn view(&self) -> KeygenMachine<'_> {
        KeygenMachine {
            id: self.id,
            fingerprint: &self.fingerprint,
            owner_id: self.owner_id,
            cores: self.cores,
            memory: self.memory,
            disk: self.disk,
            processes: self.processes,
            created_at: self.created_at,
            last_heartbeat_at: self.last_heartbeat_at,
        }
    }
}

/// An owned license the tests shape freely, lent to the rules as a [`KeygenSubject`].
struct Lic {
    product_id: Uuid,
    policy: Policy,
    suspended: bool,
    owner_banned: bool,
    expires_at: Option<DateTime<Utc>>,
    last_check_in_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    owner: Option<(Uuid, String)>,
    users: Vec<(Uuid, String)>,
    entitlements: Vec<String>,
    machine_limit: Option<i32>,
    machines: Vec<M>,
}

/// Keygen's default policy (node-locked, not strict, no overage, MATCH_ANY, RESTRICT_ACCESS), no
/// owner, no machines.
fn lic() -> Lic {
    let product_id = Uuid::new_v4();
    Lic {
        product_id,
        policy: Policy::new(Uuid::new_v4(), product_id, "Pro".into()),
        suspended: false,
        owner_banned: false,
        expires_at: None,
        last_check_in_at: None,
        created_at: now() - Duration::days(3),
        owner: None,
        users: Vec::new(),
        entitlements: Vec::new(),
        machine_limit: Some(1),
        machines: Vec::new(),
    }
}

impl Lic {
    fn floating(mut self, max: Option<i32>) -> Lic {
        self.policy.floating = true;
        self.policy.max_machines = max;
        self.machine_limit = max;
        self
    }

    fn strict(mut self) -> Lic {
        self.policy.strict = true;
        self
    }

    fn overage(mut self, o: OverageStrategy) -> Lic {
        self.policy.overage_strategy = o;
        self
    }

    fn with(mut self, m: M) -> Lic {
        self.machines.push(m);
        self
    }

    fn machines(mut self, n: usize) -> Lic {
        for i in 0..n {
            self.machines.push(machine(&format!("FP{i}")));
        }
        self
    }

    fn require(mut self, scopes: &[Required]) -> Lic {
        self.policy.required_scopes = scopes.to_vec();
        self
    }

    fn owned(mut self) -> (Lic, Uuid) {
        let id = Uuid::new_v4();
        self.owner = Some((id, "Owner@Example.com".into()));
        (self, id)
    }

    fn expired(mut self, strategy: ExpirationStrategy) -> Lic {
        self.expires_at = Some(now() - Duration::days(1));
        self.policy.expiration_strategy = strategy;
        self
    }

    fn decide_at(&self, scoping: Scoping<'_>, at: DateTime<Utc>) -> KeygenVerdict {
        let owner = self.owner.as_ref().map(|(id, email)| KeygenUser {
            id: *id,
            email: Some(email),
        });
        let users: Vec<KeygenUser<'_>> = self
            .users
            .iter()
            .map(|(id, email)| KeygenUser {
                id: *id,
                email: Some(email),
            })
            .collect();
        let machines: Vec<KeygenMachine<'_>> = self.machines.iter().map(M::view).collect();
        let subject = KeygenSubject {
            id: Uuid::new_v4(),
            product_id: self.product_id,
            policy: &self.policy,
            suspended: self.suspended,
            owner_banned: self.owner_banned,
            expires_at: self.expires_at,
            last_check_in_at: self.last_check_in_at,
            created_at: self.created_at,
            owner,
            users: &users,
            entitlement_codes: &self.entitlements,
            machine_limit: self.machine_limit,
            machines: &machines,
        };
        decide(&subject, scoping, at)
    }

    /// A POST validation with this `meta.scope`.
    fn check(&self, scope: Value) -> KeygenVerdict {
        let scope: Scope = serde_json::from_value(scope).unwrap();
        self.decide_at(Scoping::Scoped(&scope), now())
    }

    fn quick(&self) -> KeygenVerdict {
        self.decide_at(Scoping::Quick, now())
    }
}

#[track_caller]
fn is(v: &KeygenVerdict, valid: bool, code: KeygenCode, detail: &str) {
    assert_eq!(
        (v.valid, v.code, v.detail.as_ref()),
        (valid, code, detail),
        "{v:?}"
    );
}

fn code(v: KeygenVerdict) -> KeygenCode {
    v.code
}

/// One scenario per code, each answered with Keygen's detail.
fn one_of_each() -> Vec<(KeygenVerdict, bool, KeygenCode, &'static str)> {
    use KeygenCode as C;
    let mut cases = Vec::new();
    let mut case = |v, valid, code, detail| cases.push((v, valid, code, detail));

    case(lic().check(json!({})), true, C::Valid, "is valid");
    case(not_found(), false, C::NotFound, "does not exist");
    let mut l = lic();
    l.owner_banned = true;
    case(l.check(json!({})), false, C::Banned, "is banned");
    let mut l = lic();
    l.suspended = true;
    case(l.check(json!({})), false, C::Suspended, "is suspended");
    case(
        lic()
            .expired(ExpirationStrategy::RestrictAccess)
            .check(json!({})),
        false,
        C::Expired,
        "is expired",
    );
    let mut l = lic();
    l.policy.require_check_in = true;
    l.policy.check_in_interval = Some(CheckInInterval::Day);
    l.policy.check_in_interval_count = Some(1);
    l.last_check_in_at = Some(now() - Duration::days(2));
    case(
        l.check(json!({})),
        false,
        C::Overdue,
        "is overdue for check in",
    );

    case(
        lic().check(json!({"environment": "production"})),
        false,
        C::EnvironmentScopeMismatch,
        "environment scope does not match",
    );
    case(
        lic().require(&[Required::Environment]).check(json!({})),
        false,
        C::EnvironmentScopeRequired,
        "environment scope is required",
    );
    case(
        lic().check(json!({"product": ""})),
        false,
        C::ProductScopeMismatch,
        "product scope does not match",
    );
    case(
        lic().require(&[Required::Product]).check(json!({})),
        false,
        C::ProductScopeRequired,
        "product scope is required",
    );
    case(
        lic().check(json!({"policy": Uuid::new_v4()})),
        false,
        C::PolicyScopeMismatch,
        "policy scope does not match",
    );
    case(
        lic().require(&[Required::Policy]).check(json!({})),
        false,
        C::PolicyScopeRequired,
        "policy scope is required",
    );
    case(
        lic().owned().0.check(json!({"user": "nobody@example.com"})),
        false,
        C::UserScopeMismatch,
        "user scope does not match",
    );
    case(
        lic().require(&[Required::User]).check(json!({})),
        false,
        C::UserScopeRequired,
        "user scope is required",
    );
    case(
        lic().check(json!({"entitlements": []})),
        false,
        C::EntitlementsScopeEmpty,
        "entitlements scope is empty",
    );
    let mut l = lic();
    l.entitlements = vec!["A".into()];
    case(
        l.check(json!({"entitlements": ["A", "B"]})),
        false,
        C::EntitlementsMissing,
        "is missing one or more required entitlements",
    );
    case(
        lic().machines(1).check(json!({"machine": Uuid::new_v4()})),
        false,
        C::MachineScopeMismatch,
        "machine is not activated (does not match any associated machines)",
    );
    case(
        lic().require(&[Required::Machine]).check(json!({})),
        false,
        C::MachineScopeRequired,
        "machine scope is required",
    );
    case(
        lic().machines(1).check(json!({"fingerprints": []})),
        false,
        C::FingerprintScopeEmpty,
        "fingerprint scope is empty",
    );
    case(
        lic().machines(1).check(json!({"fingerprint": "OTHER"})),
        false,
        C::FingerprintScopeMismatch,
        "fingerprint is not activated (does not match any associated machines)",
    );
    case(
        lic().require(&[Required::Fingerprint]).check(json!({})),
        false,
        C::FingerprintScopeRequired,
        "fingerprint scope is required",
    );
    case(
        lic()
            .machines(1)
            .check(json!({"fingerprint": "FP0", "components": []})),
        false,
        C::ComponentsScopeEmpty,
        "components scope is empty",
    );
    case(
        lic()
            .machines(1)
            .check(json!({"fingerprint": "FP0", "components": ["cpu:1234"]})),
        false,
        C::ComponentsScopeMismatch,
        "one or more component is not activated (does not match any associated components)",
    );
    case(
        lic().require(&[Required::Components]).check(json!({})),
        false,
        C::ComponentsScopeRequired,
        "components scope is required",
    );
    case(
        lic().check(json!({"checksum": "abc"})),
        false,
        C::ChecksumScopeMismatch,
        "checksum scope is not valid (does not match any accessible artifacts)",
    );
    case(
        lic().require(&[Required::Checksum]).check(json!({})),
        false,
        C::ChecksumScopeRequired,
        "checksum scope is required",
    );
    case(
        lic().check(json!({"version": "1.0.0"})),
        false,
        C::VersionScopeMismatch,
        "version scope is not valid (does not match any accessible releases)",
    );
    case(
        lic().require(&[Required::Version]).check(json!({})),
        false,
        C::VersionScopeRequired,
        "version scope is required",
    );
    let mut l = lic().machines(1);
    l.policy.require_heartbeat = true;
    case(
        l.check(json!({"fingerprint": "FP0"})),
        false,
        C::HeartbeatNotStarted,
        "machine heartbeat is required",
    );
    case(
        lic()
            .with(machine("FP0").pinged(mins(20)))
            .check(json!({"fingerprint": "FP0"})),
        false,
        C::HeartbeatDead,
        "machine heartbeat is dead",
    );
    case(
        lic().strict().check(json!({})),
        false,
        C::NoMachine,
        "must have exactly 1 associated machine",
    );
    case(
        lic().floating(Some(2)).strict().check(json!({})),
        false,
        C::NoMachines,
        "must have at least 1 associated machine",
    );
    case(
        lic()
            .floating(Some(1))
            .strict()
            .machines(2)
            .check(json!({})),
        false,
        C::TooManyMachines,
        "has too many associated machines",
    );
    let mut l = lic().floating(Some(2)).strict();
    l.policy.max_cores = Some(4);
    l.machines.push(M {
        cores: Some(8),
        ..machine("FP0")
    });
    case(
        l.check(json!({})),
        false,
        C::TooManyCores,
        "has too many associated machine cores",
    );
    let mut l = lic().floating(Some(2)).strict();
    l.policy.max_memory = Some(1 << 30);
    l.machines.push(M {
        memory: Some(1 << 31),
        ..machine("FP0")
    });
    case(
        l.check(json!({})),
        false,
        C::TooMuchMemory,
        "has too much associated machine memory",
    );
    let mut l = lic().floating(Some(2)).strict();
    l.policy.max_disk = Some(100);
    l.machines.push(M {
        disk: Some(101),
        ..machine("FP0")
    });
    case(
        l.check(json!({})),
        false,
        C::TooMuchDisk,
        "has too much associated machine disk",
    );
    let mut l = lic().floating(Some(2)).strict();
    l.policy.max_processes = Some(2);
    l.machines.push(M {
        processes: 3,
        ..machine("FP0")
    });
    case(
        l.check(json!({})),
        false,
        C::TooManyProcesses,
        "has too many associated processes",
    );
    let (mut l, _) = lic().owned();
    l.policy.max_users = Some(1);
    l.users.push((Uuid::new_v4(), "second@example.com".into()));
    case(
        l.check(json!({})),
        false,
        C::TooManyUsers,
        "has too many associated users",
    );
    cases
}

#[test]
fn each_code_is_answered_with_keygens_detail() {
    for (v, valid, code, detail) in one_of_each() {
        is(&v, valid, code, detail);
    }
}

#[test]
fn every_code_is_reachable() {
    let reached: HashSet<KeygenCode> = one_of_each().into_iter().map(|c| c.0.code).collect();
    let missing: Vec<_> = KeygenCode::ALL
        .iter()
        .filter(|c| !reached.contains(c))
        .collect();
    assert!(missing.is_empty(), "unreached: {missing:?}");
}

#[test]
fn codes_are_spelled_as_keygen_spells_them() {
    assert_eq!(KeygenCode::ALL.len(), 38);
    let names: HashSet<&str> = KeygenCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(names.len(), KeygenCode::ALL.len());
    for c in KeygenCode::ALL {
        assert!(c
            .as_str()
            .chars()
            .all(|ch| ch.is_ascii_uppercase() || ch == '_'));
        assert_eq!(serde_json::to_value(c).unwrap(), json!(c.as_str()));
    }
    let v = serde_json::to_value(not_found()).unwrap();
    assert_eq!(
        v,
        json!({"valid": false, "code": "NOT_FOUND", "detail": "does not exist"})
    );
}

// --- rules 2–5 and their order ---

#[test]
fn banned_owner_wins_over_everything_after() {
    let mut l = lic().expired(ExpirationStrategy::RevokeAccess);
    l.owner_banned = true;
    l.suspended = true;
    assert_eq!(code(l.check(json!({"product": ""}))), KeygenCode::Banned);
}

#[test]
fn suspension_wins_over_a_revoked_expiry() {
    let mut l = lic().expired(ExpirationStrategy::RevokeAccess);
    l.suspended = true;
    assert_eq!(code(l.check(json!({}))), KeygenCode::Suspended);
}

#[test]
fn revoked_expiry_fails_before_check_in_and_scopes() {
    let mut l = lic().expired(ExpirationStrategy::RevokeAccess);
    l.policy.require_check_in = true;
    l.policy.check_in_interval = Some(CheckInInterval::Day);
    l.policy.check_in_interval_count = Some(1);
    is(
        &l.check(json!({"product": ""})),
        false,
        KeygenCode::Expired,
        "is expired",
    );
    assert_eq!(code(l.quick()), KeygenCode::Expired);
}

#[test]
fn restricted_expiry_is_answered_after_scopes_and_machine_rules() {
    let l = lic().expired(ExpirationStrategy::RestrictAccess);
    assert_eq!(
        code(l.check(json!({"product": ""}))),
        KeygenCode::ProductScopeMismatch
    );
    let l = lic()
        .floating(Some(2))
        .strict()
        .expired(ExpirationStrategy::RestrictAccess);
    assert_eq!(code(l.check(json!({}))), KeygenCode::NoMachines);
}

#[test]
fn maintain_and_allow_access_answer_valid_but_expired() {
    for strategy in [
        ExpirationStrategy::MaintainAccess,
        ExpirationStrategy::AllowAccess,
    ] {
        let l = lic().expired(strategy);
        is(&l.check(json!({})), true, KeygenCode::Expired, "is expired");
        is(&l.quick(), true, KeygenCode::Expired, "is expired");
        // Still a failure of its own wins.
        assert_eq!(
            code(l.check(json!({"product": ""}))),
            KeygenCode::ProductScopeMismatch
        );
    }
    for strategy in [
        ExpirationStrategy::RestrictAccess,
        ExpirationStrategy::RevokeAccess,
    ] {
        is(
            &lic().expired(strategy).check(json!({})),
            false,
            KeygenCode::Expired,
            "is expired",
        );
    }
}

#[test]
fn expiry_takes_effect_at_its_instant() {
    let mut l = lic();
    l.expires_at = Some(now());
    assert_eq!(code(l.check(json!({}))), KeygenCode::Expired);
    l.expires_at = Some(now() + Duration::seconds(1));
    assert_eq!(code(l.check(json!({}))), KeygenCode::Valid);
}

fn checking_in(interval: CheckInInterval, count: i32, last: Option<DateTime<Utc>>) -> Lic {
    let mut l = lic();
    l.policy.require_check_in = true;
    l.policy.check_in_interval = Some(interval);
    l.policy.check_in_interval_count = Some(count);
    l.last_check_in_at = last;
    l
}

#[test]
fn check_in_is_overdue_after_interval_times_count() {
    use CheckInInterval as I;
    let cases = [
        (I::Day, 1, now() - Duration::hours(23), false),
        (I::Day, 1, now() - Duration::hours(25), true),
        (I::Week, 2, now() - Duration::days(13), false),
        (I::Week, 2, now() - Duration::days(15), true),
        // Calendar months: 15 Feb is exactly one month before 15 Mar.
        (I::Month, 1, now() - Duration::days(28), false),
        (
            I::Month,
            1,
            now() - Duration::days(28) - Duration::seconds(1),
            true,
        ),
        (I::Year, 1, now() - Duration::days(364), false),
        (I::Year, 1, now() - Duration::days(366), true),
    ];
    for (interval, count, last, overdue) in cases {
        let v = checking_in(interval, count, Some(last)).check(json!({}));
        let expected = if overdue {
            KeygenCode::Overdue
        } else {
            KeygenCode::Valid
        };
        assert_eq!(v.code, expected, "{interval:?} × {count}, last {last}");
    }
}

#[test]
fn never_checked_in_counts_from_creation() {
    let mut l = checking_in(CheckInInterval::Day, 1, None);
    l.created_at = now() - Duration::days(2);
    is(
        &l.check(json!({})),
        false,
        KeygenCode::Overdue,
        "is overdue for check in",
    );
    l.created_at = now() - Duration::hours(1);
    assert_eq!(code(l.check(json!({}))), KeygenCode::Valid);
}

#[test]
fn check_in_not_required_is_never_overdue() {
    let mut l = checking_in(CheckInInterval::Day, 1, Some(now() - Duration::days(400)));
    l.policy.require_check_in = false;
    assert_eq!(code(l.check(json!({}))), KeygenCode::Valid);
}

#[test]
fn overdue_wins_over_scopes_and_quick_validation_still_checks_it() {
    let l = checking_in(CheckInInterval::Day, 1, Some(now() - Duration::days(2)));
    assert_eq!(code(l.check(json!({"product": ""}))), KeygenCode::Overdue);
    assert_eq!(code(l.quick()), KeygenCode::Overdue);
}

// --- rule 6: scopes ---

#[test]
fn product_scope_matches_only_the_product_id() {
    let l = lic();
    for given in [json!(""), json!(Uuid::new_v4()), json!("not-a-uuid")] {
        is(
            &l.check(json!({ "product": given })),
            false,
            KeygenCode::ProductScopeMismatch,
            "product scope does not match",
        );
    }
    assert_eq!(
        code(l.check(json!({"product": l.product_id}))),
        KeygenCode::Valid
    );
    let upper = l.product_id.to_string().to_uppercase();
    assert_eq!(
        code(l.check(json!({ "product": upper }))),
        KeygenCode::Valid
    );
}

#[test]
fn policy_scope_matches_the_policy_id() {
    let l = lic().require(&[Required::Policy]);
    assert_eq!(
        code(l.check(json!({"policy": l.policy.id}))),
        KeygenCode::Valid
    );
    assert_eq!(
        code(l.check(json!({"policy": l.product_id}))),
        KeygenCode::PolicyScopeMismatch
    );
}

#[test]
fn user_scope_names_the_owner_or_a_user_by_id_or_email() {
    let (mut l, owner) = lic().owned();
    let user = Uuid::new_v4();
    l.users.push((user, "second@example.com".into()));
    for given in [
        json!(owner),
        json!(user),
        json!("owner@example.com"),
        json!("SECOND@example.com"),
    ] {
        assert_eq!(
            code(l.check(json!({ "user": given }))),
            KeygenCode::Valid,
            "{given}"
        );
    }
    for given in [json!(Uuid::new_v4()), json!("third@example.com"), json!("")] {
        assert_eq!(
            code(l.check(json!({ "user": given }))),
            KeygenCode::UserScopeMismatch,
            "{given}"
        );
    }
}

#[test]
fn entitlements_must_all_be_granted() {
    let mut l = lic();
    // The license's own codes and its policy's, as the caller merges them.
    l.entitlements = vec!["LICENSE_FEATURE".into(), "POLICY_FEATURE".into()];
    assert_eq!(
        code(l.check(json!({"entitlements": ["POLICY_FEATURE", "LICENSE_FEATURE"]}))),
        KeygenCode::Valid
    );
    assert_eq!(
        code(l.check(json!({"entitlements": ["policy_feature"]}))),
        KeygenCode::EntitlementsMissing
    );
    assert_eq!(
        code(l.check(json!({"entitlements": [null]}))),
        KeygenCode::EntitlementsScopeEmpty
    );
}

#[test]
fn environment_scope_matches_nothing_but_null_is_absent() {
    assert_eq!(
        code(lic().check(json!({"environment": null}))),
        KeygenCode::Valid
    );
    assert_eq!(
        code(lic().check(json!({"environment": ""}))),
        KeygenCode::EnvironmentScopeMismatch
    );
}

#[test]
fn machine_scope_without_machines() {
    is(
        &lic().check(json!({"machine": Uuid::new_v4()})),
        false,
        KeygenCode::NoMachine,
        "machine is not activated (has no associated machine)",
    );
    is(
        &lic()
            .floating(Some(3))
            .check(json!({"machine": Uuid::new_v4()})),
        false,
        KeygenCode::NoMachines,
        "machine is not activated (has no associated machines)",
    );
}

#[test]
fn machine_scope_checks_owner_then_heartbeat() {
    let (l, owner) = lic().floating(Some(5)).owned();
    let other = Uuid::new_v4();
    let mine = machine("A").owned_by(owner);
    let theirs = machine("B").owned_by(other);
    let unowned = machine("C");
    let l = l
        .with(mine.clone())
        .with(theirs.clone())
        .with(unowned.clone());

    assert_eq!(
        code(l.check(json!({"machine": mine.id, "user": owner}))),
        KeygenCode::Valid
    );
    assert_eq!(
        code(l.check(json!({"machine": unowned.id, "user": owner}))),
        KeygenCode::Valid
    );
    assert_eq!(
        code(l.check(json!({"machine": theirs.id}))),
        KeygenCode::Valid
    );
    is(
        &l.check(json!({"machine": theirs.id, "user": owner})),
        false,
        KeygenCode::UserScopeMismatch,
        "user scope does not match (does not match associated machine owner)",
    );
    // A fingerprint is not a machine id.
    assert_eq!(
        code(l.check(json!({"machine": "A"}))),
        KeygenCode::MachineScopeMismatch
    );

    let mut l = lic().with(unowned.clone());
    l.policy.require_heartbeat = true;
    is(
        &l.check(json!({"machine": unowned.id})),
        false,
        KeygenCode::HeartbeatNotStarted,
        "machine heartbeat is required",
    );
    l.machines[0].last_heartbeat_at = Some(now() - mins(11));
    is(
        &l.check(json!({"machine": unowned.id})),
        false,
        KeygenCode::HeartbeatDead,
        "machine heartbeat is dead",
    );
    l.machines[0].last_heartbeat_at = Some(now() - mins(1));
    assert_eq!(
        code(l.check(json!({"machine": unowned.id}))),
        KeygenCode::Valid
    );
}

#[test]
fn fingerprint_scope_without_machines() {
    is(
        &lic().check(json!({"fingerprint": "A"})),
        false,
        KeygenCode::NoMachine,
        "fingerprint is not activated (has no associated machine)",
    );
    is(
        &lic()
            .floating(Some(2))
            .check(json!({"fingerprints": ["A", "B"]})),
        false,
        KeygenCode::NoMachines,
        "fingerprint is not activated (has no associated machines)",
    );
}

#[test]
fn singular_fingerprint_wins_over_the_list() {
    let l = lic().with(machine("A"));
    assert_eq!(
        code(l.check(json!({"fingerprint": "A", "fingerprints": ["X", "Y"]}))),
        KeygenCode::Valid
    );
    assert_eq!(
        code(l.check(json!({"fingerprint": null, "fingerprints": ["X"]}))),
        KeygenCode::FingerprintScopeMismatch
    );
    assert_eq!(
        code(l.check(json!({"fingerprint": null, "fingerprints": [null]}))),
        KeygenCode::FingerprintScopeEmpty
    );
}

fn matching(strategy: MachineMatching) -> Lic {
    let mut l = lic()
        .floating(Some(5))
        .with(machine("A").pinged(mins(1)))
        .with(machine("B").pinged(mins(1)))
        .with(machine("DEAD").pinged(mins(30)));
    l.policy.machine_matching_strategy = strategy;
    l
}

#[test]
fn match_any_needs_one_alive_match() {
    let l = matching(MachineMatching::Any);
    assert_eq!(
        code(l.check(json!({"fingerprints": ["A", "X", "Y"]}))),
        KeygenCode::Valid
    );
    is(
        &l.check(json!({"fingerprints": ["X", "Y"]})),
        false,
        KeygenCode::FingerprintScopeMismatch,
        "one or more fingerprint is not activated (does not match any associated machines)",
    );
    // A dead match is no match, but not every fingerprint is dead either.
    assert_eq!(
        code(l.check(json!({"fingerprints": ["DEAD", "X"]}))),
        KeygenCode::FingerprintScopeMismatch
    );
}

#[test]
fn match_most_with_three_fingerprints_needs_two() {
    let l = matching(MachineMatching::Most);
    assert_eq!(
        code(l.check(json!({"fingerprints": ["A", "B", "X"]}))),
        KeygenCode::Valid
    );
    is(
        &l.check(json!({"fingerprints": ["A", "X", "Y"]})),
        false,
        KeygenCode::FingerprintScopeMismatch,
        "one or more fingerprint is not activated (does not match enough associated machines)",
    );
    // The dead machine does not count towards "most".
    assert_eq!(
        code(l.check(json!({"fingerprints": ["A", "DEAD", "X"]}))),
        KeygenCode::FingerprintScopeMismatch
    );
    // Four fingerprints: two are half, which is enough.
    assert_eq!(
        code(l.check(json!({"fingerprints": ["A", "B", "X", "Y"]}))),
        KeygenCode::Valid
    );
    // One fingerprint: one match.
    assert_eq!(
        code(l.check(json!({"fingerprint": "A"}))),
        KeygenCode::Valid
    );
}

#[test]
fn match_two_and_match_all() {
    let l = matching(MachineMatching::Two);
    assert_eq!(
        code(l.check(json!({"fingerprints": ["A", "B", "X"]}))),
        KeygenCode::Valid
    );
    is(
        &l.check(json!({"fingerprints": ["A", "X"]})),
        false,
        KeygenCode::FingerprintScopeMismatch,
        "one or more fingerprint is not activated (does not match at least 2 associated machines)",
    );
    let l = matching(MachineMatching::All);
    assert_eq!(
        code(l.check(json!({"fingerprints": ["A", "B"]}))),
        KeygenCode::Valid
    );
    is(
        &l.check(json!({"fingerprints": ["A", "B", "X"]})),
        false,
        KeygenCode::FingerprintScopeMismatch,
        "one or more fingerprint is not activated (does not match all associated machines)",
    );
    assert_eq!(
        code(l.check(json!({"fingerprints": ["A", "B", "DEAD"]}))),
        KeygenCode::FingerprintScopeMismatch
    );
}

#[test]
fn repeated_fingerprints_count_once() {
    let l = matching(MachineMatching::All);
    assert_eq!(
        code(l.check(json!({"fingerprints": ["A", "A", "A"]}))),
        KeygenCode::Valid
    );
}

#[test]
fn heartbeat_dead_only_when_every_fingerprint_is_dead() {
    let l = lic()
        .floating(Some(5))
        .with(machine("D1").pinged(mins(30)))
        .with(machine("D2").pinged(mins(30)))
        .with(machine("A").pinged(mins(1)));
    assert_eq!(
        code(l.check(json!({"fingerprints": ["D1", "D2"]}))),
        KeygenCode::HeartbeatDead
    );
    assert_eq!(
        code(l.check(json!({"fingerprints": ["D1", "A"]}))),
        KeygenCode::Valid
    );
}

#[test]
fn fingerprint_scope_checks_owners_of_alive_matches() {
    let (l, owner) = lic().floating(Some(5)).owned();
    let l = l
        .with(machine("MINE").owned_by(owner))
        .with(machine("FREE"))
        .with(machine("THEIRS").owned_by(Uuid::new_v4()))
        .with(
            machine("THEIRS_DEAD")
                .owned_by(Uuid::new_v4())
                .pinged(mins(30)),
        );
    assert_eq!(
        code(l.check(json!({"fingerprints": ["MINE", "FREE", "THEIRS_DEAD"], "user": owner}))),
        KeygenCode::Valid
    );
    is(
        &l.check(json!({"fingerprints": ["MINE", "THEIRS"], "user": owner})),
        false,
        KeygenCode::UserScopeMismatch,
        "user scope does not match (does not match associated machine owners)",
    );
    assert_eq!(
        code(l.check(json!({"fingerprints": ["MINE", "THEIRS"]}))),
        KeygenCode::Valid
    );
}

#[test]
fn fingerprint_heartbeat_not_started_only_when_required() {
    let mut l = lic()
        .floating(Some(5))
        .with(machine("NEW"))
        .with(machine("A").pinged(mins(1)));
    assert_eq!(
        code(l.check(json!({"fingerprint": "NEW"}))),
        KeygenCode::Valid
    );
    l.policy.require_heartbeat = true;
    assert_eq!(
        code(l.check(json!({"fingerprint": "NEW"}))),
        KeygenCode::HeartbeatNotStarted
    );
    assert_eq!(
        code(l.check(json!({"fingerprints": ["A", "NEW"]}))),
        KeygenCode::HeartbeatNotStarted
    );
    assert_eq!(
        code(l.check(json!({"fingerprint": "A"}))),
        KeygenCode::Valid
    );
}

#[test]
fn components_need_a_singular_fingerprint() {
    let l = lic().with(machine("A"));
    is(
        &l.check(json!({"fingerprints": ["A"], "components": ["cpu"]})),
        false,
        KeygenCode::FingerprintScopeRequired,
        "fingerprint scope is required when using the components scope",
    );
}

#[test]
fn scope_rules_run_in_keygen_order() {
    use KeygenCode as C;
    let (l, _) = lic().owned();
    let l = l.with(machine("A"));
    let mut scope = json!({
        "environment": "production",
        "product": "",
        "policy": "",
        "user": "nobody",
        "entitlements": ["MISSING"],
        "machine": Uuid::new_v4(),
        "fingerprint": "X",
        "components": ["cpu"],
        "checksum": "abc",
        "version": "1.0.0",
    });
    let order = [
        ("environment", C::EnvironmentScopeMismatch),
        ("product", C::ProductScopeMismatch),
        ("policy", C::PolicyScopeMismatch),
        ("user", C::UserScopeMismatch),
        ("entitlements", C::EntitlementsMissing),
        ("machine", C::MachineScopeMismatch),
        ("fingerprint", C::FingerprintScopeMismatch),
        ("components", C::FingerprintScopeRequired),
        ("checksum", C::ChecksumScopeMismatch),
        ("version", C::VersionScopeMismatch),
    ];
    for (key, expected) in order {
        assert_eq!(code(l.check(scope.clone())), expected, "with {key}");
        if let Some(map) = scope.as_object_mut() {
            map.remove(key);
        }
    }
    assert_eq!(code(l.check(scope)), C::Valid);
}

#[test]
fn required_scopes_fail_in_keygen_order_when_nothing_is_sent() {
    use KeygenCode as C;
    use Required as R;
    let mut required = vec![
        (R::Environment, C::EnvironmentScopeRequired),
        (R::Product, C::ProductScopeRequired),
        (R::Policy, C::PolicyScopeRequired),
        (R::User, C::UserScopeRequired),
        (R::Machine, C::MachineScopeRequired),
        (R::Fingerprint, C::FingerprintScopeRequired),
        (R::Components, C::ComponentsScopeRequired),
        (R::Checksum, C::ChecksumScopeRequired),
        (R::Version, C::VersionScopeRequired),
    ];
    // Stored in any order: the rules' order decides.
    required.reverse();
    while let Some(&(_, expected)) = required.last() {
        let scopes: Vec<R> = required.iter().map(|r| r.0).collect();
        let l = lic().require(&scopes);
        assert_eq!(code(l.check(json!({}))), expected);
        // null counts as absent.
        assert_eq!(
            code(l.check(json!({"product": null, "fingerprint": null}))),
            expected
        );
        required.pop();
    }
}

#[test]
fn quick_validation_skips_every_scope_check() {
    use Required as R;
    let l = lic().require(&[
        R::Environment,
        R::Product,
        R::Policy,
        R::User,
        R::Machine,
        R::Fingerprint,
        R::Components,
        R::Checksum,
        R::Version,
    ]);
    assert_eq!(
        code(l.check(json!({}))),
        KeygenCode::EnvironmentScopeRequired
    );
    is(&l.quick(), true, KeygenCode::Valid, "is valid");
    // The rest still applies.
    let l = lic().require(&[R::Product]).strict();
    assert_eq!(code(l.quick()), KeygenCode::NoMachine);
}

#[test]
fn scope_failures_win_over_limits() {
    let (mut l, _) = lic().owned();
    l.policy.max_users = Some(1);
    l.users.push((Uuid::new_v4(), "b@example.com".into()));
    let l = l.strict();
    assert_eq!(
        code(l.check(json!({"product": ""}))),
        KeygenCode::ProductScopeMismatch
    );
    assert_eq!(code(l.check(json!({}))), KeygenCode::TooManyUsers);
}

#[test]
fn scope_parses_keygen_json() {
    let scope: Scope = serde_json::from_value(json!({
        "product": "p", "policy": "q", "user": "u", "machine": "m",
        "fingerprint": "f", "fingerprints": ["f1", null, "f2"], "components": ["c"],
        "entitlements": ["E"], "checksum": "sum", "version": "1.2.3", "environment": null,
        "somethingNew": {"ignored": true}
    }))
    .unwrap();
    assert_eq!(
        scope,
        Scope {
            product: Some("p".into()),
            policy: Some("q".into()),
            user: Some("u".into()),
            machine: Some("m".into()),
            fingerprint: Some("f".into()),
            fingerprints: Some(vec!["f1".into(), "f2".into()]),
            components: Some(vec!["c".into()]),
            entitlements: Some(vec!["E".into()]),
            checksum: Some("sum".into()),
            version: Some("1.2.3".into()),
            environment: None,
        }
    );
    let empty: Scope = serde_json::from_value(json!({})).unwrap();
    assert_eq!(empty, Scope::default());
    let nulls: Scope = serde_json::from_value(json!({"fingerprints": null})).unwrap();
    assert_eq!(nulls, Scope::default());
}

// --- rules 7–11: users, machines, resources, expiry ---

#[test]
fn too_many_users_counts_the_owner_once_and_honours_overage() {
    let (mut l, owner) = lic().owned();
    l.policy.max_users = Some(2);
    l.users.push((owner, "owner@example.com".into()));
    l.users.push((Uuid::new_v4(), "b@example.com".into()));
    assert_eq!(code(l.check(json!({}))), KeygenCode::Valid);
    l.users.push((Uuid::new_v4(), "c@example.com".into()));
    is(
        &l.check(json!({})),
        false,
        KeygenCode::TooManyUsers,
        "has too many associated users",
    );
    let l = l.overage(OverageStrategy::Allow2x);
    is(
        &l.check(json!({})),
        true,
        KeygenCode::TooManyUsers,
        "has too many associated users",
    );
}

#[test]
fn node_locked_overage_allows_2x_and_always_but_not_fractions() {
    let l = lic().strict().machines(2);
    is(
        &l.check(json!({})),
        false,
        KeygenCode::TooManyMachines,
        "has too many associated machines",
    );
    let l = l.overage(OverageStrategy::Allow2x);
    is(
        &l.check(json!({})),
        true,
        KeygenCode::TooManyMachines,
        "has too many associated machines",
    );
    let l = l.machines(1);
    assert!(!l.check(json!({})).valid, "3 machines exceed 2× of 1");
    let l = l.overage(OverageStrategy::AlwaysAllow).machines(5);
    is(
        &l.check(json!({})),
        true,
        KeygenCode::TooManyMachines,
        "has too many associated machines",
    );
    // 1.25× and 1.5× are refused on a node-locked policy; if one were stored, 2 > 1.25 or 1.5.
    for o in [OverageStrategy::Allow1_25x, OverageStrategy::Allow1_5x] {
        let l = lic().strict().machines(2).overage(o);
        assert!(l.policy.check().is_err());
        assert!(!l.check(json!({})).valid);
    }
    // The node-locked limit is 1 whatever the machine limit says.
    let mut l = lic().strict().machines(2);
    l.machine_limit = Some(5);
    assert_eq!(code(l.check(json!({}))), KeygenCode::TooManyMachines);
}

#[test]
fn floating_overage_allowances() {
    let cases = [
        (OverageStrategy::Allow2x, 1, 2, true),
        (OverageStrategy::Allow2x, 1, 3, false),
        (OverageStrategy::Allow1_25x, 4, 5, true),
        (OverageStrategy::Allow1_25x, 4, 6, false),
        (OverageStrategy::Allow1_5x, 2, 3, true),
        (OverageStrategy::Allow1_5x, 2, 4, false),
        (OverageStrategy::AlwaysAllow, 1, 50, true),
        (OverageStrategy::NoOverage, 4, 5, false),
    ];
    for (overage, max, machines, valid) in cases {
        let l = lic()
            .floating(Some(max))
            .strict()
            .overage(overage)
            .machines(machines);
        assert!(l.policy.check().is_ok(), "{overage:?}");
        let v = l.check(json!({}));
        assert_eq!(
            (v.valid, v.code),
            (valid, KeygenCode::TooManyMachines),
            "{overage:?}: {machines} of {max}"
        );
    }
    // Within the limit there is nothing to allow.
    let l = lic().floating(Some(4)).strict().machines(4);
    assert_eq!(code(l.check(json!({}))), KeygenCode::Valid);
}

#[test]
fn license_machine_limit_overrides_the_policys() {
    let mut l = lic().floating(Some(5)).strict().machines(3);
    l.machine_limit = Some(2);
    assert_eq!(code(l.check(json!({}))), KeygenCode::TooManyMachines);
    l.machine_limit = None;
    assert_eq!(code(l.check(json!({}))), KeygenCode::Valid);
}

#[test]
fn strict_machine_count_includes_dead_machines() {
    // A dead machine holds its slot until it is culled (deleted), as in Keygen.
    let l = lic()
        .floating(Some(1))
        .strict()
        .with(machine("A").pinged(mins(1)))
        .with(machine("B").pinged(mins(60)));
    assert_eq!(code(l.check(json!({}))), KeygenCode::TooManyMachines);
}

#[test]
fn non_strict_policies_ignore_machine_limits() {
    let mut l = lic().floating(Some(1)).machines(3);
    l.policy.max_cores = Some(1);
    l.machines[0].cores = Some(64);
    assert_eq!(code(l.check(json!({}))), KeygenCode::Valid);
    assert_eq!(code(lic().check(json!({}))), KeygenCode::Valid);
}

#[test]
fn resources_sum_over_machines_and_honour_overage() {
    let mut l = lic().floating(Some(5)).strict();
    l.policy.max_cores = Some(8);
    l.machines.push(M {
        cores: Some(6),
        ..machine("A")
    });
    l.machines.push(M {
        cores: Some(4),
        ..machine("B")
    });
    l.machines.push(machine("NO_CORES"));
    assert_eq!(code(l.check(json!({}))), KeygenCode::TooManyCores);
    let l = l.overage(OverageStrategy::Allow2x);
    is(
        &l.check(json!({})),
        true,
        KeygenCode::TooManyCores,
        "has too many associated machine cores",
    );
}

#[test]
fn processes_count_per_machine() {
    let mut l = lic().floating(Some(5)).strict();
    l.policy.max_processes = Some(2);
    l.machines.push(M {
        processes: 2,
        ..machine("A")
    });
    l.machines.push(M {
        processes: 2,
        ..machine("B")
    });
    assert_eq!(code(l.check(json!({}))), KeygenCode::Valid);
    l.machines[1].processes = 3;
    assert_eq!(code(l.check(json!({}))), KeygenCode::TooManyProcesses);
}

#[test]
fn machine_rules_come_in_keygen_order() {
    // Users before machines; machines before cores; cores before memory before disk before
    // processes.
    let (mut l, _) = lic().floating(Some(1)).strict().owned();
    l.policy.max_users = Some(1);
    l.users.push((Uuid::new_v4(), "b@example.com".into()));
    l.policy.max_cores = Some(1);
    l.policy.max_memory = Some(1);
    l.policy.max_disk = Some(1);
    l.policy.max_processes = Some(1);
    for _ in 0..2 {
        l.machines.push(M {
            cores: Some(2),
            memory: Some(2),
            disk: Some(2),
            processes: 2,
            ..machine("X")
        });
    }
    let mut seen = Vec::new();
    seen.push(code(l.check(json!({}))));
    l.policy.max_users = None;
    seen.push(code(l.check(json!({}))));
    l.machine_limit = None;
    seen.push(code(l.check(json!({}))));
    l.policy.max_cores = None;
    seen.push(code(l.check(json!({}))));
    l.policy.max_memory = None;
    seen.push(code(l.check(json!({}))));
    l.policy.max_disk = None;
    seen.push(code(l.check(json!({}))));
    l.policy.max_processes = None;
    seen.push(code(l.check(json!({}))));
    use KeygenCode as C;
    assert_eq!(
        seen,
        [
            C::TooManyUsers,
            C::TooManyMachines,
            C::TooManyCores,
            C::TooMuchMemory,
            C::TooMuchDisk,
            C::TooManyProcesses,
            C::Valid
        ]
    );
}

#[test]
fn an_allowed_overage_does_not_hide_a_later_failure() {
    let l = lic()
        .floating(Some(1))
        .strict()
        .overage(OverageStrategy::Allow2x)
        .machines(2);
    assert!(l.check(json!({})).valid);
    // Expired under RESTRICT_ACCESS: Keygen would answer the allowed overage, valid.
    let l = l.expired(ExpirationStrategy::RestrictAccess);
    is(
        &l.check(json!({})),
        false,
        KeygenCode::Expired,
        "is expired",
    );
    // Cores beyond even the allowance.
    let mut l = lic()
        .floating(Some(1))
        .strict()
        .overage(OverageStrategy::Allow2x)
        .machines(2);
    l.policy.max_cores = Some(2);
    l.machines[0].cores = Some(5);
    assert_eq!(
        (l.check(json!({})).valid, l.check(json!({})).code),
        (false, KeygenCode::TooManyCores)
    );
}

#[test]
fn the_first_allowed_overage_is_answered_when_nothing_fails() {
    let (mut l, _) = lic()
        .floating(Some(1))
        .strict()
        .overage(OverageStrategy::Allow2x)
        .machines(2)
        .expired(ExpirationStrategy::MaintainAccess)
        .owned();
    is(
        &l.check(json!({})),
        true,
        KeygenCode::TooManyMachines,
        "has too many associated machines",
    );
    l.policy.max_users = Some(1);
    l.users.push((Uuid::new_v4(), "b@example.com".into()));
    is(
        &l.check(json!({})),
        true,
        KeygenCode::TooManyUsers,
        "has too many associated users",
    );
}

// --- heartbeats ---

fn heartbeat_policy() -> Policy {
    Policy::new(Uuid::new_v4(), Uuid::new_v4(), "HB".into())
}

#[test]
fn heartbeat_alive_until_the_duration_passes() {
    let p = heartbeat_policy();
    assert_eq!(p.heartbeat_duration_secs, 600);
    let status = |ago: Duration| heartbeat_status(&machine("A").pinged(ago).view(), &p, now());
    assert_eq!(status(mins(1)), HeartbeatStatus::Alive);
    assert_eq!(status(mins(10)), HeartbeatStatus::Alive);
    assert_eq!(
        status(mins(10) + Duration::seconds(1)),
        HeartbeatStatus::Dead
    );
    let mut p = heartbeat_policy();
    p.heartbeat_duration_secs = 60;
    let m = machine("A").pinged(Duration::seconds(61));
    assert_eq!(
        heartbeat_status(&m.view(), &p, now()),
        HeartbeatStatus::Dead
    );
    assert_eq!(
        next_heartbeat_at(&m.view(), &p),
        Some(now() - Duration::seconds(1))
    );
}

#[test]
fn unpinged_machines_are_not_started_unless_required_from_creation() {
    let mut p = heartbeat_policy();
    let mut m = machine("A");
    m.created_at = now() - Duration::days(365);
    assert_eq!(
        heartbeat_status(&m.view(), &p, now()),
        HeartbeatStatus::NotStarted
    );
    assert_eq!(next_heartbeat_at(&m.view(), &p), None);
    p.require_heartbeat = true;
    // From the first ping (the default): the clock has not started.
    assert_eq!(
        heartbeat_status(&m.view(), &p, now()),
        HeartbeatStatus::NotStarted
    );
    p.heartbeat_basis = HeartbeatBasis::FromCreation;
    assert_eq!(
        heartbeat_status(&m.view(), &p, now()),
        HeartbeatStatus::Dead
    );
    m.created_at = now() - mins(9);
    assert_eq!(
        heartbeat_status(&m.view(), &p, now()),
        HeartbeatStatus::NotStarted
    );
    m.created_at = now() - mins(11);
    assert_eq!(
        heartbeat_status(&m.view(), &p, now()),
        HeartbeatStatus::Dead
    );
}

#[test]
fn a_pinged_machine_dies_even_when_heartbeats_are_not_required() {
    let p = heartbeat_policy();
    assert!(!p.require_heartbeat);
    let m = machine("A").pinged(mins(30));
    assert_eq!(
        heartbeat_status(&m.view(), &p, now()),
        HeartbeatStatus::Dead
    );
}

#[test]
fn ping_revives_a_dead_machine_only_within_the_resurrection_window() {
    use HeartbeatResurrection as R;
    let mut p = heartbeat_policy();
    // Died 4 minutes ago (last ping 14 minutes ago, 10-minute duration).
    let dead = machine("A").pinged(mins(14));
    let alive = machine("B").pinged(mins(1));
    let unstarted = machine("C");
    let cases = [
        (R::NoRevive, None),
        (R::OneMinute, None),
        (R::TwoMinutes, None),
        (R::FiveMinutes, Some(HeartbeatStatus::Resurrected)),
        (R::TenMinutes, Some(HeartbeatStatus::Resurrected)),
        (R::FifteenMinutes, Some(HeartbeatStatus::Resurrected)),
        (R::AlwaysRevive, Some(HeartbeatStatus::Resurrected)),
    ];
    for (strategy, expected) in cases {
        p.heartbeat_resurrection_strategy = strategy;
        assert_eq!(
            ping_status(&dead.view(), &p, now()),
            expected,
            "{strategy:?}"
        );
        assert_eq!(
            ping_status(&alive.view(), &p, now()),
            Some(HeartbeatStatus::Alive)
        );
        assert_eq!(
            ping_status(&unstarted.view(), &p, now()),
            Some(HeartbeatStatus::Alive)
        );
    }
    // The window's end is inclusive; always means even a year later.
    p.heartbeat_resurrection_strategy = R::FiveMinutes;
    let edge = machine("A").pinged(mins(15));
    assert_eq!(
        ping_status(&edge.view(), &p, now()),
        Some(HeartbeatStatus::Resurrected)
    );
    let late = machine("A").pinged(mins(15) + Duration::seconds(1));
    assert_eq!(ping_status(&late.view(), &p, now()), None);
    p.heartbeat_resurrection_strategy = R::AlwaysRevive;
    let ancient = machine("A").pinged(Duration::days(365));
    assert_eq!(
        ping_status(&ancient.view(), &p, now()),
        Some(HeartbeatStatus::Resurrected)
    );
}

#[test]
fn heartbeat_statuses_are_spelled_as_keygen_spells_them() {
    let names: Vec<&str> = [
        HeartbeatStatus::NotStarted,
        HeartbeatStatus::Alive,
        HeartbeatStatus::Dead,
        HeartbeatStatus::Resurrected,
    ]
    .iter()
    .map(|s| s.as_str())
    .collect();
    assert_eq!(names, ["NOT_STARTED", "ALIVE", "DEAD", "RESURRECTED"]);
}

#[test]
fn from_machine_reads_the_model() {
    let stored = Machine {
        id: Uuid::new_v4(),
        license_id: Uuid::new_v4(),
        app_id: Uuid::new_v4(),
        fingerprint: "HW-1".into(),
        name: None,
        hostname: None,
        platform: None,
        ip: None,
        cores: Some(4),
        memory: Some(8 << 30),
        disk: Some(1 << 40),
        metadata: Default::default(),
        bound_by: "api".into(),
        last_heartbeat_at: Some(now()),
        last_check_out_at: None,
        created_at: now() - Duration::days(1),
        updated_at: now(),
    };
    let m = KeygenMachine::from_machine(&stored);
    assert_eq!(
        (m.id, m.fingerprint, m.cores, m.memory, m.disk),
        (stored.id, "HW-1", Some(4), Some(8 << 30), Some(1 << 40))
    );
    assert_eq!(
        (m.owner_id, m.processes, m.created_at, m.last_heartbeat_at),
        (None, 0, stored.created_at, Some(now()))
    );
}

#[test]
fn overage_arithmetic_is_exact() {
    use OverageStrategy as O;
    assert!(overage_allows(O::Allow1_25x, 125, 100));
    assert!(!overage_allows(O::Allow1_25x, 126, 100));
    assert!(overage_allows(O::Allow1_5x, 150, 100));
    assert!(!overage_allows(O::Allow1_5x, 151, 100));
    assert!(overage_allows(
        O::Allow2x,
        i128::from(i64::MAX) * 2,
        i128::from(i64::MAX)
    ));
    assert!(!overage_allows(O::NoOverage, 101, 100));
    assert!(overage_allows(O::AlwaysAllow, i128::MAX / 8, 1));
}
