//! Keygen's validation decision (`validate`, `validate-key`, and the scope-less `GET validate`):
//! one pure function of a license's facts, the request's scope and `now`.
//!
//! Rules run in Keygen's order and the first failure wins: owner banned → suspended → expired
//! under `REVOKE_ACCESS` → check-in overdue → scopes (environment, product, policy, user,
//! entitlements, machine, fingerprint(s), components, checksum, version) → too many users → for a
//! strict policy the machine, core, memory, disk and process limits → expired → valid. `valid`
//! and `code` are independent: an allowed overage or an expiry under `MAINTAIN_ACCESS`/
//! `ALLOW_ACCESS` answers `valid: true` with its own code. `NOT_FOUND` is the caller's
//! ([`not_found`]): there is no license to decide on.
//!
//! Where Keyward differs from Keygen, on purpose:
//! - An allowed overage does not end the decision: Keygen answers it at once, so an expired
//!   `RESTRICT_ACCESS` license with one machine too many under a 2× overage would be valid.
//!   Here a later failure still wins; the overage code is answered only when nothing fails.
//! - A license expires at its expiry instant (Keygen: just after it), as in [`super::decide`],
//!   so every facade answers the same for the same license at the same time.
//! - A license never checked in is overdue one interval after its creation (Keygen never flags
//!   it, so a client could dodge a required check-in by never making the first one).
//! - In a scope, `null` is taken as absent.
//! - Keyward has no environments, releases, artifacts or components yet: an environment,
//!   checksum, version or components scope matches nothing (what Keygen answers for a license
//!   with none), and requiring one makes every scoped validation fail.
//! - The policy has no machine or process leasing strategy: machines count per license and
//!   processes per machine, Keygen's defaults; components match as `MATCH_ANY` would.

use std::borrow::Cow;

use chrono::{DateTime, Duration, Months, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::model::Machine;
use crate::policy::{
    self, CheckInInterval, ExpirationStrategy, HeartbeatBasis, HeartbeatResurrection,
    MachineMatching, OverageStrategy, Policy,
};

/// Declares the code enum from one list, so `as_str`, `ALL` and serde cannot disagree.
macro_rules! codes {
    ($($variant:ident = $text:literal),+ $(,)?) => {
        /// Keygen's validation codes (`meta.code`), spelled as Keygen spells them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum KeygenCode { $($variant),+ }

        impl KeygenCode {
            pub const ALL: &'static [KeygenCode] = &[$(KeygenCode::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(KeygenCode::$variant => $text),+ }
            }
        }
    };
}

codes! {
    Valid = "VALID",
    NotFound = "NOT_FOUND",
    Banned = "BANNED",
    Suspended = "SUSPENDED",
    Expired = "EXPIRED",
    Overdue = "OVERDUE",
    EnvironmentScopeMismatch = "ENVIRONMENT_SCOPE_MISMATCH",
    EnvironmentScopeRequired = "ENVIRONMENT_SCOPE_REQUIRED",
    ProductScopeMismatch = "PRODUCT_SCOPE_MISMATCH",
    ProductScopeRequired = "PRODUCT_SCOPE_REQUIRED",
    PolicyScopeMismatch = "POLICY_SCOPE_MISMATCH",
    PolicyScopeRequired = "POLICY_SCOPE_REQUIRED",
    UserScopeMismatch = "USER_SCOPE_MISMATCH",
    UserScopeRequired = "USER_SCOPE_REQUIRED",
    EntitlementsScopeEmpty = "ENTITLEMENTS_SCOPE_EMPTY",
    EntitlementsMissing = "ENTITLEMENTS_MISSING",
    MachineScopeMismatch = "MACHINE_SCOPE_MISMATCH",
    MachineScopeRequired = "MACHINE_SCOPE_REQUIRED",
    FingerprintScopeEmpty = "FINGERPRINT_SCOPE_EMPTY",
    FingerprintScopeMismatch = "FINGERPRINT_SCOPE_MISMATCH",
    FingerprintScopeRequired = "FINGERPRINT_SCOPE_REQUIRED",
    ComponentsScopeEmpty = "COMPONENTS_SCOPE_EMPTY",
    ComponentsScopeMismatch = "COMPONENTS_SCOPE_MISMATCH",
    ComponentsScopeRequired = "COMPONENTS_SCOPE_REQUIRED",
    ChecksumScopeMismatch = "CHECKSUM_SCOPE_MISMATCH",
    ChecksumScopeRequired = "CHECKSUM_SCOPE_REQUIRED",
    VersionScopeMismatch = "VERSION_SCOPE_MISMATCH",
    VersionScopeRequired = "VERSION_SCOPE_REQUIRED",
    HeartbeatNotStarted = "HEARTBEAT_NOT_STARTED",
    HeartbeatDead = "HEARTBEAT_DEAD",
    NoMachine = "NO_MACHINE",
    NoMachines = "NO_MACHINES",
    TooManyMachines = "TOO_MANY_MACHINES",
    TooManyCores = "TOO_MANY_CORES",
    TooMuchMemory = "TOO_MUCH_MEMORY",
    TooMuchDisk = "TOO_MUCH_DISK",
    TooManyProcesses = "TOO_MANY_PROCESSES",
    TooManyUsers = "TOO_MANY_USERS",
}

