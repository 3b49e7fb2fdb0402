//! Rate limits (GCRA): per API key — its own limit or the default,
//! never more than the server's cap — and per IP for calls that fail to
//! authenticate, for sign-in attempts and for client registrations.
//!
//! Where they are counted:
//! - **Without `TESSERA_REDIS_URL`**, each instance counts its own
//!   requests (`governor`), reading time from the injected clock
//!   (`AppState.clock`), so tests move time instead of sleeping.
//! - **With it**, every instance counts in Redis: one round trip per check
//!   (`GCRA_SCRIPT`, a Lua script run with EVALSHA), time read from
//!   Redis's clock so the instances' clocks need not agree, keys named
//!   after the issuer (one fleet, one namespace) and expiring once full
//!   again. Bucket names are hashed: nothing a caller sent is stored.
//!
//! When Redis cannot be reached within `REDIS_TIMEOUT` (then for
//! `REDIS_BACKOFF` without trying), a check decides without it, by what
//! the limit guards:
//! - an authenticated API key (or token) **passes**: an outage of the
//!   limiter must not take the API down with it;
//! - a failed authentication counts against this instance's own per-IP
//!   limiter (its 256-bit keys are not guessable, but its audit writes
//!   stay bounded);
//! - a sign-in or a client registration is **refused** (503): password
//!   guessing and mass registration are what these limits exist to stop.
//!
//! The outage is logged once a minute at most, counted in
//! `tessera_rate_limiter_unavailable_total`, and `/readyz` reports it as
//! degraded (still 200: the instance serves).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::Clock as _;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::{NotUntil, Quota, RateLimiter};

use crate::clock::SharedClock;
use crate::config::RedisUrl;
use crate::http::error::{ApiError, ErrorKind};

/// Limiters are pruned, then rebuilt if still this big, when they track
/// this many keys.
const MAX_TRACKED: usize = 100_000;

/// The longest a check waits for Redis before deciding without it.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// After Redis failed, checks decide without it for this long, so an
/// outage costs one timeout per instance per interval, not one per request.
pub const REDIS_BACKOFF: Duration = Duration::from_secs(1);
/// An outage is logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// GCRA in one round trip. `KEYS[1]`: the bucket; `ARGV[1]`: the emission
/// interval (µs of budget one request spends); `ARGV[2]`: the burst
/// (requests). The bucket holds the theoretical arrival time (µs, Redis's
/// clock) and expires when the bucket is full again. Answers `{1, 0}`
/// when allowed, `{0, wait_µs}` when not. `replicate_commands` lets a
/// Redis before 5 write after `TIME` (a no-op since; needs 3.2).
const GCRA_SCRIPT: &str = r"
redis.replicate_commands()
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - now - burst * interval
if wait > 0 then
  return {0, wait}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
";

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

/// The limits the server enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// A key without a limit of its own, per second (`TESSERA_API_RATE_LIMIT`).
    pub default_per_key: u32,
    /// The most any key gets, whatever it asks (`TESSERA_API_RATE_LIMIT_MAX`).
    pub max_per_key: u32,
    /// Failed authentications per second per IP (`TESSERA_IP_RATE_LIMIT`).
    pub failures_per_ip: u32,
    /// Client registrations per minute per IP
    /// (`TESSERA_REGISTRATION_RATE_LIMIT`).
    pub registrations_per_minute: u32,
    /// Sign-in attempts per minute per IP (`TESSERA_SIGNIN_RATE_LIMIT`).
    pub signins_per_minute: u32,
}

/// Which limit a check counts against: the `limit` label of the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    ApiKey,
    Ip,
    Registration,
    SignIn,
    /// `/readyz`'s own check of the script.
    Ready,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Ip => "ip",
            Self::Registration => "registration",
            Self::SignIn => "sign_in",
            Self::Ready => "readyz",
        }
    }

    /// Part of the Redis key: short, fixed.
    fn tag(self) -> &'static str {
        match self {
            Self::ApiKey => "k",
            Self::Ip => "ip",
            Self::Registration => "reg",
            Self::SignIn => "in",
            Self::Ready => "ready",
        }
    }
}

