//! Signing in and browser sessions.
//!
//! - A password is checked with argon2id; an unknown email is checked
//!   against a dummy hash, so both cost the same time.
//! - Failed sign-ins are rows in `login_failures`, per account and per IP,
//!   so the throttle holds across instances: after `max_failures` for an
//!   account (four times that for an IP) within `THROTTLE_WINDOW`, sign-in
//!   answers "try again in N seconds" without checking the password. An
//!   IPv6 client counts by its /64.
//! - Each attempt *reserves* its failure before the password is checked —
//!   counted and recorded in one transaction, one attempt at a time per
//!   account and address — and gives it back only if the password was
//!   right: concurrent guesses can never exceed the budget.
//! - argon2 runs on the blocking pool without holding a database
//!   connection: a burst of sign-ins cannot starve other requests. At
//!   most `HashGate`'s bound of hashes run at once; beyond it an attempt
//!   is refused (503) before anything is read, never queued.
//! - A session id is 256 random bits in a cookie; the database keeps its
//!   fingerprint. Sessions have an idle and an absolute lifetime. Sign-in
//!   always makes a new id (no fixation); sign-out deletes the row.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::Connection;

use crate::accounts::{self, User};
use crate::audit::{self, Actor, AuditEvent, AuthFailure, FailureSample};
use crate::clock::{Clock, SharedClock, span};
use crate::crypto::{MasterKey, SECRET_LEN_256_BITS, Secret, constant_time_eq, fingerprint, public_id, random_base62};
use crate::store::sessions::{self, SessionRow};
use crate::store::users::UserRow;
use crate::store::{Db, DbConn, StoreError, users};

/// What the session services fail with: storage (the one thing that can
/// go wrong here, since a wrong password is an answer, not an error).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

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
    /// As many password checks as the server allows are running: try
    /// again in this many seconds (nothing was read or counted).
    Busy {
        retry_after: u64,
    },
}

/// The bound on password hashes (argon2) in flight at once, shared by one
/// server's sign-ins (`TESSERA_PASSWORD_HASH_CONCURRENCY`). A permit is
/// taken or refused at once: a burst beyond the bound costs no memory.
#[derive(Clone)]
pub struct HashGate(std::sync::Arc<HashGateState>);

struct HashGateState {
    max: usize,
    in_flight: std::sync::atomic::AtomicUsize,
}

/// A password check's place under the bound, given back when dropped.
pub struct HashPermit(std::sync::Arc<HashGateState>);

impl HashGate {
    pub fn new(max: usize) -> Self {
        Self(std::sync::Arc::new(HashGateState { max: max.max(1), in_flight: Default::default() }))
    }

    /// A permit, or `None` when `max` hashes are running.
    pub fn try_acquire(&self) -> Option<HashPermit> {
        use std::sync::atomic::Ordering;
        self.0
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.0.max).then_some(n + 1))
            .ok()
            .map(|_| HashPermit(self.0.clone()))
    }

    /// Hashes running now.
    pub fn in_flight(&self) -> usize {
        self.0.in_flight.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether every permit is taken now (a hint: `try_acquire` decides).
    pub fn is_full(&self) -> bool {
        self.in_flight() >= self.0.max
    }
}

impl Drop for HashPermit {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// What a refused sign-in answers with `Retry-After` when the hashes are
/// all taken: one of them ends within tens of milliseconds.
const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// A PHC hash of a random password, made once, for unknown emails.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        accounts::Password::parse(&random_base62(32))
            .and_then(|p| p.hash())
            .unwrap_or_else(|_| "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into())
    })
}

/// Seconds until `failures` (oldest first, within the window) drop below
/// `limit`, if they have reached it.
fn throttled_for(failures: &[chrono::NaiveDateTime], limit: u32, now: DateTime<Utc>) -> Option<u64> {
    if failures.len() < limit as usize {
        return None;
    }
    // The failure whose ageing-out brings the count below the limit.
    let pivot = failures[failures.len() - limit as usize].and_utc();
    let free_at = pivot + span(THROTTLE_WINDOW);
    Some((free_at - now).num_seconds().max(1) as u64)
}

