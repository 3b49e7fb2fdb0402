//! Signing in and browser sessions.
//!
//! - A password is checked with argon2id; an unknown email is checked
//!   against a dummy hash, so both cost the same time.
//! - Failed sign-ins are rows in `login_failures`, per account and per IP,
//!   so the throttle holds across instances: after `max_failures` for an
//!   account (four times that for an IP) within `THROTTLE_WINDOW`, sign-in
//!   answers "try again in N seconds" without checking the password.
//! - A session id is 256 random bits in a cookie; the database keeps its
//!   fingerprint. Sessions have an idle and an absolute lifetime. Sign-in
//!   always makes a new id (no fixation); sign-out deletes the row.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::accounts::{self, User};
use crate::audit::{self, Actor, AuditEvent};
use crate::clock::{Clock, span};
use crate::crypto::{SECRET_LEN_256_BITS, Secret, fingerprint, public_id, random_base62};
use crate::store::sessions::{self, SessionRow};
use crate::store::{DbConn, StoreError, users};

/// How far back failed sign-ins count.
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// An IP may fail this many times more often than one account.
pub const IP_FACTOR: u32 = 4;

/// Lifetimes and limits, from `Config`.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    pub idle: Duration,
    pub absolute: Duration,
    pub max_failures: u32,
}

/// The answer to a sign-in attempt.
#[derive(Debug)]
pub enum SignIn {
    Success {
        user: User,
        session: Secret,
    },
    /// Wrong email or password (the two are not told apart).
    Invalid,
    /// Too many failures: try again in this many seconds.
    Throttled {
        retry_after: u64,
    },
}

/// A PHC hash of a random password, made once, for unknown emails.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        accounts::Password::parse(&random_base62(32))
            .and_then(|p| p.hash())
            .unwrap_or_else(|_| "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into())
    })
}

/// Seconds until the failures of `subject` drop below `limit`, if they
/// have reached it.
fn throttled_for(conn: &mut DbConn, subject: &str, limit: u32, now: DateTime<Utc>) -> Result<Option<u64>, StoreError> {
    let since = now - span(THROTTLE_WINDOW);
    let failures = sessions::failures_since(conn, subject, since.naive_utc())?;
    if failures.len() < limit as usize {
        return Ok(None);
    }
    // The failure whose ageing-out brings the count below the limit.
    let pivot = failures[failures.len() - limit as usize].and_utc();
    let free_at = pivot + span(THROTTLE_WINDOW);
    Ok(Some((free_at - now).num_seconds().max(1) as u64))
}

/// Checks email and password and, on success, opens a session.
pub fn sign_in(
    conn: &mut DbConn,
    clock: &dyn Clock,
    policy: &SessionPolicy,
    email: &str,
    password: &str,
    ip: Option<&str>,
) -> Result<SignIn, StoreError> {
    let now = clock.now();
    let email = email.trim().to_lowercase();
    let account_subject = format!("email:{email}");
    let ip_subject = ip.map(|ip| format!("ip:{ip}"));
    let mut wait = throttled_for(conn, &account_subject, policy.max_failures, now)?;
    if let Some(subject) = &ip_subject {
        wait = wait.max(throttled_for(conn, subject, policy.max_failures * IP_FACTOR, now)?);
    }
    if let Some(retry_after) = wait {
        let mut event = AuditEvent::new(Actor::System, "login.throttled", Some(&email));
        event.ip = ip;
        audit::record(conn, clock, event)?;
        return Ok(SignIn::Throttled { retry_after });
    }
    let row = users::find_by_email(conn, &email)?;
    let hash = row.as_ref().map_or(dummy_hash(), |r| r.password_hash.as_str());
    let password_ok = accounts::verify_password(password, hash);
    match row {
        Some(row) if password_ok && !row.disabled => {
            sessions::clear_failures(conn, &account_subject)?;
            let session = start(conn, clock, policy, &row.id)?;
            let mut event = AuditEvent::new(Actor::User(row.id.clone()), "login.succeeded", Some(&row.id));
            event.ip = ip;
            audit::record(conn, clock, event)?;
            Ok(SignIn::Success { user: User::from(row), session })
        }
        row => {
            let naive = now.naive_utc();
            sessions::record_failure(conn, &public_id("lf"), &account_subject, naive)?;
            if let Some(subject) = &ip_subject {
                sessions::record_failure(conn, &public_id("lf"), subject, naive)?;
            }
            let reason = match &row {
                None => "unknown email",
                Some(r) if r.disabled => "disabled account",
                Some(_) => "wrong password",
            };
            let target = row.as_ref().map_or(email.as_str(), |r| r.id.as_str());
            let mut event = AuditEvent::new(Actor::System, "login.failed", Some(target));
            event.ip = ip;
            event.details = serde_json::json!({ "reason": reason });
            audit::record(conn, clock, event)?;
            Ok(SignIn::Invalid)
        }
    }
}

/// Opens a session for `user_id`; the cookie value is returned once.
pub fn start(
    conn: &mut DbConn,
    clock: &dyn Clock,
    policy: &SessionPolicy,
    user_id: &str,
) -> Result<Secret, StoreError> {
    let now = clock.now();
    let cookie = Secret::new(random_base62(SECRET_LEN_256_BITS));
    sessions::insert(
        conn,
        &SessionRow {
            id: fingerprint(cookie.expose()),
            user_id: user_id.to_string(),
            created_at: now.naive_utc(),
            last_seen_at: now.naive_utc(),
            expires_at: (now + span(policy.absolute)).naive_utc(),
        },
    )?;
    let failures_before = now - span(THROTTLE_WINDOW);
    sessions::purge(conn, now.naive_utc(), failures_before.naive_utc())?;
    Ok(cookie)
}

/// A live session: its id (fingerprint) and its user.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub user: User,
}

/// The session a cookie names, if it is alive and its user enabled; an
/// expired session is deleted.
pub fn resolve(
    conn: &mut DbConn,
    clock: &dyn Clock,
    policy: &SessionPolicy,
    cookie: &str,
) -> Result<Option<Session>, StoreError> {
    if cookie.len() != SECRET_LEN_256_BITS {
        return Ok(None);
    }
    let id = fingerprint(cookie);
    let Some(row) = sessions::find(conn, &id)? else {
        return Ok(None);
    };
    let now = clock.now();
    let idle_end = row.last_seen_at.and_utc() + span(policy.idle);
    if now >= row.expires_at.and_utc() || now >= idle_end {
        sessions::delete(conn, &id)?;
        return Ok(None);
    }
    let Some(user) = users::find_by_id(conn, &row.user_id)? else {
        return Ok(None);
    };
    if user.disabled {
        return Ok(None);
    }
    // Refresh the idle clock at most once a minute: reads stay reads.
    if now - row.last_seen_at.and_utc() > chrono::Duration::seconds(60) {
        sessions::touch(conn, &id, now.naive_utc())?;
    }
    Ok(Some(Session { id, user: User::from(user) }))
}

/// Ends a session server-side.
pub fn end(conn: &mut DbConn, clock: &dyn Clock, session: &Session, ip: Option<&str>) -> Result<(), StoreError> {
    sessions::delete(conn, &session.id)?;
    let mut event = AuditEvent::new(Actor::User(session.user.id.clone()), "logout", Some(&session.user.id));
    event.ip = ip;
    audit::record(conn, clock, event)
}
