//! The purge: deletes the rows that can no longer change any answer, and
//! audit events past their retention, so that no table grows without
//! bound. What is dead, table by table ("now" is the injected clock's):
//!
//! - authorization codes past their expiry, used or not;
//! - browser sessions past their absolute expiry or idle too long;
//! - client-assertion jti values, revocations (`revoked_tokens`) and SDK
//!   sessions past their expiry (the stored expiry of a jti already holds
//!   the verification leeway);
//! - sign-in failures older than the throttle window (15 minutes);
//! - refresh tokens never used and expired, and every token of a family
//!   past its absolute lifetime — a retired token of a living family is
//!   kept, since presenting it again is how reuse is detected — each one
//!   access-token lifetime late, so that revoking a refresh token still
//!   reaches the access tokens minted with it;
//! - a family's access-token records and the family itself once it has
//!   ended that long ago and none of its access tokens is unexpired;
//! - initial access tokens (dynamic client registration) past their
//!   expiry: they register nothing any more;
//! - audit events older than `TESSERA_AUDIT_RETENTION_DAYS`;
//! - API keys' daily usage counters and noted uses older than 30 days
//!   (`apikeys::usage::DAYS_KEPT`: the key's page shows no more), kept
//!   whole for the days still shown — the 50-uses-per-key cap is kept by
//!   the flush that writes them.
//!
//! It deletes in batches (`store::purge`), each a short statement, so it
//! never holds a long lock. The server runs it every
//! `TESSERA_PURGE_INTERVAL` (`every`); `tessera purge` runs it once.
//! Instances running it at the same time only find less to delete.

use std::time::Duration;

use crate::clock::{Clock, SharedClock, span};
use crate::store::{self, Db, DbConn, StoreError};

/// Rows per delete statement: small enough that a statement is quick,
/// large enough that a backlog of millions takes minutes, not hours.
pub const DEFAULT_BATCH_SIZE: i64 = 1000;

/// What the purge needs to know to tell a dead row from a live one.
#[derive(Debug, Clone, Copy)]
pub struct PurgePolicy {
    /// A session unused this long has ended (`TESSERA_SESSION_IDLE_TTL`).
    pub session_idle: Duration,
    /// The longest an access token lives (`TESSERA_ACCESS_TOKEN_TTL`):
    /// refresh tokens and families are kept this long past their end,
    /// since an access token minted just before the end outlives it.
    pub access_token_ttl: Duration,
    /// How long audit events are kept (`TESSERA_AUDIT_RETENTION_DAYS`).
    pub audit_retention: Duration,
    /// Rows per delete statement.
    pub batch_size: i64,
}

/// How many rows one run deleted, per table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PurgeReport {
    pub authorization_codes: usize,
    pub sessions: usize,
    pub used_assertions: usize,
    pub sdk_sessions: usize,
    pub login_failures: usize,
    pub revoked_tokens: usize,
    pub refresh_tokens: usize,
    pub grant_access_tokens: usize,
    pub grants: usize,
    pub audit_events: usize,
    pub key_usage_days: usize,
    pub key_uses: usize,
    pub initial_access_tokens: usize,
}

impl PurgeReport {
    pub fn total(&self) -> usize {
        self.authorization_codes
            + self.sessions
            + self.used_assertions
            + self.sdk_sessions
            + self.login_failures
            + self.revoked_tokens
            + self.refresh_tokens
            + self.grant_access_tokens
            + self.grants
            + self.audit_events
            + self.key_usage_days
            + self.key_uses
            + self.initial_access_tokens
    }
}

/// Runs `batch` until it deletes fewer than `limit` rows; the total.
fn drain(limit: i64, mut batch: impl FnMut(i64) -> Result<usize, StoreError>) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let deleted = batch(limit)?;
        total += deleted;
        if (deleted as i64) < limit {
            return Ok(total);
        }
    }
}

