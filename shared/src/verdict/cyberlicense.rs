//! CyberLicense's validation decision (spec `cyberlicense.md` §3.2–§3.4): a pure function of
//! (app, license, blacklist, ip, hwid, now), checked in the spec's order, the first failure
//! winning:
//!
//! revoked → suspended (banned, or a blacklisted IP/HWID: our choice) → not active (disabled, or
//! its app paused) → expired (`expires_at <= now`, or a spent one-time key) → a consumption
//! license without credits → IP limit → HWID limit → valid.
//!
//! A valid answer says which write it needs ([`Use`]): a new IP or HWID appended, a credit spent,
//! the first use recorded. The caller performs it through
//! [`crate::store::license_uses::record`], which re-checks the limits and credits under the
//! license row's lock, so the cache only decides whether to try.
//!
//! Unlike the native rules, a new IP or HWID is recorded even when its limit is 0 (unlimited:
//! CyberLicense lists every one in `usedIps`/`usedHwids`), and HWIDs are checked whatever the
//! app's `hwid_lock` (only a license's `hwid_check` trait turns them off). An absent `ip` or
//! `hwid` skips its check; a value already recorded always passes, even above a lowered limit.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::blacklist::BlacklistView;
use crate::model::{App, License, LicenseStatus, LicenseType};

/// Why a license is refused, in the order the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    Revoked,
    /// Banned, or asked for from a blacklisted IP or HWID.
    Suspended,
    /// Disabled by an admin, or its app (product) paused.
    NotActive,
    /// Past its expiry, or a one-time key already used.
    Expired,
    /// A consumption license whose credits are spent.
    NoCredits,
    IpLimit,
    HwidLimit,
}

impl Refusal {
    /// Refused by an IP or HWID limit (usage statistics count these as `blocked`).
    pub fn is_limit(self) -> bool {
        matches!(self, Refusal::IpLimit | Refusal::HwidLimit)
    }

    /// The refusal of a license in this state, when the state refuses it.
    pub fn of_status(status: LicenseStatus) -> Option<Refusal> {
        match status {
            LicenseStatus::Active => None,
            LicenseStatus::Revoked => Some(Refusal::Revoked),
            LicenseStatus::Banned => Some(Refusal::Suspended),
            LicenseStatus::Disabled => Some(Refusal::NotActive),
        }
    }
}

/// The write a valid answer needs. All `None`/`false`: the answer is served as is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Use {
    /// A new IP to append to the license's IPs.
    pub append_ip: Option<IpAddr>,
    /// A new HWID to bind to the license.
    pub append_hwid: Option<String>,
    /// Spend one credit (consumption licenses).
    pub spend: bool,
    /// The license's first use: record it (a one-time key is then spent, an expiry counted from
    /// first use starts).
    pub first_use: bool,
}

impl Use {
    /// Whether anything must be written before answering.
    pub fn writes(&self) -> bool {
        *self != Use::default()
    }

    /// Only a credit to spend: the license already knows the client and was used before
    /// (`store::license_uses::spend`'s single statement suffices).
    pub fn spend_only(&self) -> bool {
        *self
            == Use {
                spend: true,
                ..Use::default()
            }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Refused(Refusal),
    Valid(Use),
}

/// A consumption license's credits: `total` = `max_uses` (none: 0), `used` = `uses`,
/// `remaining` = max(total − used, 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credits {
    pub total: i64,
    pub used: i64,
    pub remaining: i64,
}

pub fn credits(license: &License) -> Credits {
    let total = i64::from(license.max_uses.unwrap_or(0));
    let used = i64::from(license.uses);
    Credits {
        total,
        used,
        remaining: (total - used).max(0),
    }
}

/// Whether a license's expiry has passed (a one-time key once used counts as expired).
pub fn expired(license: &License, now: DateTime<Utc>) -> bool {
    license.expires_at.is_some_and(|at| at <= now)
        || (license.traits.one_time_use && license.used_at.is_some())
}