/// The per-IP throttle's subject for a client address: the address for
/// IPv4, and for IPv6 its /64 — one host or subscriber usually holds a
/// whole /64, and could otherwise move to a fresh address per guess.
pub fn ip_subject(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}"),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                format!("ip:{}/64", Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

/// What the sign-in form gave, and the session the browser had before.
pub struct SignInAttempt {
    pub email: String,
    pub password: Secret,
    pub ip: Option<IpAddr>,
    /// The session cookie sent with the form, if any: it ends, signed in
    /// or not (a new sign-in never keeps an old id).
    pub previous: Option<String>,
}

/// What the first step of a sign-in found.
enum Found {
    Throttled(u64),
    /// The account (if the email is known), to check the password against,
    /// and the failure rows reserved for this attempt.
    Reserved {
        account: Option<UserRow>,
        reservation: Reservation,
    },
}

/// The failure rows an attempt wrote before its password was checked:
/// kept if it was wrong, deleted if it was right.
#[derive(Debug, Clone)]
struct Reservation {
    account_row: String,
    ip_row: Option<String>,
}

/// The services of sign-in and browser sessions, over the pool.
#[derive(Clone)]
pub struct Sessions {
    pub db: Db,
    pub clock: SharedClock,
    pub policy: SessionPolicy,
    /// For the sign-out form's token, bound to the session.
    pub master: MasterKey,
    /// The bound on password checks in flight.
    pub hashes: HashGate,
    /// Which failed and throttled sign-ins get an audit row.
    pub failures: std::sync::Arc<FailureSample>,
}

impl Sessions {
    /// The live session a cookie names, if any.
    pub async fn current(&self, cookie: Option<String>) -> Result<Option<Session>, SessionError> {
        let Some(cookie) = cookie else {
            return Ok(None);
        };
        let (clock, policy) = (self.clock.clone(), self.policy);
        Ok(self.db.run(move |conn| resolve(conn, clock.as_ref(), &policy, &cookie)).await?)
    }

    /// Checks email and password and, on success, opens a session. The
    /// attempt takes a place under the hash bound (or is refused, having
    /// touched nothing), reserves its failure against the throttle, then
    /// checks the password (argon2, tens of milliseconds of CPU) on the
    /// blocking pool without a database connection, and records the
    /// outcome: sign-ins can neither starve the pool nor, however many
    /// run at once, try more passwords than the throttle allows.
    pub async fn sign_in(&self, attempt: SignInAttempt) -> Result<SignIn, SessionError> {
        let busy = || {
            metrics::counter!("tessera_password_checks_refused_total").increment(1);
            Ok(SignIn::Busy { retry_after: BUSY_RETRY_AFTER_SECS })
        };
        // Every hash taken: refused before anything is read or counted.
        if self.hashes.is_full() {
            return busy();
        }
        let (clock, policy) = (self.clock.clone(), self.policy);
        let who = Who::of(&attempt);
        let found = {
            let (clock, who, previous, failures) =
                (clock.clone(), who.clone(), attempt.previous, self.failures.clone());
            self.db
                .run(move |conn| {
                    crate::pause::point("signin:reserving", &who.email);
                    if let Some(old) = previous
                        && let Some(session) = resolve(conn, clock.as_ref(), &policy, &old)?
                    {
                        end(conn, clock.as_ref(), &session, who.ip.as_deref())?;
                    }
                    reserve(conn, clock.as_ref(), &policy, &failures, &who)
                })
                .await?
        };
        let failures = self.failures.clone();
        let (row, reservation) = match found {
            Found::Throttled(retry_after) => return Ok(SignIn::Throttled { retry_after }),
            Found::Reserved { account, reservation } => (account, reservation),
        };
        // The permit is taken only now, past the throttle: a flood for a
        // throttled account holds none. Lost to another attempt meanwhile,
        // this one gives its reservation back and counts nothing.
        let Some(permit) = self.hashes.try_acquire() else {
            self.db.run(move |conn| cancel(conn, &reservation)).await?;
            return busy();
        };
        let hash = row.as_ref().map(|r| r.password_hash.clone());
        let (password, email) = (attempt.password, who.email.clone());
        let password_ok = actix_web::web::block(move || {
            let _permit = permit;
            // On the blocking pool: a test holding it here holds no worker.
            crate::pause::point("signin:reserved", &email);
            accounts::verify_password(password.expose(), hash.as_deref().unwrap_or_else(|| dummy_hash()))
        })
        .await
        .map_err(|e| StoreError::Internal(format!("the password check did not run: {e}")))?;
        Ok(self
            .db
            .run(move |conn| {
                let outcome = Outcome { row, reservation: &reservation, password_ok };
                record_outcome(conn, clock.as_ref(), &policy, &failures, &who, outcome)
            })
            .await?)
    }

