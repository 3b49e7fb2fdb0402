//! Rate limits on `/v1` (GCRA, `governor`): per API key — its own limit
//! or the default, never more than the server's cap — and per IP for calls
//! that fail to authenticate. Limits are per instance: each instance
//! counts its own requests.
//!
//! The limiters read time from the injected clock (`AppState.clock`), not
//! from the system, so tests move time forward with the `ManualClock`
//! instead of sleeping, and the rules agree with every other expiry.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::{NotUntil, Quota, RateLimiter};

use crate::clock::SharedClock;
use crate::error::{ApiError, ErrorKind};

/// Limiters are pruned, then rebuilt if still this big, when they track
/// this many keys.
const MAX_TRACKED: usize = 100_000;

/// `governor`'s view of the injected clock: nanoseconds since the Unix
/// epoch as that clock reads them. A clock that steps back reads as no
/// time passing (governor's references saturate), never as a panic.
#[derive(Clone)]
pub struct LimiterClock(SharedClock);

impl governor::clock::Clock for LimiterClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        let nanos = self.0.now().timestamp_nanos_opt().unwrap_or(0);
        Nanos::new(u64::try_from(nanos).unwrap_or(0))
    }
}

type KeyedLimiter<K> = RateLimiter<K, DashMapStateStore<K>, LimiterClock, NoOpMiddleware<Nanos>>;

/// The limits the server enforces, in requests per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// A key without a limit of its own (`TESSERA_API_RATE_LIMIT`).
    pub default_per_key: u32,
    /// The most any key gets, whatever it asks (`TESSERA_API_RATE_LIMIT_MAX`).
    pub max_per_key: u32,
    /// Failed authentications per IP (`TESSERA_IP_RATE_LIMIT`).
    pub failures_per_ip: u32,
    /// Client registrations per minute per IP
    /// (`TESSERA_REGISTRATION_RATE_LIMIT`).
    pub registrations_per_minute: u32,
}

pub struct RateLimits {
    settings: LimitSettings,
    per_ip: KeyedLimiter<IpAddr>,
    /// `POST /oauth/register`, per IP: a bucket of its own.
    /// By `sessions::ip_subject`: an IPv6 /64 is one caller.
    registrations: KeyedLimiter<String>,
    /// One keyed limiter per distinct per-second limit.
    by_limit: Mutex<HashMap<u32, Arc<KeyedLimiter<String>>>>,
    clock: LimiterClock,
}

fn quota(per_second: u32) -> Quota {
    Quota::per_second(NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN))
}

/// Whole seconds, rounded up: a client that waits `Retry-After` seconds
/// must find the limiter ready, so 1.2 s is 2, never 1.
fn ceil_secs(wait: Duration) -> u64 {
    wait.as_nanos().div_ceil(1_000_000_000).try_into().unwrap_or(u64::MAX).max(1)
}

impl RateLimits {
    /// Limiters over `clock`, the server's injected clock.
    pub fn new(settings: LimitSettings, clock: SharedClock) -> Self {
        let clock = LimiterClock(clock);
        Self {
            settings,
            per_ip: RateLimiter::dashmap_with_clock(quota(settings.failures_per_ip), clock.clone()),
            registrations: RateLimiter::dashmap_with_clock(
                Quota::per_minute(NonZeroU32::new(settings.registrations_per_minute).unwrap_or(NonZeroU32::MIN)),
                clock.clone(),
            ),
            by_limit: Mutex::default(),
            clock,
        }
    }

    /// The requests per second a key with its own `limit` gets: that limit
    /// or the default, capped by the server's maximum, at least 1.
    pub fn per_key_limit(&self, limit: Option<i64>) -> u32 {
        let max = self.settings.max_per_key.max(1);
        match limit {
            Some(own) => u32::try_from(own.clamp(1, i64::from(max))).unwrap_or(max),
            None => self.settings.default_per_key.clamp(1, max),
        }
    }

    fn exceeded(&self, limit: u32, not_until: &NotUntil<Nanos>, what: &str) -> ApiError {
        self.exceeded_per(limit, "second", not_until, what)
    }

    fn exceeded_per(&self, limit: u32, per: &str, not_until: &NotUntil<Nanos>, what: &str) -> ApiError {
        let wait = not_until.wait_time_from(self.clock.now());
        ApiError {
            retry_after: Some(ceil_secs(wait)),
            rate_limit: Some(limit),
            ..ApiError::new(
                ErrorKind::RateLimited,
                "rate_limit_exceeded",
                format!("Too many requests {what}: the limit is {limit} per {per}"),
            )
        }
    }