/// A check's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allowed,
    /// Over the limit: the budget allows another request after this long.
    Wait(Duration),
}

/// The shared limiter could not be asked.
#[derive(Debug)]
struct Unreachable;

/// A rate `per` second or minute, with a burst of the same size.
#[derive(Debug, Clone, Copy)]
struct Rate {
    count: u32,
    per: Duration,
}

impl Rate {
    fn per_second(count: u32) -> Self {
        Self { count: count.max(1), per: Duration::from_secs(1) }
    }

    fn per_minute(count: u32) -> Self {
        Self { count: count.max(1), per: Duration::from_secs(60) }
    }

    fn quota(self) -> Quota {
        let n = NonZeroU32::new(self.count).unwrap_or(NonZeroU32::MIN);
        if self.per >= Duration::from_secs(60) { Quota::per_minute(n) } else { Quota::per_second(n) }
    }

    fn unit(self) -> &'static str {
        if self.per >= Duration::from_secs(60) { "minute" } else { "second" }
    }
}

/// The limits counted in Redis, shared by every instance of one issuer.
pub struct Shared {
    url: RedisUrl,
    client: redis::Client,
    /// Made on first use, inside the server's runtime; dropped after a
    /// timeout, so that a connection that went silent (no reset: a host
    /// gone, a black-holed route) is replaced rather than waited on.
    conn: Mutex<Option<redis::aio::ConnectionManager>>,
    script: redis::Script,
    /// `tessera:rl:<hash of the issuer>:`.
    prefix: String,
    /// Until when checks skip Redis after a failure.
    down_until: Mutex<Option<Instant>>,
    /// When the backoff ends, one check asks Redis; the others go on
    /// deciding without it until that one has an answer.
    probing: AtomicBool,
    last_logged: Mutex<Option<Instant>>,
    /// The last round trip failed (for the log on recovery).
    failing: AtomicBool,
}

impl Shared {
    /// The limiter for the fleet of `issuer`; an error (for the operator,
    /// without the password) if `url` is not one the client can use.
    pub fn new(url: RedisUrl, issuer: &str) -> Result<Self, String> {
        use redis::IntoConnectionInfo;
        let namespace = &crate::crypto::fingerprint(issuer)[..16];
        // A silent peer is given up by the kernel within seconds, not the
        // default quarter of an hour.
        let tcp = redis::io::tcp::TcpSettings::default()
            .set_keepalive(
                redis::io::tcp::socket2::TcpKeepalive::new()
                    .with_time(Duration::from_secs(5))
                    .with_interval(Duration::from_secs(1)),
            )
            .set_user_timeout(Duration::from_secs(2));
        let info = url
            .expose()
            .into_connection_info()
            .map_err(|e| format!("{url} is not a Redis URL the client accepts: {e}"))?
            .set_tcp_settings(tcp);
        let client = redis::Client::open(info).map_err(|e| format!("{url}: {e}"))?;
        Ok(Self {
            url,
            client,
            conn: Mutex::new(None),
            script: redis::Script::new(GCRA_SCRIPT),
            prefix: format!("tessera:rl:{namespace}:"),
            down_until: Mutex::new(None),
            probing: AtomicBool::new(false),
            last_logged: Mutex::new(None),
            failing: AtomicBool::new(false),
        })
    }

