//! What API keys are used for: each `/v1` use is noted in memory on the
//! request path (cheap, bounded, never blocking on the database) and a
//! background task writes the batch every few seconds: `last_used`, the
//! per-day counters by outcome, and each key's last uses.
//!
//! Memory is bounded: the counters hold one entry per key and day (at most
//! `MAX_COUNTERS`), the uses at most `RECENT_PER_KEY` per key and
//! `MAX_PENDING_USES` in all; what does not fit is dropped and counted, and
//! the count is logged at the next flush.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::Connection;

use crate::clock::Clock;
use crate::store::key_usage::{self, DailyUsageRow, UseRow};
use crate::store::{DbConn, StoreError, api_keys};

/// Uses kept per key, in memory and in the database.
pub const RECENT_PER_KEY: usize = 50;
/// Days the counters are kept for (the purge deletes older ones), and the
/// days the key's page shows.
pub const DAYS_KEPT: u32 = 30;
/// Distinct (key, day) counters held between two flushes.
const MAX_COUNTERS: usize = 100_000;
/// Uses held between two flushes, all keys together.
const MAX_PENDING_USES: usize = 20_000;
/// A path longer than this is cut: it is for a person to read, and a long
/// one must not cost the buffer more.
const MAX_PATH_LEN: usize = 256;

/// How a use of a key ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Authenticated, within its restrictions, permissions and rate limit.
    Allowed,
    /// Refused by one of the key's restrictions (IP, referrer, endpoint) or
    /// for a permission it lacks: 403.
    Refused,
    /// Refused by the key's rate limit: 429.
    RateLimited,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Refused => "refused",
            Self::RateLimited => "rate_limited",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "allowed" => Some(Self::Allowed),
            "refused" => Some(Self::Refused),
            "rate_limited" => Some(Self::RateLimited),
            _ => None,
        }
    }
}

/// One use of a key, as noted on the request path and as shown.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Use {
    pub at: DateTime<Utc>,
    pub ip: Option<String>,
    pub method: String,
    /// The path only, never the query string (it may hold secrets).
    pub path: String,
    pub outcome: Outcome,
}

impl Use {
    /// A use at `at`; `path` must not hold the query string (the caller
    /// passes `HttpRequest::path`), and is cut to a bounded length.
    pub fn new(at: DateTime<Utc>, ip: Option<std::net::IpAddr>, method: &str, path: &str, outcome: Outcome) -> Self {
        let mut end = path.len().min(MAX_PATH_LEN);
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        Self { at, ip: ip.map(|i| i.to_string()), method: method.to_string(), path: path[..end].to_string(), outcome }
    }
}

/// A key's uses on one UTC day, by outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DayCount {
    pub day: NaiveDate,
    pub allowed: u64,
    pub refused: u64,
    pub rate_limited: u64,
}

impl DayCount {
    pub fn total(&self) -> u64 {
        self.allowed + self.refused + self.rate_limited
    }
}

/// What was noted since the last flush.
#[derive(Debug, Default)]
struct Pending {
    /// When each key's `last_used` was last noted (at most once a minute).
    last: HashMap<String, DateTime<Utc>>,
    /// Keys whose `last_used` is to be written.
    touched: Vec<String>,
    /// (key, day) → [allowed, refused, rate_limited].
    counts: HashMap<(String, NaiveDate), [u64; 3]>,
    /// Per key, its newest uses (with their order number), oldest first.
    uses: HashMap<String, VecDeque<(i64, Use)>>,
    /// Uses held in `uses`, all keys together.
    held: usize,
}

/// Notes uses in memory, so that the database is written in batches off
/// the request path. One per server, shared by the workers.
#[derive(Debug, Default)]
pub struct UsageRecorder {
    inner: Mutex<Pending>,
    /// Orders uses noted in the same microsecond (the clock's resolution).
    seq: AtomicI64,
    /// Uses or counters dropped because the buffer was full, since the last
    /// flush.
    dropped: AtomicU64,
    /// When a flush last succeeded (`/metrics`: the batch's lag).
    flushed_at: Mutex<Option<std::time::Instant>>,
}

impl UsageRecorder {
    /// Notes that a flush succeeded now.
    pub fn flushed(&self) {
        *self.flushed_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(std::time::Instant::now());
    }

