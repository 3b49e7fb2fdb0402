//! Rate limits on `/v1` (GCRA, `governor`): per API key — its own limit
//! or the default — and per IP for calls that fail to authenticate.
//! Limits are per instance: each instance counts its own requests.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::{ApiError, ErrorKind};

/// Limiters are dropped and rebuilt when they track this many keys.
const MAX_TRACKED: usize = 100_000;

pub struct RateLimits {
    default_per_key: u32,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_ip_limit: u32,
    /// One keyed limiter per distinct per-second limit.
    by_limit: Mutex<HashMap<u32, Arc<DefaultKeyedRateLimiter<String>>>>,
    clock: DefaultClock,
}

fn quota(per_second: u32) -> Quota {
    Quota::per_second(NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN))
}

fn exceeded(limit: u32, wait: std::time::Duration, what: &str) -> ApiError {
    ApiError {
        retry_after: Some(wait.as_secs().max(1)),
        rate_limit: Some(limit),
        ..ApiError::new(
            ErrorKind::RateLimited,
            "rate_limit_exceeded",
            format!("Too many requests {what}: the limit is {limit} per second"),
        )
    }
}

impl RateLimits {
    pub fn new(default_per_key: u32, per_ip: u32) -> Self {
        Self {
            default_per_key,
            per_ip: RateLimiter::keyed(quota(per_ip)),
            per_ip_limit: per_ip,
            by_limit: Mutex::default(),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request of API key `id`, whose own limit is `limit`.
    pub fn check_key(&self, id: &str, limit: Option<i64>) -> Result<(), ApiError> {
        let per_second = limit.and_then(|l| u32::try_from(l).ok()).unwrap_or(self.default_per_key);
        let limiter = {
            let mut map = self.by_limit.lock().unwrap_or_else(|e| e.into_inner());
            let limiter = map.entry(per_second).or_insert_with(|| Arc::new(RateLimiter::keyed(quota(per_second))));
            if limiter.len() > MAX_TRACKED {
                *limiter = Arc::new(RateLimiter::keyed(quota(per_second)));
            }
            limiter.clone()
        };
        limiter
            .check_key(&id.to_string())
            .map_err(|not_until| exceeded(per_second, not_until.wait_time_from(self.clock.now()), "with this API key"))
    }

    /// Counts one failed authentication from `ip`; an error once the IP is
    /// over its limit.
    pub fn check_failure(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = ip else { return Ok(()) };
        if self.per_ip.len() > MAX_TRACKED {
            self.per_ip.retain_recent();
        }
        self.per_ip.check_key(&ip).map_err(|not_until| {
            exceeded(self.per_ip_limit, not_until.wait_time_from(self.clock.now()), "from this IP address")
        })
    }
}
