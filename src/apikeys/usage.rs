//! `last_used`: uses are noted in memory and written in batches by a
//! background task, never on the request path.

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::store::api_keys;
use crate::store::{DbConn, StoreError};

/// Remembers which keys were used, so `last_used` can be written in
/// batches off the request path, at most once a minute per key.
#[derive(Debug, Default)]
pub struct UsageRecorder {
    inner: std::sync::Mutex<Usage>,
}

/// When each key was last noted, and the keys not yet written.
type Usage = (std::collections::HashMap<String, DateTime<Utc>>, Vec<String>);

impl UsageRecorder {
    /// Notes a use of key `id` at `now`; cheap, in memory.
    pub fn note(&self, id: &str, now: DateTime<Utc>) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (last, pending) = &mut *guard;
        if last.get(id).is_none_or(|t| now - *t >= chrono::Duration::seconds(60)) {
            if last.len() > 100_000 {
                last.clear();
            }
            last.insert(id.to_string(), now);
            pending.push(id.to_string());
        }
    }

    /// The keys used since the last call.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()).1)
    }

    /// Writes what was noted; called by a background task.
    pub fn flush(&self, conn: &mut DbConn, clock: &dyn Clock) -> Result<usize, StoreError> {
        let ids = self.take();
        if !ids.is_empty() {
            api_keys::touch(conn, &ids, clock.now().naive_utc())?;
        }
        Ok(ids.len())
    }
}