/// Decides a validation. `ip` and `hwid` are what the client sent, already trimmed (`None`:
/// absent, which skips that check).
pub fn decide(
    app: &App,
    license: &License,
    blacklist: &BlacklistView,
    ip: Option<IpAddr>,
    hwid: Option<&str>,
    now: DateTime<Utc>,
) -> Outcome {
    use Outcome::Refused;

    // Permanent states before temporary ones, state before time.
    if license.status == LicenseStatus::Revoked {
        return Refused(Refusal::Revoked);
    }
    if ip.is_some_and(|ip| blacklist.blocks_ip(ip))
        || hwid.is_some_and(|h| blacklist.blocks_hwid(h))
    {
        return Refused(Refusal::Suspended);
    }
    if let Some(refusal) = Refusal::of_status(license.status) {
        return Refused(refusal);
    }
    if app.paused {
        return Refused(Refusal::NotActive);
    }
    // Time before devices, so a dead license never records devices.
    if expired(license, now) {
        return Refused(Refusal::Expired);
    }
    let consumption = license.license_type == LicenseType::Consumption;
    if consumption && credits(license).remaining == 0 {
        return Refused(Refusal::NoCredits);
    }
    let mut write = Use {
        spend: consumption,
        first_use: license.used_at.is_none(),
        ..Use::default()
    };
    if let Some(ip) = ip.filter(|ip| !license.has_ip(*ip)) {
        if at_limit(license.ips.len(), license.ip_limit) {
            return Refused(Refusal::IpLimit);
        }
        write.append_ip = Some(ip);
    }
    if license.traits.hwid_check {
        if let Some(hwid) = hwid.filter(|h| !license.has_hwid(h)) {
            if at_limit(license.hwids.len(), license.hwid_limit) {
                return Refused(Refusal::HwidLimit);
            }
            write.append_hwid = Some(hwid.to_string());
        }
    }
    Outcome::Valid(write)
}

/// [`decide`] for a license whose owner (customer) is known: a banned owner suspends it, as in
/// the core's other rules (only a revocation outranks that).
pub fn decide_owned(
    app: &App,
    license: &License,
    owner_banned: bool,
    blacklist: &BlacklistView,
    ip: Option<IpAddr>,
    hwid: Option<&str>,
    now: DateTime<Utc>,
) -> Outcome {
    if owner_banned && license.status != LicenseStatus::Revoked {
        return Outcome::Refused(Refusal::Suspended);
    }
    decide(app, license, blacklist, ip, hwid, now)
}

