//! Per-client-address rate limiting (governor, GCRA). IPv6 clients are keyed by their /64, since
//! one host usually owns a whole /64. Keyed state is purged of idle addresses periodically, and
//! within a second once it grows past the configured bound, so a flood of distinct addresses cannot grow
//! memory without limit.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// A keyed GCRA limiter whose idle keys can be purged.
pub struct Limiter<K: Hash + Eq + Clone> {
    limiter: Option<DefaultKeyedRateLimiter<K>>,
    clock: DefaultClock,
    max_tracked: usize,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// `per_sec == 0` disables limiting.
    pub fn new(per_sec: u32, burst: u32, max_tracked: usize) -> Self {
        let limiter = NonZeroU32::new(per_sec).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Limiter {
            limiter,
            clock: DefaultClock::default(),
            max_tracked,
        }
    }

    /// `Err(wait)` when the key is over its limit.
    pub fn check_key(&self, key: &K) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        match limiter.check_key(key) {
            Ok(()) => Ok(()),
            Err(not_until) => Err(not_until.wait_time_from(self.clock.now())),
        }
    }

    /// True when the keyed state has grown past its bound and should be purged now.
    pub fn over_bound(&self) -> bool {
        self.tracked() > self.max_tracked
    }

    /// Drops the state of keys that are back at full allowance.
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

fn prefix_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// Per client address (IPv6 by /64).
pub struct ClientLimiter(Limiter<IpAddr>);

impl ClientLimiter {
    pub fn new(per_sec: u32, burst: u32, max_tracked: usize) -> ClientLimiter {
        ClientLimiter(Limiter::new(per_sec, burst, max_tracked))
    }

    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.0.check_key(&prefix_key(ip))
    }

    pub fn over_bound(&self) -> bool {
        self.0.over_bound()
    }

    pub fn purge_idle(&self) {
        self.0.purge_idle()
    }

    pub fn tracked(&self) -> usize {
        self.0.tracked()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_with_wait_and_v6_prefix_sharing() {
        let l = ClientLimiter::new(1, 3, 10);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        let other: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        assert!(l.check(a).is_ok());
        assert!(l.check(b).is_ok());
        assert!(l.check(a).is_ok());
        let wait = l.check(b).expect_err("same /64 shares the budget");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(l.check(other).is_ok());
        assert_eq!(l.tracked(), 2);
    }

    #[test]
    fn disabled_never_limits() {
        let l = ClientLimiter::new(0, 0, 10);
        for _ in 0..1000 {
            assert!(l.check("192.0.2.1".parse().unwrap()).is_ok());
        }
        assert_eq!(l.tracked(), 0);
    }
}