impl Serialize for KeygenCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// `meta.valid`, `meta.code` and `meta.detail` of a validation answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeygenVerdict {
    pub valid: bool,
    pub code: KeygenCode,
    pub detail: Cow<'static, str>,
}

impl KeygenVerdict {
    fn new(valid: bool, code: KeygenCode, detail: &'static str) -> Self {
        KeygenVerdict {
            valid,
            code,
            detail: Cow::Borrowed(detail),
        }
    }

    fn fail(code: KeygenCode, detail: &'static str) -> Self {
        KeygenVerdict::new(false, code, detail)
    }
}

/// The answer for a key or id that names no license (Keygen answers it with `data: null`).
pub fn not_found() -> KeygenVerdict {
    KeygenVerdict::fail(KeygenCode::NotFound, "does not exist")
}

/// A user of a license: its owner or one of its users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeygenUser<'a> {
    pub id: Uuid,
    /// A user scope may name a user by email as well as by id.
    pub email: Option<&'a str>,
}

/// A machine of the license, as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeygenMachine<'a> {
    pub id: Uuid,
    pub fingerprint: &'a str,
    pub owner_id: Option<Uuid>,
    pub cores: Option<i32>,
    pub memory: Option<i64>,
    pub disk: Option<i64>,
    /// Its live processes (Keyward tracks none yet: 0).
    pub processes: u32,
    pub created_at: DateTime<Utc>,
    pub last_heartbeat_at: Option<DateTime<Utc>>,
}

impl<'a> KeygenMachine<'a> {
    /// A stored machine; machines have no owner and no processes in the model yet.
    pub fn from_machine(m: &'a Machine) -> Self {
        KeygenMachine {
            id: m.id,
            fingerprint: &m.fingerprint,
            owner_id: None,
            cores: m.cores,
            memory: m.memory,
            disk: m.disk,
            processes: 0,
            created_at: m.created_at,
            last_heartbeat_at: m.last_heartbeat_at,
        }
    }
}

/// What the rules read of a license.
#[derive(Debug, Clone, Copy)]
pub struct KeygenSubject<'a> {
    pub id: Uuid,
    /// Keygen's product: the license's app.
    pub product_id: Uuid,
    pub policy: &'a Policy,
    pub suspended: bool,
    pub owner_banned: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_check_in_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub owner: Option<KeygenUser<'a>>,
    /// The license's users; the owner may be listed again (it is counted once).
    pub users: &'a [KeygenUser<'a>],
    /// The license's own entitlement codes and its policy's.
    pub entitlement_codes: &'a [String],
    /// The effective machine limit of a floating license: its own override, else the policy's
    /// `max_machines` (`License::hwid_limit`, 0 → `None`); `None`: no limit. A node-locked
    /// license has exactly one, whatever this says.
    pub machine_limit: Option<i32>,
    pub machines: &'a [KeygenMachine<'a>],
}

/// `meta.scope` of a validation request. Every key is optional, `null` counts as absent and
/// unknown keys are ignored; `null`s inside the lists are dropped (Keygen compacts them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Scope {
    pub product: Option<String>,
    pub policy: Option<String>,
    /// A user id or email.
    pub user: Option<String>,
    /// A machine id.
    pub machine: Option<String>,
    pub fingerprint: Option<String>,
    #[serde(deserialize_with = "compact")]
    pub fingerprints: Option<Vec<String>>,
    #[serde(deserialize_with = "compact")]
    pub components: Option<Vec<String>>,
    #[serde(deserialize_with = "compact")]
    pub entitlements: Option<Vec<String>>,
    pub checksum: Option<String>,
    pub version: Option<String>,
    pub environment: Option<String>,
}

