//! Time, injectable: services ask a `Clock` instead of the system, so that
//! tests can move time forward instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, DurationRound, Utc};

/// A `std` duration as a `chrono` one, saturating (configured lifetimes
/// are bounded, so the bound is never reached in practice).
pub fn span(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::MAX)
}

/// The source of "now" for every rule that involves time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// Shared handle to the clock in use.
pub type SharedClock = Arc<dyn Clock>;

/// Microsecond precision: what both PostgreSQL and SQLite keep, so a time
/// read back from either database equals the one written.
fn truncate(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::microseconds(1)).unwrap_or(t)
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        truncate(Utc::now())
    }
}

/// The wall clock plus an offset that tests move forward with `advance`.
#[derive(Debug, Default, Clone)]
pub struct ManualClock {
    offset_micros: Arc<AtomicI64>,
    /// Set by `frozen`: the clock reads this instead of the wall clock.
    frozen_at: Option<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock that stands at the time of its making and moves only with
    /// `advance`: for rules measured in fractions of a second (rate
    /// limits), where the wall time a slow test spends would change the
    /// outcome.
    pub fn frozen() -> Self {
        Self { frozen_at: Some(truncate(Utc::now())), ..Self::default() }
    }

    pub fn advance(&self, by: Duration) {
        let micros = by.num_microseconds().unwrap_or(i64::MAX);
        self.offset_micros.fetch_add(micros, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        let offset = Duration::microseconds(self.offset_micros.load(Ordering::SeqCst));
        truncate(self.frozen_at.unwrap_or_else(Utc::now) + offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new();
        let before = clock.now();
        clock.advance(Duration::hours(2));
        let after = clock.now();
        assert!(after - before >= Duration::hours(2));
        assert!(after - before < Duration::hours(2) + Duration::seconds(5));
    }

    #[test]
    fn a_frozen_clock_moves_only_when_told() {
        let clock = ManualClock::frozen();
        let before = clock.now();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(clock.now(), before, "wall time does not move it");
        clock.advance(Duration::milliseconds(1500));
        assert_eq!(clock.now() - before, Duration::milliseconds(1500));
    }
}