/// Whether `count` recorded values leave no room for another under `limit` (0: unlimited).
pub fn at_limit(count: usize, limit: i32) -> bool {
    limit > 0 && count >= usize::try_from(limit).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{app, license};
    use crate::model::{BlacklistEntry, BlacklistKind, BoundHwid};
    use chrono::Duration;
    use uuid::Uuid;

    const H1: &str = "HWID-1";

    /// An active, used, never-expiring fixed license bound to H1 (limit 1), without IPs.
    fn lic() -> License {
        let mut l = license(H1);
        l.expires_at = None;
        l
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn blacklist(entries: &[(BlacklistKind, &str)]) -> BlacklistView {
        let entries: Vec<BlacklistEntry> = entries
            .iter()
            .map(|(kind, value)| BlacklistEntry {
                id: Uuid::new_v4(),
                app_id: Uuid::new_v4(),
                kind: *kind,
                value: value.to_string(),
                note: None,
                created_at: Utc::now(),
            })
            .collect();
        BlacklistView::from_entries(&entries)
    }

    fn run(l: &License, ip_: Option<&str>, hwid: Option<&str>) -> Outcome {
        decide(
            &app(),
            l,
            &BlacklistView::default(),
            ip_.map(ip),
            hwid,
            Utc::now(),
        )
    }

    fn refused(o: Outcome) -> Refusal {
        match o {
            Outcome::Refused(r) => r,
            Outcome::Valid(u) => panic!("expected a refusal, got valid {u:?}"),
        }
    }

    fn valid(o: Outcome) -> Use {
        match o {
            Outcome::Valid(u) => u,
            Outcome::Refused(r) => panic!("expected valid, got {r:?}"),
        }
    }

    fn bound(h: &str) -> BoundHwid {
        BoundHwid {
            hwid: h.into(),
            bound_at: Utc::now(),
            bound_by: "validate".into(),
        }
    }

    #[test]
    fn a_banned_owner_suspends_unless_revoked() {
        let bl = BlacklistView::default();
        let mut l = lic();
        let o = decide_owned(&app(), &l, true, &bl, None, None, Utc::now());
        assert_eq!(o, Outcome::Refused(Refusal::Suspended));
        l.status = LicenseStatus::Revoked;
        let o = decide_owned(&app(), &l, true, &bl, None, None, Utc::now());
        assert_eq!(o, Outcome::Refused(Refusal::Revoked));
        l.status = LicenseStatus::Active;
        let o = decide_owned(&app(), &l, false, &bl, None, None, Utc::now());
        assert!(matches!(o, Outcome::Valid(_)));
    }

    #[test]
    fn a_known_client_is_valid_without_a_write() {
        let u = valid(run(&lic(), None, Some(H1)));
        assert!(!u.writes(), "{u:?}");
        assert!(!valid(run(&lic(), None, None)).writes());
    }

    #[test]
    fn each_state_has_its_refusal() {
        let mut l = lic();
        l.status = LicenseStatus::Revoked;
        assert_eq!(refused(run(&l, None, None)), Refusal::Revoked);
        l.status = LicenseStatus::Banned;
        assert_eq!(refused(run(&l, None, None)), Refusal::Suspended);
        l.status = LicenseStatus::Disabled;
        assert_eq!(refused(run(&l, None, None)), Refusal::NotActive);
    }

    #[test]
    fn a_paused_app_makes_its_licenses_not_active() {
        let mut a = app();
        a.paused = true;
        let o = decide(
            &a,
            &lic(),
            &BlacklistView::default(),
            None,
            None,
            Utc::now(),
        );
        assert_eq!(refused(o), Refusal::NotActive);
    }

    #[test]
    fn blacklisted_ip_or_hwid_is_suspended() {
        let bl = blacklist(&[
            (BlacklistKind::Ip, "203.0.113.0/24"),
            (BlacklistKind::Hwid, "BAD"),
        ]);
        let l = lic();
        let o = decide(&app(), &l, &bl, Some(ip("203.0.113.9")), None, Utc::now());
        assert_eq!(refused(o), Refusal::Suspended);
        let o = decide(&app(), &l, &bl, None, Some("BAD"), Utc::now());
        assert_eq!(refused(o), Refusal::Suspended);
        // Other values pass.
        let o = decide(
            &app(),
            &l,
            &bl,
            Some(ip("198.51.100.1")),
            Some(H1),
            Utc::now(),
        );
        assert!(matches!(o, Outcome::Valid(_)));
    }

    #[test]
    fn expiry_is_inclusive_and_null_never_expires() {
        let now = Utc::now();
        let mut l = lic();
        l.expires_at = Some(now);
        let o = decide(&app(), &l, &BlacklistView::default(), None, None, now);
        assert_eq!(refused(o), Refusal::Expired);
        l.expires_at = Some(now + Duration::milliseconds(1));
        let o = decide(&app(), &l, &BlacklistView::default(), None, None, now);
        assert!(matches!(o, Outcome::Valid(_)));
        l.expires_at = None;
        assert!(matches!(run(&l, None, None), Outcome::Valid(_)));
    }

    #[test]
    fn a_spent_one_time_key_is_expired_and_an_unused_one_records_its_first_use() {
        let mut l = lic();
        l.traits.one_time_use = true;
        assert_eq!(refused(run(&l, None, None)), Refusal::Expired);
        l.used_at = None;
        let u = valid(run(&l, None, None));
        assert!(u.first_use && u.writes());
    }

    #[test]
    fn consumption_spends_a_credit_and_refuses_at_zero() {
        let mut l = lic();
        l.license_type = LicenseType::Consumption;
        l.max_uses = Some(10);
        l.uses = 9;
        let u = valid(run(&l, None, Some(H1)));
        assert_eq!(
            u,
            Use {
                spend: true,
                ..Use::default()
            }
        );
        l.uses = 10;
        assert_eq!(refused(run(&l, None, None)), Refusal::NoCredits);
        // More used than granted (max lowered): still none left.
        l.uses = 12;
        assert_eq!(refused(run(&l, None, None)), Refusal::NoCredits);
        // No max_uses: no credits at all.
        l.max_uses = None;
        l.uses = 0;
        assert_eq!(refused(run(&l, None, None)), Refusal::NoCredits);
        // Other types never spend.
        l.license_type = LicenseType::Enterprise;
        assert!(!valid(run(&l, None, None)).spend);
    }

    #[test]
    fn credits_are_clamped_at_zero() {
        let mut l = lic();
        l.max_uses = Some(5);
        l.uses = 7;
        assert_eq!(
            credits(&l),
            Credits {
                total: 5,
                used: 7,
                remaining: 0
            }
        );
        l.max_uses = None;
        l.uses = 0;
        assert_eq!(credits(&l).total, 0);
    }

    #[test]
    fn ip_limit_counts_distinct_ips_and_known_ones_pass() {
        let mut l = lic();
        l.ip_limit = 2;
        let u = valid(run(&l, Some("192.0.2.1"), None));
        assert_eq!(u.append_ip, Some(ip("192.0.2.1")));
        l.ips = vec![ip("192.0.2.1"), ip("192.0.2.2")];
        assert_eq!(refused(run(&l, Some("192.0.2.3"), None)), Refusal::IpLimit);
        // Known values pass, even after the limit was lowered below the list.
        l.ip_limit = 1;
        let u = valid(run(&l, Some("192.0.2.2"), None));
        assert_eq!(u.append_ip, None);
        // Absent skips.
        assert!(matches!(run(&l, None, None), Outcome::Valid(_)));
    }

    #[test]
    fn zero_is_unlimited_but_still_records() {
        let mut l = lic();
        l.ip_limit = 0;
        l.hwid_limit = 0;
        l.ips = (1..=50).map(|i| ip(&format!("192.0.2.{i}"))).collect();
        l.hwids = (0..50).map(|i| bound(&format!("H{i}"))).collect();
        let u = valid(run(&l, Some("198.51.100.7"), Some("NEW")));
        assert_eq!(u.append_ip, Some(ip("198.51.100.7")));
        assert_eq!(u.append_hwid.as_deref(), Some("NEW"));
    }

    #[test]
    fn hwid_limit_and_known_hwids() {
        let mut l = lic();
        assert_eq!(refused(run(&l, None, Some("OTHER"))), Refusal::HwidLimit);
        l.hwid_limit = 2;
        let u = valid(run(&l, None, Some("OTHER")));
        assert_eq!(u.append_hwid.as_deref(), Some("OTHER"));
        l.hwids.push(bound("OTHER"));
        l.hwid_limit = 1;
        assert!(!valid(run(&l, None, Some("OTHER"))).writes());
        // Exact comparison: case matters.
        l.hwid_limit = 2;
        assert_eq!(refused(run(&l, None, Some("hwid-1"))), Refusal::HwidLimit);
    }

    #[test]
    fn hwids_are_checked_whatever_the_apps_hwid_lock_unless_the_key_skips_them() {
        let mut a = app();
        a.hwid_lock = false;
        let mut l = lic();
        let o = decide(
            &a,
            &l,
            &BlacklistView::default(),
            None,
            Some("OTHER"),
            Utc::now(),
        );
        assert_eq!(refused(o), Refusal::HwidLimit);
        l.traits.hwid_check = false;
        let u = valid(run(&l, None, Some("OTHER")));
        assert_eq!(u.append_hwid, None);
    }

    #[test]
    fn the_first_use_is_recorded() {
        let mut l = lic();
        l.used_at = None;
        l.hwids.clear();
        let u = valid(run(&l, Some("192.0.2.1"), Some(H1)));
        assert_eq!(
            u,
            Use {
                append_ip: Some(ip("192.0.2.1")),
                append_hwid: Some(H1.into()),
                spend: false,
                first_use: true,
            }
        );
    }

    /// Every pair of failing conditions: the earlier rule in the spec's order wins.
    #[test]
    fn the_first_failure_wins_in_the_spec_order() {
        type Break = fn(&mut App, &mut License) -> (Option<&'static str>, Option<&'static str>);
        let order: [(Refusal, Break); 8] = [
            (Refusal::Revoked, |_, l| {
                l.status = LicenseStatus::Revoked;
                (None, None)
            }),
            // Blacklisted (203.0.113.66 is blacklisted below): suspended.
            (Refusal::Suspended, |_, _| (Some("203.0.113.66"), None)),
            (Refusal::Suspended, |_, l| {
                if l.status == LicenseStatus::Active {
                    l.status = LicenseStatus::Banned;
                }
                (None, None)
            }),
            (Refusal::NotActive, |a, _| {
                a.paused = true;
                (None, None)
            }),
            (Refusal::Expired, |_, l| {
                l.expires_at = Some(Utc::now() - Duration::seconds(1));
                (None, None)
            }),
            (Refusal::NoCredits, |_, l| {
                l.license_type = LicenseType::Consumption;
                l.max_uses = Some(3);
                l.uses = 3;
                (None, None)
            }),
            (Refusal::IpLimit, |_, l| {
                l.ip_limit = 1;
                l.ips = vec!["192.0.2.1".parse().unwrap()];
                (Some("192.0.2.2"), None)
            }),
            (Refusal::HwidLimit, |_, _| (None, Some("OTHER"))),
        ];
        let bl = blacklist(&[(BlacklistKind::Ip, "203.0.113.66")]);
        for (i, (first, break_first)) in order.iter().enumerate() {
            for (_, break_later) in &order[i + 1..] {
                let (mut a, mut l) = (app(), lic());
                let (ip1, hwid1) = break_first(&mut a, &mut l);
                let (ip2, hwid2) = break_later(&mut a, &mut l);
                let o = decide(
                    &a,
                    &l,
                    &bl,
                    ip1.or(ip2).map(ip),
                    hwid1.or(hwid2),
                    Utc::now(),
                );
                assert_eq!(refused(o), *first, "rule {i} against a later one");
            }
            // Alone, each rule refuses with its own reason.
            let (mut a, mut l) = (app(), lic());
            let (ip1, hwid1) = break_first(&mut a, &mut l);
            let o = decide(&a, &l, &bl, ip1.map(ip), hwid1, Utc::now());
            assert_eq!(refused(o), *first, "rule {i} alone");
        }
    }

    #[test]
    fn only_limits_count_as_blocked() {
        assert!(Refusal::IpLimit.is_limit() && Refusal::HwidLimit.is_limit());
        for r in [
            Refusal::Revoked,
            Refusal::Suspended,
            Refusal::NotActive,
            Refusal::Expired,
            Refusal::NoCredits,
        ] {
            assert!(!r.is_limit());
        }
    }
}