fn compact<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let list = Option::<Vec<Option<String>>>::deserialize(d)?;
    Ok(list.map(|v| v.into_iter().flatten().collect()))
}

/// Whether the scope is checked at all.
#[derive(Debug, Clone, Copy)]
pub enum Scoping<'a> {
    /// `GET …/actions/validate`: no scope checks, not even the policy's required scopes.
    Quick,
    /// `POST` validate and validate-key: the request's scope (empty when none was sent, so the
    /// required scopes still apply).
    Scoped(&'a Scope),
}

/// A machine's heartbeat, as Keygen reports it (`heartbeatStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeartbeatStatus {
    NotStarted,
    Alive,
    Dead,
    /// Dead, then brought back by a ping within the resurrection window; only a ping's own
    /// answer says it ([`ping_status`]): afterwards the machine is simply alive.
    Resurrected,
}

impl HeartbeatStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HeartbeatStatus::NotStarted => "NOT_STARTED",
            HeartbeatStatus::Alive => "ALIVE",
            HeartbeatStatus::Dead => "DEAD",
            HeartbeatStatus::Resurrected => "RESURRECTED",
        }
    }
}

/// When the machine must ping next (`nextHeartbeat`); past it the machine is dead. `None`:
/// its heartbeat has not started and nothing makes it die (it never pinged, and either the
/// policy does not require a heartbeat or its clock starts at the first ping).
pub fn next_heartbeat_at(machine: &KeygenMachine<'_>, policy: &Policy) -> Option<DateTime<Utc>> {
    let duration = Duration::try_seconds(i64::from(policy.heartbeat_duration_secs))?;
    match machine.last_heartbeat_at {
        Some(at) => at.checked_add_signed(duration),
        None if policy.require_heartbeat
            && policy.heartbeat_basis == HeartbeatBasis::FromCreation =>
        {
            machine.created_at.checked_add_signed(duration)
        }
        None => None,
    }
}

/// The machine's heartbeat now: not started, alive, or dead (never `Resurrected`, see there).
pub fn heartbeat_status(
    machine: &KeygenMachine<'_>,
    policy: &Policy,
    now: DateTime<Utc>,
) -> HeartbeatStatus {
    match (
        machine.last_heartbeat_at,
        next_heartbeat_at(machine, policy),
    ) {
        (_, Some(next)) if next < now => HeartbeatStatus::Dead,
        (Some(_), _) => HeartbeatStatus::Alive,
        (None, _) => HeartbeatStatus::NotStarted,
    }
}

/// What a ping at `now` makes of the machine: `Alive`, `Resurrected` (it was dead and the
/// policy's resurrection strategy revives it), or `None`: dead for good, the ping is refused
/// (`MACHINE_HEARTBEAT_DEAD`). The window runs from the moment the machine died (Keygen: from
/// when its death was recorded, a few seconds later).
pub fn ping_status(
    machine: &KeygenMachine<'_>,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Option<HeartbeatStatus> {
    if heartbeat_status(machine, policy, now) != HeartbeatStatus::Dead {
        return Some(HeartbeatStatus::Alive);
    }
    let window_secs = match policy.heartbeat_resurrection_strategy {
        HeartbeatResurrection::NoRevive => return None,
        HeartbeatResurrection::AlwaysRevive => return Some(HeartbeatStatus::Resurrected),
        HeartbeatResurrection::OneMinute => 60,
        HeartbeatResurrection::TwoMinutes => 2 * 60,
        HeartbeatResurrection::FiveMinutes => 5 * 60,
        HeartbeatResurrection::TenMinutes => 10 * 60,
        HeartbeatResurrection::FifteenMinutes => 15 * 60,
    };
    let died_at = next_heartbeat_at(machine, policy)?;
    let revivable_until = died_at.checked_add_signed(Duration::seconds(window_secs))?;
    (now <= revivable_until).then_some(HeartbeatStatus::Resurrected)
}

/// How long after its death a machine is deactivated under `DEACTIVATE_DEAD`: Keygen's 30 s, and
/// never while a ping could still revive it.
pub const CULL_GRACE_SECS: i64 = 30;