    /// How long ago a flush last succeeded; `None` before the first.
    pub fn since_last_flush(&self) -> Option<std::time::Duration> {
        self.flushed_at.lock().unwrap_or_else(|e| e.into_inner()).map(|at| at.elapsed())
    }

    /// Notes that key `id` authenticated at `now`, for `last_used` (written
    /// at most once a minute per key); cheap, in memory.
    pub fn note(&self, id: &str, now: DateTime<Utc>) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let p = &mut *guard;
        if p.last.get(id).is_none_or(|t| now - *t >= chrono::Duration::seconds(60)) {
            if p.last.len() > MAX_COUNTERS {
                p.last.clear();
            }
            p.last.insert(id.to_string(), now);
            p.touched.push(id.to_string());
        }
    }

    /// Notes a use of key `id` and its outcome for the key's counters and
    /// last uses; cheap, in memory, never waits on the database. A full
    /// buffer drops the use and counts it.
    pub fn record(&self, id: &str, used: Use) {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let p = &mut *guard;
        let day_key = (id.to_string(), used.at.date_naive());
        let slot = match used.outcome {
            Outcome::Allowed => 0,
            Outcome::Refused => 1,
            Outcome::RateLimited => 2,
        };
        if let Some(counts) = p.counts.get_mut(&day_key) {
            counts[slot] += 1;
        } else if p.counts.len() < MAX_COUNTERS {
            let mut counts = [0; 3];
            counts[slot] = 1;
            p.counts.insert(day_key, counts);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        match p.uses.get_mut(id) {
            // Only the newest are kept anyway: the oldest makes room.
            Some(ring) if ring.len() >= RECENT_PER_KEY => {
                ring.pop_front();
                ring.push_back((seq, used));
            }
            Some(ring) if p.held < MAX_PENDING_USES => {
                ring.push_back((seq, used));
                p.held += 1;
            }
            None if p.held < MAX_PENDING_USES => {
                p.uses.insert(id.to_string(), VecDeque::from([(seq, used)]));
                p.held += 1;
            }
            _ => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The keys used since the last call (for `last_used`).
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()).touched)
    }

    /// Writes what was noted, in one transaction; called by a background
    /// task (and by tests). If the write fails, what was taken is lost —
    /// counters are a picture of use, not a ledger — and the error says so.
    pub fn flush(&self, conn: &mut DbConn, clock: &dyn Clock) -> Result<usize, StoreError> {
        let (touched, counts, uses) = {
            let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let p = &mut *guard;
            p.held = 0;
            (std::mem::take(&mut p.touched), std::mem::take(&mut p.counts), std::mem::take(&mut p.uses))
        };
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(dropped, "API key uses dropped: the usage buffer was full between two flushes");
        }
        if touched.is_empty() && counts.is_empty() && uses.is_empty() {
            return Ok(0);
        }
        let daily: Vec<DailyUsageRow> = counts
            .into_iter()
            .map(|((key_id, day), [allowed, refused, rate_limited])| DailyUsageRow {
                key_id,
                day: midnight(day),
                allowed: allowed as i64,
                refused: refused as i64,
                rate_limited: rate_limited as i64,
            })
            .collect();
        let rows: Vec<UseRow> = uses
            .into_iter()
            .flat_map(|(key_id, ring)| {
                ring.into_iter().map(move |(seq, u)| UseRow {
                    id: crate::crypto::public_id("use"),
                    key_id: key_id.clone(),
                    used_at: u.at.naive_utc(),
                    seq,
                    ip: u.ip,
                    method: u.method,
                    path: u.path,
                    outcome: u.outcome.as_str().to_string(),
                })
            })
            .collect();
        let written = touched.len() + daily.len() + rows.len();
        let now = clock.now().naive_utc();
        conn.transaction::<_, StoreError, _>(|conn| {
            if !touched.is_empty() {
                api_keys::touch(conn, &touched, now)?;
            }
            key_usage::add_daily(conn, &daily)?;
            key_usage::add_uses(conn, &rows, RECENT_PER_KEY as i64)
        })?;
        Ok(written)
    }
}

