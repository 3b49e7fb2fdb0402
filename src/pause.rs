//! Pause points: named places in the services where a test can hold a
//! request, so that a race the code must win is *made* to happen — two
//! redemptions of one code both past their read, a revocation while a
//! redemption's transaction is open, thirty sign-ins past the throttle at
//! once — and the test can assert that it did.
//!
//! Compiled in only with the `test-pauses` feature, which the integration
//! tests turn on (a dev-dependency of the crate on itself); in every other
//! build `point` is an empty function. A point is armed for one key (a
//! client id, an email), so tests running side by side never hold each
//! other's requests.

/// Where a request may be held: `name` is the place, `key` the subject
/// (an armed point holds only requests for its own key).
#[inline(always)]
pub fn point(name: &'static str, key: &str) {
    #[cfg(feature = "test-pauses")]
    armed::arrive(name, key);
    #[cfg(not(feature = "test-pauses"))]
    let _ = (name, key);
}

#[cfg(feature = "test-pauses")]
pub use armed::Armed;

#[cfg(feature = "test-pauses")]
mod armed {
    use std::collections::HashMap;
    use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
    use std::time::Duration;

    /// The longest a held request waits, so that a failing test cannot
    /// hang the suite.
    const HOLD_AT_MOST: Duration = Duration::from_secs(30);

    #[derive(Default)]
    struct Gate {
        state: Mutex<State>,
        changed: Condvar,
    }

    #[derive(Default)]
    struct State {
        arrived: usize,
        /// How many of the first arrivals are held; later ones pass.
        hold: usize,
        released: bool,
    }

    type Gates = Mutex<HashMap<(&'static str, String), Arc<Gate>>>;

    fn gates() -> MutexGuard<'static, HashMap<(&'static str, String), Arc<Gate>>> {
        static GATES: OnceLock<Gates> = OnceLock::new();
        GATES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn arrive(name: &'static str, key: &str) {
        let Some(gate) = gates().get(&(name, key.to_string())).cloned() else { return };
        let mut state = gate.state.lock().unwrap_or_else(|e| e.into_inner());
        state.arrived += 1;
        gate.changed.notify_all();
        if state.arrived > state.hold {
            return;
        }
        let _held = gate.changed.wait_timeout_while(state, HOLD_AT_MOST, |s| !s.released);
    }

    /// An armed point: the first `hold` requests that reach it for its
    /// key wait there until `release` (or the guard is dropped); every
    /// arrival is counted.
    pub struct Armed {
        name: &'static str,
        key: String,
        gate: Arc<Gate>,
    }

    impl Armed {
        /// Holds the first `hold` arrivals at `name` for `key` (0: only
        /// counts them).
        pub fn arm(name: &'static str, key: &str, hold: usize) -> Self {
            let gate = Arc::new(Gate::default());
            gate.state.lock().unwrap_or_else(|e| e.into_inner()).hold = hold;
            gates().insert((name, key.to_string()), gate.clone());
            Self { name, key: key.to_string(), gate }
        }

        /// How many requests have reached the point.
        pub fn arrived(&self) -> usize {
            self.gate.state.lock().unwrap_or_else(|e| e.into_inner()).arrived
        }

        /// Waits until `n` requests have reached the point; panics after
        /// `HOLD_AT_MOST`.
        pub fn wait_for(&self, n: usize) {
            let state = self.gate.state.lock().unwrap_or_else(|e| e.into_inner());
            let (state, _) = self
                .gate
                .changed
                .wait_timeout_while(state, HOLD_AT_MOST, |s| s.arrived < n)
                .unwrap_or_else(|e| e.into_inner());
            assert!(state.arrived >= n, "{}: {} of {n} requests arrived", self.name, state.arrived);
        }

        /// Lets the held requests go on.
        pub fn release(&self) {
            self.gate.state.lock().unwrap_or_else(|e| e.into_inner()).released = true;
            self.gate.changed.notify_all();
        }
    }

    impl Drop for Armed {
        fn drop(&mut self) {
            self.release();
            gates().remove(&(self.name, self.key.clone()));
        }
    }
}