/// When a dead machine is deactivated to free its slot (`None`: never, under `KEEP_DEAD` or
/// `ALWAYS_REVIVE`, or while no heartbeat is due).
pub fn cull_at(machine: &KeygenMachine<'_>, policy: &Policy) -> Option<DateTime<Utc>> {
    if policy.heartbeat_cull_strategy != crate::policy::HeartbeatCull::DeactivateDead {
        return None;
    }
    let window_secs = match policy.heartbeat_resurrection_strategy {
        HeartbeatResurrection::NoRevive => 0,
        HeartbeatResurrection::AlwaysRevive => return None,
        HeartbeatResurrection::OneMinute => 60,
        HeartbeatResurrection::TwoMinutes => 2 * 60,
        HeartbeatResurrection::FiveMinutes => 5 * 60,
        HeartbeatResurrection::TenMinutes => 10 * 60,
        HeartbeatResurrection::FifteenMinutes => 15 * 60,
    };
    next_heartbeat_at(machine, policy)?
        .checked_add_signed(Duration::seconds(window_secs + CULL_GRACE_SECS))
}

/// Whether a required check-in is overdue: the last one (else the creation) is older than the
/// policy's interval × count, months and years in calendar terms.
pub fn check_in_overdue(subject: &KeygenSubject<'_>, now: DateTime<Utc>) -> bool {
    let policy = subject.policy;
    if !policy.require_check_in {
        return false;
    }
    let (Some(interval), Some(count)) = (policy.check_in_interval, policy.check_in_interval_count)
    else {
        return false;
    };
    let Ok(count) = u32::try_from(count) else {
        return false;
    };
    let cutoff = match interval {
        CheckInInterval::Day => {
            Duration::try_days(i64::from(count)).and_then(|d| now.checked_sub_signed(d))
        }
        CheckInInterval::Week => {
            Duration::try_weeks(i64::from(count)).and_then(|d| now.checked_sub_signed(d))
        }
        CheckInInterval::Month => now.checked_sub_months(Months::new(count)),
        CheckInInterval::Year => count
            .checked_mul(12)
            .and_then(|m| now.checked_sub_months(Months::new(m))),
    };
    let last = subject.last_check_in_at.unwrap_or(subject.created_at);
    cutoff.is_some_and(|cutoff| last < cutoff)
}

/// Whether `count` over `limit` is within the policy's overage allowance (also what a
/// machine activation checks). Exact in integers: 1.25× of 4 is 5, never 5.000001.
pub fn overage_allows(strategy: OverageStrategy, count: i128, limit: i128) -> bool {
    match strategy {
        OverageStrategy::AlwaysAllow => true,
        OverageStrategy::Allow1_25x => count.saturating_mul(4) <= limit.saturating_mul(5),
        OverageStrategy::Allow1_5x => count.saturating_mul(2) <= limit.saturating_mul(3),
        OverageStrategy::Allow2x => count <= limit.saturating_mul(2),
        OverageStrategy::NoOverage => count <= limit,
    }
}

/// Keygen's validation decision for an existing license.
pub fn decide(
    subject: &KeygenSubject<'_>,
    scoping: Scoping<'_>,
    now: DateTime<Utc>,
) -> KeygenVerdict {
    match run(subject, scoping, now) {
        Ok(verdict) | Err(verdict) => verdict,
    }
}