    /// Ends the session a cookie names, if the sign-out form's token is
    /// the one made for it.
    pub async fn sign_out(
        &self,
        cookie: Option<String>,
        token: &str,
        ip: Option<IpAddr>,
    ) -> Result<SignOut, SessionError> {
        let Some(session) = self.current(cookie).await? else {
            return Ok(SignOut::NoSession);
        };
        if !constant_time_eq(self.logout_token(&session).as_bytes(), token.as_bytes()) {
            return Ok(SignOut::Refused);
        }
        let clock = self.clock.clone();
        let ip = ip.map(|ip| ip.to_string());
        self.db.run(move |conn| end(conn, clock.as_ref(), &session, ip.as_deref())).await?;
        Ok(SignOut::Done)
    }

    /// The sign-out form's token for a signed-in page.
    pub fn logout_token(&self, session: &Session) -> String {
        crate::crypto::csrf_token(&self.master, &session.id, "logout")
    }
}

/// What a sign-out did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignOut {
    /// There was no live session to end.
    NoSession,
    /// The form's token was not this session's (another site's form).
    Refused,
    Done,
}

/// Who is signing in, as the throttle and the audit log name them.
#[derive(Clone)]
struct Who {
    /// Lower-cased, as stored.
    email: String,
    /// The client address, for the audit log.
    ip: Option<String>,
    account_subject: String,
    ip_subject: Option<String>,
}

impl Who {
    fn of(attempt: &SignInAttempt) -> Self {
        Self::new(&attempt.email, attempt.ip)
    }

    fn new(email: &str, ip: Option<IpAddr>) -> Self {
        let email = email.trim().to_lowercase();
        Self {
            account_subject: format!("email:{email}"),
            email,
            ip: ip.map(|ip| ip.to_string()),
            ip_subject: ip.map(ip_subject),
        }
    }
}

/// Gives back what an attempt reserved, once its password proved right:
/// the account's failures are forgotten, the address's reservation goes.
fn give_back(conn: &mut DbConn, who: &Who, reservation: &Reservation) -> Result<(), StoreError> {
    sessions::clear_failures(conn, &who.account_subject)?;
    if let Some(id) = &reservation.ip_row {
        sessions::delete_failure(conn, id)?;
    }
    Ok(())
}

/// Takes back a reservation whose password was never checked.
fn cancel(conn: &mut DbConn, reservation: &Reservation) -> Result<(), StoreError> {
    sessions::delete_failure(conn, &reservation.account_row)?;
    if let Some(id) = &reservation.ip_row {
        sessions::delete_failure(conn, id)?;
    }
    Ok(())
}

/// Audits a failed or throttled sign-in of `who`, within the failure
/// audits' bounds (`audit::FailureSample`): many addresses guessing at
/// once write at most that many rows a minute.
fn audit_failed(
    conn: &mut DbConn,
    clock: &dyn Clock,
    sample: &FailureSample,
    who: &Who,
    failure: (&'static str, &str, serde_json::Value),
) -> Result<(), StoreError> {
    let (action, target, details) = failure;
    let failure = AuthFailure {
        action,
        target: Some(target.to_string()),
        subject: who.ip_subject.clone(),
        ip: who.ip.clone(),
        request_id: None,
        details,
        occurred_at: None,
    };
    match sample.admit(failure) {
        Some(admitted) => audit::record_failure(conn, clock, &admitted),
        None => Ok(()),
    }
}

/// Audits a wrong password for `who` (`row`: the account, if the email
/// is known).
fn audit_wrong(
    conn: &mut DbConn,
    clock: &dyn Clock,
    sample: &FailureSample,
    who: &Who,
    row: Option<&UserRow>,
) -> Result<(), StoreError> {
    let reason = match row {
        None => "unknown email",
        Some(r) if r.disabled => "disabled account",
        Some(_) => "wrong password",
    };
    let target = row.map_or(who.email.as_str(), |r| r.id.as_str());
    audit_failed(conn, clock, sample, who, ("login.failed", target, serde_json::json!({ "reason": reason })))
}

/// What checking a person's current password found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurrentPassword {
    Right,
    Wrong,
    /// Too many wrong passwords for her account or this address: this
    /// many seconds.
    Throttled(u64),
}