    fn connection(&self, limit: Limit) -> Result<redis::aio::ConnectionManager, Unreachable> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(made) = conn.as_ref() {
            return Ok(made.clone());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(100));
        match redis::aio::ConnectionManager::new_lazy_with_config(self.client.clone(), config) {
            Ok(made) => Ok(conn.insert(made).clone()),
            Err(e) => {
                drop(conn);
                self.failed(limit, &e);
                Err(Unreachable)
            }
        }
    }

    /// Notes a failed round trip: back off, and log at most once a minute.
    fn failed(&self, limit: Limit, cause: &dyn std::fmt::Display) {
        self.failing.store(true, Ordering::Relaxed);
        *self.down_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + REDIS_BACKOFF);
        self.probing.store(false, Ordering::Release);
        metrics::counter!("tessera_rate_limiter_unavailable_total", "limit" => limit.as_str()).increment(1);
        let mut last = self.last_logged.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(
                redis = %self.url,
                error = %cause,
                "Redis is unreachable: API keys pass unlimited, failed authentications count per instance, \
                 sign-in and registration are refused (logged once a minute while it lasts)"
            );
        }
    }

    /// Whether this check decides without Redis: during the backoff, and
    /// after it while another check is the one probing Redis.
    fn backing_off(&self) -> bool {
        let down = *self.down_until.lock().unwrap_or_else(|e| e.into_inner());
        match down {
            Some(until) if Instant::now() < until => true,
            Some(_) => self.probing.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_err(),
            None => false,
        }
    }

    /// A round trip that went wrong: a timeout also drops the connection,
    /// which may be a socket nobody answers on any more.
    fn broke(&self, limit: Limit, cause: &dyn std::fmt::Display, timed_out: bool) {
        if timed_out {
            *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        self.failed(limit, cause);
    }

    /// Notes a round trip that worked: any backoff ends.
    fn succeeded(&self) {
        self.probing.store(false, Ordering::Release);
        if self.failing.swap(false, Ordering::Relaxed) {
            *self.down_until.lock().unwrap_or_else(|e| e.into_inner()) = None;
            tracing::warn!(redis = %self.url, "Redis answers again: rate limits are shared again");
        }
    }

    /// One GCRA check of `bucket` in Redis.
    async fn check(&self, limit: Limit, bucket: &str, rate: Rate) -> Result<Verdict, Unreachable> {
        if self.backing_off() {
            metrics::counter!("tessera_rate_limiter_unavailable_total", "limit" => limit.as_str()).increment(1);
            return Err(Unreachable);
        }
        let mut conn = self.connection(limit)?;
        let interval_us = (rate.per.as_micros() / u128::from(rate.count)).max(1);
        let key =
            format!("{}{}:{}:{}", self.prefix, limit.tag(), rate.count, &crate::crypto::fingerprint(bucket)[..32]);
        let mut invocation = self.script.key(key);
        invocation.arg(interval_us.to_string()).arg(rate.count);
        let call = invocation.invoke_async::<(i64, i64)>(&mut conn);
        match tokio::time::timeout(REDIS_TIMEOUT, call).await {
            Ok(Ok((allowed, wait_us))) => {
                self.succeeded();
                Ok(if allowed == 1 {
                    Verdict::Allowed
                } else {
                    Verdict::Wait(Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)))
                })
            }
            Ok(Err(e)) => {
                self.broke(limit, &e, e.is_timeout());
                Err(Unreachable)
            }
            Err(_) => {
                self.broke(limit, &"no answer within the timeout", true);
                Err(Unreachable)
            }
        }
    }

    /// For `/readyz`: whether a check works now (the script itself, on a
    /// bucket of its own, so that a Redis that answers PING but refuses
    /// the script — too old, read-only, out of memory, no permission —
    /// reads as unreachable, as the checks find it).
    pub async fn ready(&self) -> bool {
        let probe = Rate { count: 1_000_000, per: Duration::from_secs(1) };
        self.check(Limit::Ready, "readyz", probe).await.is_ok()
    }
}

/// Every limit of one server: counted locally, or in Redis when `shared`.
pub struct RateLimits {
    settings: LimitSettings,
    /// Failed authentications, per IP (an IPv6 /64 is one caller).
    per_ip: KeyedLimiter<String>,
    /// `POST /oauth/register` and `POST /login`, per IP, each a bucket of
    /// its own. By `sessions::ip_subject`: an IPv6 /64 is one caller.
    registrations: KeyedLimiter<String>,
    signins: KeyedLimiter<String>,
    /// One keyed limiter per distinct per-second limit.
    by_limit: Mutex<HashMap<u32, Arc<KeyedLimiter<String>>>>,
    clock: LimiterClock,
    shared: Option<Shared>,
}