/// `Err` is a failure, which ends the decision; `Ok` the answer when nothing failed.
fn run(
    s: &KeygenSubject<'_>,
    scoping: Scoping<'_>,
    now: DateTime<Utc>,
) -> Result<KeygenVerdict, KeygenVerdict> {
    use KeygenCode as C;
    let policy = s.policy;

    if s.owner_banned {
        return Err(KeygenVerdict::fail(C::Banned, "is banned"));
    }
    if s.suspended {
        return Err(KeygenVerdict::fail(C::Suspended, "is suspended"));
    }
    let expired = s.expires_at.is_some_and(|at| at <= now);
    if expired && policy.expiration_strategy == ExpirationStrategy::RevokeAccess {
        return Err(KeygenVerdict::fail(C::Expired, "is expired"));
    }
    if check_in_overdue(s, now) {
        return Err(KeygenVerdict::fail(C::Overdue, "is overdue for check in"));
    }
    if let Scoping::Scoped(scope) = scoping {
        check_scope(s, scope, now)?;
    }

    // The first allowed overage is the answer unless something later fails.
    let mut allowed: Option<KeygenVerdict> = None;
    let mut limit = |count: i128, max: Option<i64>, code, detail| match max {
        Some(max) if count > i128::from(max) => {
            let verdict = KeygenVerdict::new(
                overage_allows(policy.overage_strategy, count, i128::from(max)),
                code,
                detail,
            );
            if !verdict.valid {
                return Err(verdict);
            }
            allowed.get_or_insert(verdict);
            Ok(())
        }
        _ => Ok(()),
    };

    limit(
        users_count(s) as i128,
        policy.max_users.map(i64::from),
        C::TooManyUsers,
        "has too many associated users",
    )?;

    if policy.strict {
        let machines = s.machines.len() as i128;
        if !policy.floating && machines == 0 {
            return Err(KeygenVerdict::fail(
                C::NoMachine,
                "must have exactly 1 associated machine",
            ));
        }
        let max_machines = if policy.floating {
            s.machine_limit
        } else {
            Some(1)
        };
        limit(
            machines,
            max_machines.map(i64::from),
            C::TooManyMachines,
            "has too many associated machines",
        )?;
        if policy.floating && machines == 0 {
            return Err(KeygenVerdict::fail(
                C::NoMachines,
                "must have at least 1 associated machine",
            ));
        }
        let sum = |f: fn(&KeygenMachine<'_>) -> i128| s.machines.iter().map(f).sum::<i128>();
        limit(
            sum(|m| i128::from(m.cores.unwrap_or(0))),
            policy.max_cores.map(i64::from),
            C::TooManyCores,
            "has too many associated machine cores",
        )?;
        limit(
            sum(|m| i128::from(m.memory.unwrap_or(0))),
            policy.max_memory,
            C::TooMuchMemory,
            "has too much associated machine memory",
        )?;
        limit(
            sum(|m| i128::from(m.disk.unwrap_or(0))),
            policy.max_disk,
            C::TooMuchDisk,
            "has too much associated machine disk",
        )?;
        // Processes lease per machine (Keygen's default): the busiest machine is what counts.
        let processes = s.machines.iter().map(|m| m.processes).max().unwrap_or(0);
        limit(
            i128::from(processes),
            policy.max_processes.map(i64::from),
            C::TooManyProcesses,
            "has too many associated processes",
        )?;
    }

    if expired {
        let keeps_access = matches!(
            policy.expiration_strategy,
            ExpirationStrategy::MaintainAccess | ExpirationStrategy::AllowAccess
        );
        let verdict = KeygenVerdict::new(keeps_access, C::Expired, "is expired");
        if !verdict.valid {
            return Err(verdict);
        }
        allowed.get_or_insert(verdict);
    }
    Ok(allowed.unwrap_or_else(|| KeygenVerdict::new(true, C::Valid, "is valid")))
}

/// The owner and the users, each counted once.
fn users_count(s: &KeygenSubject<'_>) -> usize {
    let mut ids: Vec<Uuid> = s.owner.iter().chain(s.users).map(|u| u.id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

/// The license's user a user scope names, by id or (case-insensitively) by email.
fn scope_user(s: &KeygenSubject<'_>, given: &str) -> Option<Uuid> {
    let by_id = Uuid::parse_str(given).ok();
    s.owner
        .iter()
        .chain(s.users)
        .find(|u| Some(u.id) == by_id || u.email.is_some_and(|e| e.eq_ignore_ascii_case(given)))
        .map(|u| u.id)
}

fn same_id(given: &str, id: Uuid) -> bool {
    Uuid::parse_str(given).is_ok_and(|g| g == id)
}

/// Only the first failing scope rule is answered.
fn check_scope(
    s: &KeygenSubject<'_>,
    scope: &Scope,
    now: DateTime<Utc>,
) -> Result<(), KeygenVerdict> {
    use KeygenCode as C;
    let policy = s.policy;
    let required = |which: policy::Scope| policy.required_scopes.contains(&which);
    let fail = |code, detail| Err(KeygenVerdict::fail(code, detail));

    // No license has an environment here, so any named one is not the license's.
    match &scope.environment {
        Some(_) => {
            return fail(
                C::EnvironmentScopeMismatch,
                "environment scope does not match",
            )
        }
        None if required(policy::Scope::Environment) => {
            return fail(C::EnvironmentScopeRequired, "environment scope is required")
        }
        None => {}
    }

    match &scope.product {
        Some(p) if !same_id(p, s.product_id) => {
            return fail(C::ProductScopeMismatch, "product scope does not match")
        }
        None if required(policy::Scope::Product) => {
            return fail(C::ProductScopeRequired, "product scope is required")
        }
        _ => {}
    }

    match &scope.policy {
        Some(p) if !same_id(p, policy.id) => {
            return fail(C::PolicyScopeMismatch, "policy scope does not match")
        }
        None if required(policy::Scope::Policy) => {
            return fail(C::PolicyScopeRequired, "policy scope is required")
        }
        _ => {}
    }

    let user = match &scope.user {
        Some(u) => match scope_user(s, u) {
            Some(id) => Some(id),
            None => return fail(C::UserScopeMismatch, "user scope does not match"),
        },
        None if required(policy::Scope::User) => {
            return fail(C::UserScopeRequired, "user scope is required")
        }
        None => None,
    };
    // A machine owned by someone else than the scope's user does not count for that user; an
    // unowned machine is anyone's.
    let owned_by_user = |m: &KeygenMachine<'_>| match (user, m.owner_id) {
        (Some(user), Some(owner)) => owner == user,
        _ => true,
    };

    if let Some(codes) = &scope.entitlements {
        if codes.is_empty() {
            return fail(C::EntitlementsScopeEmpty, "entitlements scope is empty");
        }
        if !codes.iter().all(|c| s.entitlement_codes.contains(c)) {
            return fail(
                C::EntitlementsMissing,
                "is missing one or more required entitlements",
            );
        }
    }

    if let Some(given) = &scope.machine {
        if s.machines.is_empty() {
            return if policy.floating {
                fail(
                    C::NoMachines,
                    "machine is not activated (has no associated machines)",
                )
            } else {
                fail(
                    C::NoMachine,
                    "machine is not activated (has no associated machine)",
                )
            };
        }
        let Some(machine) = s.machines.iter().find(|m| same_id(given, m.id)) else {
            return fail(
                C::MachineScopeMismatch,
                "machine is not activated (does not match any associated machines)",
            );
        };
        if !owned_by_user(machine) {
            return fail(
                C::UserScopeMismatch,
                "user scope does not match (does not match associated machine owner)",
            );
        }
        match heartbeat_status(machine, policy, now) {
            HeartbeatStatus::NotStarted if policy.require_heartbeat => {
                return fail(C::HeartbeatNotStarted, "machine heartbeat is required")
            }
            HeartbeatStatus::Dead => return fail(C::HeartbeatDead, "machine heartbeat is dead"),
            _ => {}
        }
    } else if required(policy::Scope::Machine) {
        return fail(C::MachineScopeRequired, "machine scope is required");
    }

    if scope.fingerprint.is_some() || scope.fingerprints.is_some() {
        check_fingerprints(s, scope, &owned_by_user, now)?;
    } else if required(policy::Scope::Fingerprint) {
        return fail(C::FingerprintScopeRequired, "fingerprint scope is required");
    }

    if let Some(components) = &scope.components {
        // Components are matched within one machine, so it must be named by one fingerprint.
        if scope.fingerprint.is_none() {
            return fail(
                C::FingerprintScopeRequired,
                "fingerprint scope is required when using the components scope",
            );
        }
        if components.is_empty() {
            return fail(C::ComponentsScopeEmpty, "components scope is empty");
        }
        // No machine has recorded components yet, so none can match.
        return fail(
            C::ComponentsScopeMismatch,
            "one or more component is not activated (does not match any associated components)",
        );
    } else if required(policy::Scope::Components) {
        return fail(C::ComponentsScopeRequired, "components scope is required");
    }

    // No product has releases or artifacts yet: any checksum or version names none of them.
    if scope.checksum.is_some() {
        return fail(
            C::ChecksumScopeMismatch,
            "checksum scope is not valid (does not match any accessible artifacts)",
        );
    } else if required(policy::Scope::Checksum) {
        return fail(C::ChecksumScopeRequired, "checksum scope is required");
    }
    if scope.version.is_some() {
        return fail(
            C::VersionScopeMismatch,
            "version scope is not valid (does not match any accessible releases)",
        );
    } else if required(policy::Scope::Version) {
        return fail(C::VersionScopeRequired, "version scope is required");
    }
    Ok(())
}

fn check_fingerprints(
    s: &KeygenSubject<'_>,
    scope: &Scope,
    owned_by_user: &dyn Fn(&KeygenMachine<'_>) -> bool,
    now: DateTime<Utc>,
) -> Result<(), KeygenVerdict> {
    use KeygenCode as C;
    let policy = s.policy;
    let fail = |code, detail| Err(KeygenVerdict::fail(code, detail));

    // The singular key wins when both are sent.
    let mut fingerprints: Vec<&str> = match (&scope.fingerprint, &scope.fingerprints) {
        (Some(f), _) => vec![f.as_str()],
        (None, Some(list)) => list.iter().map(String::as_str).collect(),
        (None, None) => Vec::new(),
    };
    fingerprints.sort_unstable();
    fingerprints.dedup();
    if fingerprints.is_empty() {
        return fail(C::FingerprintScopeEmpty, "fingerprint scope is empty");
    }
    if s.machines.is_empty() {
        return if policy.floating {
            fail(
                C::NoMachines,
                "fingerprint is not activated (has no associated machines)",
            )
        } else {
            fail(
                C::NoMachine,
                "fingerprint is not activated (has no associated machine)",
            )
        };
    }

    let matched: Vec<(&KeygenMachine<'_>, HeartbeatStatus)> = s
        .machines
        .iter()
        .filter(|m| fingerprints.contains(&m.fingerprint))
        .map(|m| (m, heartbeat_status(m, policy, now)))
        .collect();
    let dead = matched
        .iter()
        .filter(|(_, h)| *h == HeartbeatStatus::Dead)
        .count();
    let n = fingerprints.len();
    if dead == n {
        return fail(C::HeartbeatDead, "machine heartbeat is dead");
    }
    let alive = matched.len() - dead;
    let mismatch = match policy.machine_matching_strategy {
        MachineMatching::Most if n > 1 && alive < n.div_ceil(2) => Some(
            "one or more fingerprint is not activated (does not match enough associated machines)",
        ),
        MachineMatching::Two if n > 1 && alive < 2 => Some(
            "one or more fingerprint is not activated (does not match at least 2 associated machines)",
        ),
        MachineMatching::All if n > 1 && alive < n => Some(
            "one or more fingerprint is not activated (does not match all associated machines)",
        ),
        _ if alive == 0 && n > 1 => Some(
            "one or more fingerprint is not activated (does not match any associated machines)",
        ),
        _ if alive == 0 => {
            Some("fingerprint is not activated (does not match any associated machines)")
        }
        _ => None,
    };
    if let Some(detail) = mismatch {
        return fail(C::FingerprintScopeMismatch, detail);
    }

    let mut alive_machines = matched.iter().filter(|(_, h)| *h != HeartbeatStatus::Dead);
    if !alive_machines.clone().all(|(m, _)| owned_by_user(m)) {
        return fail(
            C::UserScopeMismatch,
            "user scope does not match (does not match associated machine owners)",
        );
    }
    if policy.require_heartbeat && alive_machines.any(|(_, h)| *h == HeartbeatStatus::NotStarted) {
        return fail(C::HeartbeatNotStarted, "machine heartbeat is required");
    }
    Ok(())
}

#[cfg(test)]
#[path = "keygen_tests.rs"]
mod tests;

/// What a client did with a license, for the expiration bases that start its clock then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstUse {
    Validation,
    Activation,
    Download,
}

/// Whether `event` starts the expiry of a license that has not started it yet (a duration and
/// no expiry): `FROM_FIRST_VALIDATION`, `…_ACTIVATION`, `…_DOWNLOAD` on their event,
/// `FROM_FIRST_USE` on any of them.
pub fn starts_expiry(
    policy: &Policy,
    expires_at: Option<DateTime<Utc>>,
    duration_secs: Option<i64>,
    event: FirstUse,
) -> bool {
    use crate::policy::ExpirationBasis as B;
    if expires_at.is_some() || duration_secs.is_none() {
        return false;
    }
    match policy.expiration_basis {
        B::FromCreation => false,
        B::FromFirstValidation => event == FirstUse::Validation,
        B::FromFirstActivation => event == FirstUse::Activation,
        B::FromFirstDownload => event == FirstUse::Download,
        B::FromFirstUse => true,
    }
}
