//! The validate route's own rate limit (spec §3.6): `limit` requests per `window` per client IP
//! (IPv6 by /64), default 200 per 15 minutes, with express-rate-limit's standard headers on
//! every answer of the route (`RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`) and
//! `Retry-After` on a 429.
//!
//! A GCRA limiter (governor) with a burst of `limit` refilled evenly over the window, so a client
//! gets its `limit` requests at once and then one every `window / limit`. `RateLimit-Reset` is
//! the seconds until the full budget is back. Idle addresses (back at full budget) are purged
//! like the validator's other limiters, periodically and at once past a bound.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use hyper::header::{HeaderName, HeaderValue, RETRY_AFTER};
use hyper::HeaderMap;

type Keyed =
    RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock, StateInformationMiddleware>;

pub struct RateLimit {
    limiter: Option<Keyed>,
    limit: u32,
    /// One request's share of the window.
    per_request: Duration,
    clock: DefaultClock,
    max_tracked: usize,
}

/// A request's standing against the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// No limit configured.
    Off,
    Allowed {
        remaining: u32,
        reset_secs: u64,
    },
    Refused {
        retry_after_secs: u64,
        reset_secs: u64,
    },
}

impl RateLimit {
    /// `limit == 0` turns the limit off.
    pub fn new(limit: u32, window: Duration, max_tracked: usize) -> RateLimit {
        let window = window.max(Duration::from_secs(1));
        let per_request = window / limit.max(1);
        let limiter = NonZeroU32::new(limit).and_then(|burst| {
            let quota = Quota::with_period(per_request.max(Duration::from_nanos(1)))?;
            Some(RateLimiter::keyed(quota.allow_burst(burst)).with_middleware())
        });
        RateLimit {
            limiter,
            limit,
            per_request,
            clock: DefaultClock::default(),
            max_tracked,
        }
    }

    pub fn check(&self, ip: IpAddr) -> Standing {
        let Some(limiter) = &self.limiter else {
            return Standing::Off;
        };
        match limiter.check_key(&prefix_key(ip)) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Standing::Allowed {
                    remaining,
                    reset_secs: whole_secs(self.per_request * self.limit.saturating_sub(remaining)),
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Standing::Refused {
                    retry_after_secs: whole_secs(wait).max(1),
                    // Full again once the wait is over and the rest of the budget refilled.
                    reset_secs: whole_secs(wait + self.per_request * self.limit.saturating_sub(1))
                        .max(1),
                }
            }
        }
    }

    /// Adds the standard headers of `standing` to an answer.
    pub fn headers(&self, standing: Standing, headers: &mut HeaderMap) {
        let (remaining, reset, retry_after) = match standing {
            Standing::Off => return,
            Standing::Allowed {
                remaining,
                reset_secs,
            } => (remaining, reset_secs, None),
            Standing::Refused {
                retry_after_secs,
                reset_secs,
            } => (0, reset_secs, Some(retry_after_secs)),
        };
        const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
        const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
        const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
        headers.insert(LIMIT, HeaderValue::from(self.limit));
        headers.insert(REMAINING, HeaderValue::from(remaining));
        headers.insert(RESET, HeaderValue::from(reset));
        if let Some(secs) = retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
    }

    /// True when the tracked addresses have grown past the bound and should be purged now.
    pub fn over_bound(&self) -> bool {
        self.tracked() > self.max_tracked
    }

    /// Drops the addresses that are back at their full budget.
    pub fn purge_idle(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    pub fn tracked(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }
}

/// Whole seconds, rounded up.
fn whole_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// IPv6 clients by their /64 (one host usually owns a whole /64), as the validator's other
/// per-client limits key them.
fn prefix_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_budget_counts_down_then_refuses_with_the_wait() {
        let l = RateLimit::new(3, Duration::from_secs(900), 100);
        let a = ip("192.0.2.1");
        let remaining: Vec<u32> = (0..3)
            .map(|_| match l.check(a) {
                Standing::Allowed { remaining, .. } => remaining,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        match l.check(a) {
            Standing::Refused {
                retry_after_secs,
                reset_secs,
            } => {
                // One request's share of the window: 300 s.
                assert!(
                    (299..=300).contains(&retry_after_secs),
                    "{retry_after_secs}"
                );
                assert!((899..=900).contains(&reset_secs), "{reset_secs}");
            }
            other => panic!("{other:?}"),
        }
        // Another address has its own budget; a /64 shares one.
        assert!(matches!(l.check(ip("192.0.2.2")), Standing::Allowed { .. }));
        assert!(matches!(
            l.check(ip("2001:db8::1")),
            Standing::Allowed { .. }
        ));
        assert!(matches!(
            l.check(ip("2001:db8::2")),
            Standing::Allowed { remaining: 1, .. }
        ));
        assert_eq!(l.tracked(), 3);
    }

    #[test]
    fn headers_of_each_standing() {
        let l = RateLimit::new(200, Duration::from_secs(900), 100);
        let mut h = HeaderMap::new();
        let s = l.check(ip("192.0.2.1"));
        l.headers(s, &mut h);
        assert_eq!(h["ratelimit-limit"], "200");
        assert_eq!(h["ratelimit-remaining"], "199");
        // One request's share (4.5 s) to refill, rounded up.
        assert_eq!(h["ratelimit-reset"], "5");
        assert!(h.get(RETRY_AFTER).is_none());
        let mut h = HeaderMap::new();
        l.headers(
            Standing::Refused {
                retry_after_secs: 4,
                reset_secs: 900,
            },
            &mut h,
        );
        assert_eq!(h["ratelimit-remaining"], "0");
        assert_eq!(h[RETRY_AFTER], "4");
    }

    #[test]
    fn zero_turns_it_off() {
        let l = RateLimit::new(0, Duration::from_secs(900), 100);
        for _ in 0..1000 {
            assert_eq!(l.check(ip("192.0.2.1")), Standing::Off);
        }
        let mut h = HeaderMap::new();
        l.headers(Standing::Off, &mut h);
        assert!(h.is_empty());
        assert_eq!(l.tracked(), 0);
    }
}