/// Whole seconds, rounded up: a client that waits `Retry-After` seconds
/// must find the limiter ready, so 1.2 s is 2, never 1.
fn ceil_secs(wait: Duration) -> u64 {
    wait.as_nanos().div_ceil(1_000_000_000).try_into().unwrap_or(u64::MAX).max(1)
}

/// Forgets the buckets that are full again once a limiter tracks too many.
fn bounded<K: std::hash::Hash + Eq + Clone>(limiter: &KeyedLimiter<K>) {
    if limiter.len() > MAX_TRACKED {
        limiter.retain_recent();
    }
}

impl RateLimits {
    /// Limiters over `clock`, the server's injected clock; counted in
    /// Redis when `shared` is given.
    pub fn new(settings: LimitSettings, clock: SharedClock, shared: Option<Shared>) -> Self {
        let clock = LimiterClock(clock);
        let keyed = |rate: Rate| RateLimiter::dashmap_with_clock(rate.quota(), clock.clone());
        Self {
            settings,
            per_ip: keyed(Rate::per_second(settings.failures_per_ip)),
            registrations: keyed(Rate::per_minute(settings.registrations_per_minute)),
            signins: keyed(Rate::per_minute(settings.signins_per_minute)),
            by_limit: Mutex::default(),
            clock,
            shared,
        }
    }

