//! What the hot paths need of a license, small enough that a validator can cache a million:
//! no note, audit fields or per-HWID metadata, times as microseconds, the bound HWIDs packed
//! into one allocation and the rarely set fields (ban reason, recorded IPs) behind one pointer.
//! Cloning is cheap (at most two reference counts), so caches can hand out copies.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::model::{License, LicenseId, LicenseStatus};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseFacts {
    pub id: LicenseId,
    pub status: LicenseStatus,
    pub level: i32,
    /// Maximum number of bound HWIDs; 0 means unlimited.
    pub hwid_limit: i32,
    /// Maximum number of distinct client IPs; 0 means unlimited.
    pub ip_limit: i32,
    /// `i32::MAX` when there is no limit.
    pub max_uses: i32,
    pub uses: i32,
    /// Key-system traits (`KeyTraits`): premium, HWIDs bound and checked at all, one-time use.
    pub premium: bool,
    pub hwid_check: bool,
    pub one_time_use: bool,
    used_at: OptI64,
    expires_at: OptI64,
    duration_secs: OptI64,
    hwids: PackedStrs,
    rare: Option<Arc<Rare>>,
}

/// Fields most licenses leave empty.
#[derive(Debug, PartialEq, Eq)]
struct Rare {
    ban_reason: Option<Box<str>>,
    ips: Box<[IpAddr]>,
}

impl From<&License> for LicenseFacts {
    fn from(l: &License) -> Self {
        let mut facts = LicenseFacts::with(
            l.used_at,
            l.expires_at,
            l.duration_secs,
            l.hwids.iter().map(|h| h.hwid.as_str()),
            l.ban_reason.clone(),
            l.ips.clone(),
        );
        facts.id = l.id;
        facts.status = l.status;
        facts.level = l.level;
        facts.hwid_limit = l.hwid_limit;
        facts.ip_limit = l.ip_limit;
        facts.max_uses = l.max_uses.unwrap_or(i32::MAX);
        facts.uses = l.uses;
        facts.premium = l.traits.premium;
        facts.hwid_check = l.traits.hwid_check;
        facts.one_time_use = l.traits.one_time_use;
        facts
    }
}

impl LicenseFacts {
    /// The packed fields from their plain forms; the public ones take neutral values (an active
    /// level-0 license without limits or uses) for the caller to fill in.
    pub(crate) fn with<'a>(
        used_at: Option<DateTime<Utc>>,
        expires_at: Option<DateTime<Utc>>,
        duration_secs: Option<i64>,
        hwids: impl Iterator<Item = &'a str>,
        ban_reason: Option<String>,
        ips: Vec<IpAddr>,
    ) -> LicenseFacts {
        let rare = (ban_reason.is_some() || !ips.is_empty()).then(|| {
            Arc::new(Rare {
                ban_reason: ban_reason.map(String::into_boxed_str),
                ips: ips.into_boxed_slice(),
            })
        });
        LicenseFacts {
            id: LicenseId::nil(),
            status: LicenseStatus::Active,
            level: 0,
            hwid_limit: 0,
            ip_limit: 0,
            max_uses: 0,
            uses: 0,
            premium: false,
            hwid_check: true,
            one_time_use: false,
            used_at: OptI64::time(used_at),
            expires_at: OptI64::time(expires_at),
            duration_secs: OptI64::new(duration_secs),
            hwids: PackedStrs::new(hwids),
            rare,
        }
    }
}

impl License {
    /// The compact form the validation rules read.
    pub fn facts(&self) -> LicenseFacts {
        LicenseFacts::from(self)
    }
}

impl LicenseFacts {
    pub fn used_at(&self) -> Option<DateTime<Utc>> {
        self.used_at.as_time()
    }

    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at.as_time()
    }

    /// Expiry on first use: the validity that starts at the first validation.
    pub fn duration_secs(&self) -> Option<i64> {
        self.duration_secs.get()
    }

    pub fn ban_reason(&self) -> Option<&str> {
        self.rare.as_ref()?.ban_reason.as_deref()
    }

    pub fn has_hwid(&self, hwid: &str) -> bool {
        self.hwids.iter().any(|h| h == hwid.as_bytes())
    }

    pub fn hwid_count(&self) -> usize {
        self.hwids.iter().count()
    }

    pub fn has_ip(&self, ip: IpAddr) -> bool {
        self.ips().contains(&ip)
    }

    pub fn ip_count(&self) -> usize {
        self.ips().len()
    }

    fn ips(&self) -> &[IpAddr] {
        self.rare.as_ref().map_or(&[], |r| &r.ips)
    }
}