fn midnight(day: NaiveDate) -> NaiveDateTime {
    day.and_time(chrono::NaiveTime::MIN)
}

/// Key `key_id`'s uses per UTC day for the `days` days ending with `today`,
/// oldest first, a day without a use counted as zero.
///
/// Visibility is not checked here: the caller first finds the key with
/// `apikeys::find_as`, which reads another's key as unknown.
pub fn daily_counts(conn: &mut DbConn, key_id: &str, days: u32, today: NaiveDate) -> Result<Vec<DayCount>, StoreError> {
    let first = today - chrono::Days::new(u64::from(days.saturating_sub(1)));
    let stored = key_usage::daily(conn, key_id, midnight(first), midnight(today))?;
    let stored: HashMap<NaiveDate, (i64, i64, i64)> =
        stored.into_iter().map(|(day, a, r, l)| (day.date(), (a, r, l))).collect();
    Ok(first
        .iter_days()
        .take(days as usize)
        .map(|day| {
            let (a, r, l) = stored.get(&day).copied().unwrap_or_default();
            DayCount { day, allowed: a.max(0) as u64, refused: r.max(0) as u64, rate_limited: l.max(0) as u64 }
        })
        .collect())
}

/// Key `key_id`'s newest `limit` uses (at most the 50 kept), newest first.
///
/// Visibility is not checked here: the caller first finds the key with
/// `apikeys::find_as`, which reads another's key as unknown.
pub fn recent_uses(conn: &mut DbConn, key_id: &str, limit: usize) -> Result<Vec<Use>, StoreError> {
    let rows = key_usage::recent(conn, key_id, limit.min(RECENT_PER_KEY) as i64)?;
    rows.into_iter()
        .map(|r| {
            let outcome = Outcome::parse(&r.outcome)
                .ok_or_else(|| StoreError::Internal(format!("unknown use outcome {:?}", r.outcome)))?;
            Ok(Use { at: r.used_at.and_utc(), ip: r.ip, method: r.method, path: r.path, outcome })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a_use(outcome: Outcome) -> Use {
        Use::new(Utc::now(), None, "GET", "/v1/api-keys", outcome)
    }

    #[test]
    fn a_full_buffer_drops_and_counts_never_grows() {
        let recorder = UsageRecorder::default();
        // Many keys, one use each: the buffer stops at its bound.
        for i in 0..MAX_PENDING_USES + 10 {
            recorder.record(&format!("key_{i}"), a_use(Outcome::Allowed));
        }
        let p = recorder.inner.lock().unwrap();
        assert_eq!(p.held, MAX_PENDING_USES);
        assert_eq!(p.uses.values().map(VecDeque::len).sum::<usize>(), MAX_PENDING_USES);
        assert_eq!(recorder.dropped.load(Ordering::Relaxed), 10);
        // The counters still hold every key (their own bound is higher).
        assert_eq!(p.counts.len(), MAX_PENDING_USES + 10);
    }

    #[test]
    fn one_key_holds_its_newest_uses_and_counts_all() {
        let recorder = UsageRecorder::default();
        for _ in 0..RECENT_PER_KEY + 5 {
            recorder.record("key_a", a_use(Outcome::RateLimited));
        }
        recorder.record("key_a", a_use(Outcome::Refused));
        let p = recorder.inner.lock().unwrap();
        let ring = &p.uses["key_a"];
        assert_eq!(ring.len(), RECENT_PER_KEY);
        assert_eq!(ring.back().map(|(_, u)| u.outcome), Some(Outcome::Refused), "the newest is kept");
        assert_eq!(recorder.dropped.load(Ordering::Relaxed), 0, "making room for the newest is no drop");
        let counts: u64 = p.counts.values().map(|c| c.iter().sum::<u64>()).sum();
        assert_eq!(counts, RECENT_PER_KEY as u64 + 6);
    }

    #[test]
    fn a_long_path_is_cut_on_a_character_boundary() {
        let long = format!("/v1/{}", "é".repeat(300));
        let u = Use::new(Utc::now(), None, "GET", &long, Outcome::Allowed);
        assert!(u.path.len() <= MAX_PATH_LEN && long.starts_with(&u.path), "{}", u.path);
    }
}