    /// The shared limiter, when the limits are counted in Redis.
    pub fn shared(&self) -> Option<&Shared> {
        self.shared.as_ref()
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

    fn local_verdict(&self, checked: Result<(), NotUntil<Nanos>>) -> Verdict {
        match checked {
            Ok(()) => Verdict::Allowed,
            Err(not_until) => Verdict::Wait(not_until.wait_time_from(self.clock.now())),
        }
    }

    /// A verdict as the caller's answer: a 429 (counted) when over `rate`.
    fn answer(verdict: Verdict, limit: Limit, rate: Rate, what: &str) -> Result<(), ApiError> {
        let Verdict::Wait(wait) = verdict else { return Ok(()) };
        metrics::counter!("tessera_rate_limited_total", "limit" => limit.as_str()).increment(1);
        Err(ApiError {
            retry_after: Some(ceil_secs(wait)),
            rate_limit: Some(rate.count),
            ..ApiError::new(
                ErrorKind::RateLimited,
                "rate_limit_exceeded",
                format!("Too many requests {what}: the limit is {} per {}", rate.count, rate.unit()),
            )
        })
    }

    fn unavailable(what: &str) -> ApiError {
        ApiError {
            retry_after: Some(REDIS_BACKOFF.as_secs().max(1)),
            ..ApiError::new(
                ErrorKind::ServiceUnavailable,
                "rate_limiter_unavailable",
                format!("{what} is unavailable for a moment; try again shortly"),
            )
        }
    }

    /// Counts one request of API key (or token) `bucket`, whose own limit
    /// is `limit`. Passes when the shared limiter is unreachable.
    pub async fn check_key(&self, bucket: &str, limit: Option<i64>) -> Result<(), ApiError> {
        let rate = Rate::per_second(self.per_key_limit(limit));
        let verdict = match &self.shared {
            Some(shared) => shared.check(Limit::ApiKey, bucket, rate).await.unwrap_or(Verdict::Allowed),
            None => {
                let limiter = {
                    let mut map = self.by_limit.lock().unwrap_or_else(|e| e.into_inner());
                    let limiter = map
                        .entry(rate.count)
                        .or_insert_with(|| Arc::new(RateLimiter::dashmap_with_clock(rate.quota(), self.clock.clone())));
                    if limiter.len() > MAX_TRACKED {
                        // Keys idle long enough to be full again carry no state
                        // worth keeping; only if that is not enough is
                        // everything forgotten.
                        limiter.retain_recent();
                        if limiter.len() > MAX_TRACKED {
                            *limiter = Arc::new(RateLimiter::dashmap_with_clock(rate.quota(), self.clock.clone()));
                        }
                    }
                    limiter.clone()
                };
                self.local_verdict(limiter.check_key(&bucket.to_string()))
            }
        };
        Self::answer(verdict, Limit::ApiKey, rate, "with this API key")
    }

    /// Counts one failed authentication from `ip`; an error once the IP is
    /// over its limit. Counted by this instance alone while the shared
    /// limiter is unreachable.
    pub async fn check_failure(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let rate = Rate::per_second(self.settings.failures_per_ip);
        self.check_ip(Limit::Ip, &self.per_ip, rate, ip, "from this IP address", None).await
    }

    /// Counts one request from `ip` (an IPv6 /64 as one) against `limit`:
    /// in Redis when shared, else in `local`. While Redis is unreachable,
    /// `refused` names what answers 503 instead (fails closed); `None`
    /// counts in `local` (per instance).
    async fn check_ip(
        &self,
        limit: Limit,
        local: &KeyedLimiter<String>,
        rate: Rate,
        ip: Option<IpAddr>,
        what: &str,
        refused: Option<&str>,
    ) -> Result<(), ApiError> {
        let Some(ip) = ip else { return Ok(()) };
        let subject = crate::sessions::ip_subject(ip);
        let shared = match &self.shared {
            Some(shared) => match (shared.check(limit, &subject, rate).await, refused) {
                (Ok(verdict), _) => Some(verdict),
                (Err(Unreachable), Some(refused)) => return Err(Self::unavailable(refused)),
                (Err(Unreachable), None) => None,
            },
            None => None,
        };
        let verdict = shared.unwrap_or_else(|| {
            bounded(local);
            self.local_verdict(local.check_key(&subject))
        });
        Self::answer(verdict, limit, rate, what)
    }

    /// Counts one client registration from `ip`.
    pub async fn check_registration(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let rate = Rate::per_minute(self.settings.registrations_per_minute);
        let what = "to register clients from this IP address";
        self.check_ip(Limit::Registration, &self.registrations, rate, ip, what, Some("Client registration")).await
    }

    /// Counts one sign-in attempt from `ip`, before its password is checked.
    pub async fn check_signin(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let rate = Rate::per_minute(self.settings.signins_per_minute);
        let what = "to sign in from this IP address";
        self.check_ip(Limit::SignIn, &self.signins, rate, ip, what, Some("Signing in")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn limits(clock: &ManualClock, default_per_key: u32, max_per_key: u32) -> RateLimits {
        let settings = LimitSettings {
            default_per_key,
            max_per_key,
            failures_per_ip: 2,
            registrations_per_minute: 2,
            signins_per_minute: 2,
        };
        RateLimits::new(settings, Arc::new(clock.clone()), None)
    }

    #[tokio::test]
    async fn registrations_count_an_ipv6_slash_64_as_one_caller() {
        let l = limits(&ManualClock::frozen(), 100, 1000);
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(l.check_registration(ip("2001:db8:1:2::1")).await.is_ok());
        assert!(l.check_registration(ip("2001:db8:1:2::ffff:7")).await.is_ok());
        assert!(l.check_registration(ip("2001:db8:1:2:abcd::9")).await.is_err(), "the same /64: its budget is spent");
        assert!(l.check_registration(ip("2001:db8:1:3::1")).await.is_ok(), "another /64");
        assert!(l.check_registration(ip("192.0.2.1")).await.is_ok());
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

    #[tokio::test]
    async fn the_limiter_follows_the_injected_clock() {
        let clock = ManualClock::new();
        let l = limits(&clock, 1, 1000);
        assert!(l.check_key("key_a", None).await.is_ok());
        let refused = l.check_key("key_a", None).await.unwrap_err();
        assert_eq!((refused.retry_after, refused.rate_limit), (Some(1), Some(1)));
        assert!(l.check_key("key_b", None).await.is_ok(), "each key has its own budget");
        // An hour of injected time, however little wall time passed.
        clock.advance(chrono::Duration::hours(1));
        assert!(l.check_key("key_a", None).await.is_ok());
    }
}