    /// Counts one request of API key `id`, whose own limit is `limit`.
    pub fn check_key(&self, id: &str, limit: Option<i64>) -> Result<(), ApiError> {
        let per_second = self.per_key_limit(limit);
        let limiter = {
            let mut map = self.by_limit.lock().unwrap_or_else(|e| e.into_inner());
            let limiter = map
                .entry(per_second)
                .or_insert_with(|| Arc::new(RateLimiter::dashmap_with_clock(quota(per_second), self.clock.clone())));
            if limiter.len() > MAX_TRACKED {
                // Keys idle long enough to be full again carry no state worth
                // keeping; only if that is not enough is everything forgotten.
                limiter.retain_recent();
                if limiter.len() > MAX_TRACKED {
                    *limiter = Arc::new(RateLimiter::dashmap_with_clock(quota(per_second), self.clock.clone()));
                }
            }
            limiter.clone()
        };
        limiter
            .check_key(&id.to_string())
            .map_err(|not_until| self.exceeded(per_second, &not_until, "with this API key"))
    }

    /// Counts one failed authentication from `ip`; an error once the IP is
    /// over its limit.
    pub fn check_failure(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = ip else { return Ok(()) };
        if self.per_ip.len() > MAX_TRACKED {
            self.per_ip.retain_recent();
        }
        self.per_ip
            .check_key(&ip)
            .map_err(|not_until| self.exceeded(self.settings.failures_per_ip, &not_until, "from this IP address"))
    }

    /// Counts one client registration from `ip`.
    pub fn check_registration(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = ip else { return Ok(()) };
        if self.registrations.len() > MAX_TRACKED {
            self.registrations.retain_recent();
        }
        self.registrations.check_key(&crate::sessions::ip_subject(ip)).map_err(|not_until| {
            let limit = self.settings.registrations_per_minute;
            self.exceeded_per(limit, "minute", &not_until, "to register clients from this IP address")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn limits(clock: &ManualClock, default_per_key: u32, max_per_key: u32) -> RateLimits {
        let settings = LimitSettings { default_per_key, max_per_key, failures_per_ip: 2, registrations_per_minute: 2 };
        RateLimits::new(settings, Arc::new(clock.clone()))
    }

    #[test]
    fn registrations_count_an_ipv6_slash_64_as_one_caller() {
        let l = limits(&ManualClock::frozen(), 100, 1000);
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(l.check_registration(ip("2001:db8:1:2::1")).is_ok());
        assert!(l.check_registration(ip("2001:db8:1:2::ffff:7")).is_ok());
        assert!(l.check_registration(ip("2001:db8:1:2:abcd::9")).is_err(), "the same /64: its budget is spent");
        assert!(l.check_registration(ip("2001:db8:1:3::1")).is_ok(), "another /64");
        assert!(l.check_registration(ip("192.0.2.1")).is_ok());
    }

    #[test]
    fn a_key_never_gets_more_than_the_cap() {
        let l = limits(&ManualClock::new(), 100, 1000);
        assert_eq!(l.per_key_limit(None), 100);
        assert_eq!(l.per_key_limit(Some(5)), 5);
        assert_eq!(l.per_key_limit(Some(1000)), 1000);
        assert_eq!(l.per_key_limit(Some(1001)), 1000);
        assert_eq!(l.per_key_limit(Some(i64::MAX)), 1000, "beyond u32 is capped, not the default");
        assert_eq!(l.per_key_limit(Some(0)), 1);
        assert_eq!(l.per_key_limit(Some(-7)), 1);
        // A default above the cap is capped too.
        assert_eq!(limits(&ManualClock::new(), 5000, 1000).per_key_limit(None), 1000);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(ceil_secs(Duration::ZERO), 1);
        assert_eq!(ceil_secs(Duration::from_millis(200)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(1)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1200)), 2);
    }

    #[test]
    fn the_limiter_follows_the_injected_clock() {
        let clock = ManualClock::new();
        let l = limits(&clock, 1, 1000);
        assert!(l.check_key("key_a", None).is_ok());
        let refused = l.check_key("key_a", None).unwrap_err();
        assert_eq!((refused.retry_after, refused.rate_limit), (Some(1), Some(1)));
        assert!(l.check_key("key_b", None).is_ok(), "each key has its own budget");
        // An hour of injected time, however little wall time passed.
        clock.advance(chrono::Duration::hours(1));
        assert!(l.check_key("key_a", None).is_ok());
    }
}