/// Checks the current password of the person with `email`, where she
/// changes it: counted by the sign-in throttle exactly as a sign-in is
/// (reserved before argon2, given back if right), so that a credential of
/// hers cannot guess her password any faster than the sign-in page can.
/// argon2 runs here, holding the connection: call it on the blocking pool.
pub fn check_current_password(
    conn: &mut DbConn,
    clock: &dyn Clock,
    policy: &SessionPolicy,
    sample: &FailureSample,
    email: &str,
    password: &str,
    ip: Option<IpAddr>,
) -> Result<CurrentPassword, StoreError> {
    let who = Who::new(email, ip);
    let (row, reservation) = match reserve(conn, clock, policy, sample, &who)? {
        Found::Throttled(retry_after) => return Ok(CurrentPassword::Throttled(retry_after)),
        Found::Reserved { account, reservation } => (account, reservation),
    };
    match row {
        Some(row) if !row.disabled && accounts::verify_password(password, &row.password_hash) => {
            give_back(conn, &who, &reservation)?;
            Ok(CurrentPassword::Right)
        }
        row => {
            audit_wrong(conn, clock, sample, &who, row.as_ref())?;
            Ok(CurrentPassword::Wrong)
        }
    }
}

/// Why a reservation's transaction rolled back.
enum NotReserved {
    /// Over the budget: the wait.
    Throttled(u64),
    Store(StoreError),
}

impl From<diesel::result::Error> for NotReserved {
    fn from(e: diesel::result::Error) -> Self {
        Self::Store(e.into())
    }
}

impl From<StoreError> for NotReserved {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// The first step of a sign-in: in one transaction, one attempt at a time
/// per account and address (`sessions::lock_subjects`; on SQLite the first
/// statement writes, so the transaction holds the write lock), records
/// this attempt's failure for the account and the address, then counts
/// them with it. Over either budget, nothing is kept and the wait is the
/// answer; within both, the rows stay until the password proves right.
fn reserve(
    conn: &mut DbConn,
    clock: &dyn Clock,
    policy: &SessionPolicy,
    sample: &FailureSample,
    who: &Who,
) -> Result<Found, StoreError> {
    let now = clock.now();
    let since = (now - span(THROTTLE_WINDOW)).naive_utc();
    let mut budgets = vec![(who.account_subject.as_str(), policy.max_failures)];
    if let Some(subject) = &who.ip_subject {
        budgets.push((subject.as_str(), policy.max_failures.saturating_mul(IP_FACTOR)));
    }
    let reserved = conn.transaction::<_, NotReserved, _>(|conn| {
        let subjects: Vec<&str> = budgets.iter().map(|(s, _)| *s).collect();
        sessions::lock_subjects(conn, &subjects)?;
        let (mut account_row, mut ip_row) = (String::new(), None);
        for (subject, _) in &budgets {
            let id = public_id("lf");
            sessions::record_failure(conn, &id, subject, now.naive_utc())?;
            if *subject == who.account_subject {
                account_row = id;
            } else {
                ip_row = Some(id);
            }
        }
        let mut wait = None;
        for (subject, limit) in &budgets {
            let failures = sessions::failures_since(conn, subject, since)?;
            // The others' failures, without this attempt's own (the newest).
            let before = &failures[..failures.len().saturating_sub(1)];
            wait = wait.max(throttled_for(before, *limit, now));
        }
        match wait {
            Some(retry_after) => Err(NotReserved::Throttled(retry_after)),
            None => Ok(Reservation { account_row, ip_row }),
        }
    });
    match reserved {
        Ok(reservation) => Ok(Found::Reserved { account: users::find_by_email(conn, &who.email)?, reservation }),
        Err(NotReserved::Throttled(retry_after)) => {
            audit_failed(conn, clock, sample, who, ("login.throttled", &who.email, serde_json::json!({})))?;
            Ok(Found::Throttled(retry_after))
        }
        Err(NotReserved::Store(e)) => Err(e),
    }
}

/// What a sign-in's password check found: the account (if the email is
/// known), what it reserved, whether the password was right.
struct Outcome<'a> {
    row: Option<UserRow>,
    reservation: &'a Reservation,
    password_ok: bool,
}

