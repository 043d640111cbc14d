//! Keyless validation (Panda's `key=keyless`, Junkie's `KEYLESS`): a request without a key is
//! let through when the app is in keyless mode, or when an admin's keyless entry for its HWID has
//! not expired. The app's own rules that need no license still come first (paused app,
//! blacklisted IP or HWID), in the order of [`super::decide`].
//!
//! Pure, like `decide`: the caller reads the HWID's entry and, when asked, makes or refreshes it
//! (`store::keyless::refresh`) and answers with the refreshed entry's expiry.

use chrono::{DateTime, Duration, Utc};

use super::{decide, Code, Decision, RequestFacts, Verdict};
use crate::blacklist::BlacklistView;
use crate::model::App;
use crate::store::keyless::KeylessEntry;

/// The answer to a keyless request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyless {
    Valid {
        /// From the HWID's entry (an admin may grant premium); false without one.
        premium: bool,
        /// The entry's expiry; `None` when no entry applies (no HWID, or none made yet).
        expires_at: Option<DateTime<Utc>>,
        /// Make or refresh the HWID's entry: keyless mode is on and the entry is missing or past
        /// half its lifetime, so that a busy HWID does not write on every request.
        refresh: bool,
    },
    /// Neither keyless mode nor a live entry for this HWID.
    Disabled,
    /// A rule that needs no license refused it (paused app, blacklisted IP or HWID).
    Refused(Verdict),
}

pub fn decide_keyless(
    app: &App,
    entry: Option<&KeylessEntry>,
    blacklist: &BlacklistView,
    facts: RequestFacts<'_>,
    now: DateTime<Utc>,
) -> Keyless {
    // Without a license `decide` runs exactly the rules that precede the license's own.
    match decide(app, None, blacklist, facts, now) {
        Decision::Final(v) if v.code == Code::NotFound => {}
        Decision::Final(v) => return Keyless::Refused(v),
        Decision::Activate(_) => {}
    }
    let live = entry.filter(|e| e.expires_at > now && facts.hwid == Some(e.hwid.as_str()));
    let ks = &app.key_system;
    if ks.keyless_mode {
        let half_life = Duration::seconds(i64::from(ks.keyless_ttl_secs) / 2);
        let refresh = facts.hwid.is_some() && live.is_none_or(|e| e.expires_at - now < half_life);
        return Keyless::Valid {
            premium: live.is_some_and(|e| e.premium),
            expires_at: live.map(|e| e.expires_at),
            refresh,
        };
    }
    match live {
        Some(e) => Keyless::Valid {
            premium: e.premium,
            expires_at: Some(e.expires_at),
            refresh: false,
        },
        None => Keyless::Disabled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::app;
    use crate::model::{BlacklistEntry, BlacklistKind};
    use uuid::Uuid;

    fn entry(hwid: &str, expires_in_secs: i64, premium: bool) -> KeylessEntry {
        KeylessEntry {
            id: Uuid::new_v4(),
            app_id: Uuid::new_v4(),
            hwid: hwid.into(),
            premium,
            expires_at: Utc::now() + Duration::seconds(expires_in_secs),
            created_at: Utc::now(),
        }
    }

    fn facts(hwid: Option<&str>) -> RequestFacts<'_> {
        RequestFacts {
            hwid,
            ip: None,
            hwid_optional: false,
        }
    }

    fn keyless_app(on: bool) -> App {
        let mut a = app();
        a.key_system.keyless_mode = on;
        a.key_system.keyless_ttl_secs = 1000;
        a
    }

    #[test]
    fn keyless_mode_lets_anyone_in_and_refreshes_only_a_missing_or_aging_entry() {
        let a = keyless_app(true);
        let bl = BlacklistView::default();
        let now = Utc::now();
        let d = decide_keyless(&a, None, &bl, facts(Some("H")), now);
        assert_eq!(
            d,
            Keyless::Valid {
                premium: false,
                expires_at: None,
                refresh: true
            }
        );
        // Fresh (more than half its lifetime left): no write.
        let fresh = entry("H", 900, true);
        let d = decide_keyless(&a, Some(&fresh), &bl, facts(Some("H")), now);
        assert_eq!(
            d,
            Keyless::Valid {
                premium: true,
                expires_at: Some(fresh.expires_at),
                refresh: false
            }
        );
        let aging = entry("H", 400, false);
        assert!(matches!(
            decide_keyless(&a, Some(&aging), &bl, facts(Some("H")), now),
            Keyless::Valid { refresh: true, .. }
        ));
        // No HWID: let in, nothing to record.
        assert!(matches!(
            decide_keyless(&a, None, &bl, facts(None), now),
            Keyless::Valid {
                refresh: false,
                expires_at: None,
                ..
            }
        ));
    }

    #[test]
    fn without_keyless_mode_only_a_live_entry_for_that_hwid_passes() {
        let a = keyless_app(false);
        let bl = BlacklistView::default();
        let now = Utc::now();
        assert_eq!(
            decide_keyless(&a, None, &bl, facts(Some("H")), now),
            Keyless::Disabled
        );
        let admin = entry("H", 60, true);
        assert!(matches!(
            decide_keyless(&a, Some(&admin), &bl, facts(Some("H")), now),
            Keyless::Valid {
                premium: true,
                refresh: false,
                ..
            }
        ));
        let expired = entry("H", -1, true);
        assert_eq!(
            decide_keyless(&a, Some(&expired), &bl, facts(Some("H")), now),
            Keyless::Disabled
        );
        let other = entry("OTHER", 60, true);
        assert_eq!(
            decide_keyless(&a, Some(&other), &bl, facts(Some("H")), now),
            Keyless::Disabled
        );
    }

    #[test]
    fn paused_apps_and_blacklisted_hwids_are_refused_first() {
        let mut a = keyless_app(true);
        let bl = BlacklistView::from_entries(&[BlacklistEntry {
            id: Uuid::new_v4(),
            app_id: a.id,
            kind: BlacklistKind::Hwid,
            value: "BAD".into(),
            note: None,
            created_at: Utc::now(),
        }]);
        let now = Utc::now();
        match decide_keyless(&a, None, &bl, facts(Some("BAD")), now) {
            Keyless::Refused(v) => assert_eq!(v.code, Code::Blacklisted),
            d => panic!("expected a refusal, got {d:?}"),
        }
        a.paused = true;
        match decide_keyless(&a, None, &bl, facts(Some("H")), now) {
            Keyless::Refused(v) => assert_eq!(v.code, Code::AppPaused),
            d => panic!("expected a refusal, got {d:?}"),
        }
    }
}