/// One purge of every table, at the clock's "now". Families are purged
/// after their refresh tokens and access-token records, which refer to
/// them.
pub fn purge(conn: &mut DbConn, clock: &dyn Clock, policy: &PurgePolicy) -> Result<PurgeReport, StoreError> {
    let started = std::time::Instant::now();
    let now = clock.now();
    let at = now.naive_utc();
    let idle_before = (now - span(policy.session_idle)).naive_utc();
    let failures_before = (now - span(crate::sessions::THROTTLE_WINDOW)).naive_utc();
    // An access token lives at most its lifetime (plus the verification
    // leeway) past the moment it was minted, and none is minted from a
    // family after the family's end or with an expired refresh token: so
    // a refresh token or family dead for that long has nothing left alive
    // that revoking it could still reach.
    let token_life = span(policy.access_token_ttl) + chrono::Duration::seconds(crate::oauth::assertion::LEEWAY_SECS);
    let dead_before = (now - token_life).naive_utc();
    let audit_before = (now - span(policy.audit_retention)).naive_utc();
    let limit = policy.batch_size.max(1);
    // The first day still shown on a key's page begins at this midnight.
    let usage_days = chrono::Days::new(u64::from(crate::apikeys::usage::DAYS_KEPT) - 1);
    let usage_before = (now.date_naive() - usage_days).and_time(chrono::NaiveTime::MIN);
    use store::purge as rows;
    let report = PurgeReport {
        authorization_codes: drain(limit, |n| rows::authorization_codes(conn, at, n))?,
        sessions: drain(limit, |n| rows::sessions(conn, at, idle_before, n))?,
        used_assertions: drain(limit, |n| rows::used_assertions(conn, at, n))?,
        sdk_sessions: drain(limit, |n| rows::sdk_sessions(conn, at, n))?,
        login_failures: drain(limit, |n| rows::login_failures(conn, failures_before, n))?,
        revoked_tokens: drain(limit, |n| rows::revoked_tokens(conn, at, n))?,
        refresh_tokens: drain(limit, |n| rows::refresh_tokens(conn, dead_before, n))?,
        grant_access_tokens: drain(limit, |n| rows::grant_access_tokens(conn, dead_before, at, n))?,
        grants: drain(limit, |n| rows::grants(conn, dead_before, n))?,
        audit_events: drain(limit, |n| rows::audit_events(conn, audit_before, n))?,
        key_usage_days: drain(limit, |n| rows::key_usage_days(conn, usage_before, n))?,
        key_uses: drain(limit, |n| rows::key_uses(conn, usage_before, n))?,
        initial_access_tokens: drain(limit, |n| rows::initial_access_tokens(conn, at, n))?,
    };
    tracing::info!(
        authorization_codes = report.authorization_codes,
        sessions = report.sessions,
        used_assertions = report.used_assertions,
        sdk_sessions = report.sdk_sessions,
        login_failures = report.login_failures,
        revoked_tokens = report.revoked_tokens,
        refresh_tokens = report.refresh_tokens,
        grant_access_tokens = report.grant_access_tokens,
        grants = report.grants,
        audit_events = report.audit_events,
        key_usage_days = report.key_usage_days,
        key_uses = report.key_uses,
        initial_access_tokens = report.initial_access_tokens,
        total = report.total(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "purge finished"
    );
    Ok(report)
}

/// `purge` on the blocking pool.
pub async fn run(db: &Db, clock: SharedClock, policy: PurgePolicy) -> Result<PurgeReport, StoreError> {
    db.run(move |conn| purge(conn, clock.as_ref(), &policy)).await
}

/// Purges now, then every `interval` after the previous run ended, for as
/// long as the runtime lives. A failed run (the database down, say) is
/// logged and tried again at the next interval. Running at start means a
/// server restarted more often than the interval still purges.
pub async fn every(db: Db, clock: SharedClock, policy: PurgePolicy, interval: Duration) {
    loop {
        if let Err(e) = run(&db, clock.clone(), policy).await {
            tracing::warn!(error = %e, "purge failed; trying again at the next interval");
        }
        actix_web::rt::time::sleep(interval).await;
    }
}