/// An optional `i64` in eight bytes (`i64::MIN` stands for none); times are stored as
/// microseconds since the epoch, PostgreSQL's own precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OptI64(i64);

impl OptI64 {
    const NONE: i64 = i64::MIN;

    fn new(v: Option<i64>) -> Self {
        OptI64(v.filter(|&v| v != Self::NONE).unwrap_or(Self::NONE))
    }

    fn time(t: Option<DateTime<Utc>>) -> Self {
        Self::new(t.map(|t| t.timestamp_micros()))
    }

    fn get(self) -> Option<i64> {
        (self.0 != Self::NONE).then_some(self.0)
    }

    fn as_time(self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp_micros(self.get()?)
    }
}

/// Strings packed into one shared allocation, each as a little-endian `u32` length and its
/// bytes; no allocation at all when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct PackedStrs(Option<Arc<[u8]>>);

impl PackedStrs {
    fn new<'a>(strs: impl Iterator<Item = &'a str>) -> Self {
        let mut buf = Vec::new();
        for s in strs {
            // A bound HWID is a few hundred bytes at most; longer ones would not fit a row.
            let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(&s.as_bytes()[..len as usize]);
        }
        PackedStrs((!buf.is_empty()).then(|| Arc::from(buf)))
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest: &[u8] = self.0.as_deref().unwrap_or(&[]);
        std::iter::from_fn(move || {
            let (len, tail) = rest.split_first_chunk::<4>()?;
            let len = (u32::from_le_bytes(*len) as usize).min(tail.len());
            let (s, tail) = tail.split_at(len);
            rest = tail;
            Some(s)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BoundHwid;
    use chrono::TimeZone;

    fn license(hwids: &[&str], ips: &[&str], ban_reason: Option<&str>) -> License {
        let mut l = crate::fixtures::license("");
        l.level = 3;
        l.used_at = Some(Utc.timestamp_opt(1_700_000_000, 123_456_000).unwrap());
        l.expires_at = None;
        l.duration_secs = Some(86_400);
        l.hwid_limit = 2;
        l.ip_limit = 1;
        l.ban_reason = ban_reason.map(Into::into);
        l.hwids = hwids
            .iter()
            .map(|h| BoundHwid {
                hwid: (*h).into(),
                bound_at: Utc::now(),
                bound_by: "validate".into(),
            })
            .collect();
        l.ips = ips.iter().map(|ip| ip.parse().unwrap()).collect();
        l
    }

    #[test]
    fn keeps_every_fact_the_rules_read() {
        let l = license(
            &["H1", "", "Ünïcode-HWID"],
            &["203.0.113.9"],
            Some("chargeback"),
        );
        let f = l.facts();
        assert_eq!(f.used_at(), l.used_at);
        assert_eq!(f.expires_at(), None);
        assert_eq!(f.duration_secs(), Some(86_400));
        assert_eq!(f.ban_reason(), Some("chargeback"));
        assert!(f.has_hwid("H1") && f.has_hwid("") && f.has_hwid("Ünïcode-HWID"));
        assert!(!f.has_hwid("H") && !f.has_hwid("H1 "));
        assert_eq!(f.hwid_count(), 3);
        assert!(f.has_ip("203.0.113.9".parse().unwrap()));
        assert!(!f.has_ip("203.0.113.10".parse().unwrap()));
        assert_eq!(f.ip_count(), 1);
        assert_eq!((f.level, f.hwid_limit, f.ip_limit), (3, 2, 1));
    }

    #[test]
    fn empty_lists_allocate_nothing() {
        let f = license(&[], &[], None).facts();
        assert!(f.hwids.0.is_none() && f.rare.is_none());
        assert_eq!((f.hwid_count(), f.ip_count()), (0, 0));
        assert!(!f.has_hwid(""));
        assert_eq!(f.ban_reason(), None);
    }

    #[test]
    fn small_enough_to_cache_a_million() {
        assert!(std::mem::size_of::<LicenseFacts>() <= 88);
    }
}