/// The last step of a sign-in: a session (the reservation given back), or
/// the failure kept as reserved.
fn record_outcome(
    conn: &mut DbConn,
    clock: &dyn Clock,
    policy: &SessionPolicy,
    failures: &FailureSample,
    who: &Who,
    outcome: Outcome<'_>,
) -> Result<SignIn, StoreError> {
    let Outcome { row, reservation, password_ok } = outcome;
    let ip = who.ip.as_deref();
    match row {
        Some(row) if password_ok && !row.disabled => {
            give_back(conn, who, reservation)?;
            let session = start(conn, clock, policy, &row.id)?;
            let mut event =
                AuditEvent::new(actor_in(&row.id, &fingerprint(session.expose())), "login.succeeded", Some(&row.id));
            event.ip = ip;
            audit::record(conn, clock, event)?;
            Ok(SignIn::Success { user: User::from(row), session })
        }
        row => {
            audit_wrong(conn, clock, failures, who, row.as_ref())?;
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
    /// When the person signed in (the session's creation): `auth_time`.
    pub signed_in_at: DateTime<Utc>,
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
    Ok(Some(Session { id, user: User::from(user), signed_in_at: row.created_at.and_utc() }))
}

/// The public label of a session (by its id, the cookie's fingerprint):
/// what the audit log shows of it, at sign-in, sign-out and on every change
/// made in it. Not the id itself, which is the session's lookup key.
pub fn label(session_id: &str) -> String {
    format!("ses_{}", &fingerprint(session_id)[..16])
}

/// `user_id` acting in the session `session_id`, for the audit log.
fn actor_in(user_id: &str, session_id: &str) -> Actor {
    Actor::User { id: user_id.to_string(), credential: Some(format!("session:{}", label(session_id))) }
}

/// Ends a session server-side.
pub fn end(conn: &mut DbConn, clock: &dyn Clock, session: &Session, ip: Option<&str>) -> Result<(), StoreError> {
    sessions::delete(conn, &session.id)?;
    let actor = actor_in(&session.user.id, &session.id);
    let mut event = AuditEvent::new(actor, "logout", Some(&session.user.id));
    event.ip = ip;
    audit::record(conn, clock, event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_gate_gives_at_most_its_bound_and_takes_permits_back() {
        let gate = HashGate::new(2);
        let (a, b) = (gate.try_acquire(), gate.try_acquire());
        assert!(a.is_some() && b.is_some());
        assert!(gate.is_full() && gate.try_acquire().is_none(), "two at once");
        drop(a);
        assert_eq!(gate.in_flight(), 1);
        assert!(gate.try_acquire().is_some(), "a place given back is taken again");
        assert!(HashGate::new(0).try_acquire().is_some(), "a bound of 0 is 1");
    }

    #[test]
    fn ipv6_counts_by_its_64_and_ipv4_by_its_address() {
        let subject = |ip: &str| ip_subject(ip.parse().unwrap());
        assert_eq!(subject("192.0.2.7"), "ip:192.0.2.7");
        assert_eq!(subject("::ffff:192.0.2.7"), "ip:192.0.2.7", "an IPv4-mapped address is its IPv4 address");
        assert_eq!(subject("2001:db8:1:2::1"), "ip:2001:db8:1:2::/64");
        assert_eq!(subject("2001:db8:1:2:ffff:ffff:ffff:ffff"), "ip:2001:db8:1:2::/64");
        assert_ne!(subject("2001:db8:1:3::1"), subject("2001:db8:1:2::1"));
        assert_eq!(subject("::1"), "ip:::/64");
    }
}
