//! `/v1/users` and the dashboard's people pages: who may see and change
//! whom. Anyone reads and renames themself; an admin lists, creates, reads,
//! renames and disables anyone but themself. Another user reads as unknown
//! to a member, so nothing leaks.

use crate::accounts::{self, AccountError, NewUser, User};
use crate::clock::Clock;
use crate::domain::page::{Page, PageError, PageOf};
use crate::domain::principal::{AuthError, Principal};
use crate::store::{DbConn, StoreError, users};

#[derive(Debug, thiserror::Error)]
pub enum PeopleError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Denied(#[from] AuthError),
    #[error("you cannot disable yourself")]
    CannotDisableSelf,
    /// `current_password` is missing or wrong (403).
    #[error("current_password is missing or is not your password")]
    WrongPassword,
    /// Too many wrong passwords: this many seconds (429).
    #[error("too many wrong passwords; try again in {0} seconds")]
    Throttled(u64),
    /// Every password hash the server allows at once is running (503).
    #[error("the server is checking as many passwords as it can; try again in a moment")]
    Busy,
    #[error(transparent)]
    Page(#[from] PageError),
}

impl From<StoreError> for PeopleError {
    fn from(e: StoreError) -> Self {
        Self::Account(e.into())
    }
}

/// One page of everyone, oldest first, for an admin; oneself for anyone
/// else (a list of one: after it, nothing). `starting_after` must name a
/// user of that list, else `PageError::UnknownCursor` — for a member any
/// other id, known or not, so a cursor never tells whether a user exists.
pub fn list(conn: &mut DbConn, principal: &Principal, page: &Page) -> Result<PageOf<User>, PeopleError> {
    if !principal.is_admin() {
        return match page.starting_after() {
            None => Ok(PageOf { data: vec![principal.user.clone()], has_more: false }),
            Some(id) if id == principal.user.id => Ok(PageOf { data: Vec::new(), has_more: false }),
            Some(_) => Err(PageError::UnknownCursor.into()),
        };
    }
    let after = match page.starting_after() {
        None => None,
        Some(id) => match users::find_by_id(conn, id)? {
            Some(row) => Some((row.created_at, row.id)),
            None => return Err(PageError::UnknownCursor.into()),
        },
    };
    let rows = users::page(conn, after.as_ref().map(|(at, id)| (*at, id.as_str())), page.fetch())?;
    PageOf::from_rows(rows, page, |row| Ok(User::from(row)))
}

fn visible(principal: &Principal, id: &str) -> Result<(), PeopleError> {
    if principal.may_manage(Some(id)) { Ok(()) } else { Err(AccountError::UnknownUser.into()) }
}

pub fn get(conn: &mut DbConn, principal: &Principal, id: &str) -> Result<User, PeopleError> {
    visible(principal, id)?;
    accounts::find_user(conn, id)?.ok_or_else(|| AccountError::UnknownUser.into())
}

/// Creates a user (admins). argon2 runs here, under the hash bound: call
/// it on the blocking pool.
pub fn create(
    conn: &mut DbConn,
    clock: &dyn Clock,
    hashes: &crate::sessions::HashGate,
    principal: &Principal,
    new: NewUser,
) -> Result<User, PeopleError> {
    let principal = principal.first_party("create users")?;
    principal.require_admin("create users")?;
    let _permit = hashing(hashes)?;
    Ok(accounts::create_user(conn, clock, new, principal.actor())?)
}

/// A change of a person: her name, her password, or both.
#[derive(Debug, Default)]
pub struct UserChanges {
    pub name: Option<String>,
    pub password: Option<crate::accounts::Password>,
    /// Her password now, when she changes her own.
    pub current_password: Option<crate::crypto::Secret>,
}

/// Where a password change is asked from: the throttle's policy and the
/// caller's address (a wrong current password counts like a failed
/// sign-in).
pub struct Asker {
    pub policy: crate::sessions::SessionPolicy,
    pub ip: Option<std::net::IpAddr>,
    /// The bound on password hashes in flight.
    pub hashes: crate::sessions::HashGate,
    /// Which wrong passwords get an audit row.
    pub failures: std::sync::Arc<crate::audit::FailureSample>,
}

/// A place under the hash bound, for the argon2 a change runs.
fn hashing(hashes: &crate::sessions::HashGate) -> Result<crate::sessions::HashPermit, PeopleError> {
    hashes.try_acquire().ok_or(PeopleError::Busy)
}

/// Renames user `id` and/or gives her a new password. A person changes
/// her own password with her current one (checked by the sign-in
/// throttle); an admin sets anyone else's without. Either way her other
/// sessions end and her grants are revoked (`accounts::change_password`);
/// the dashboard session it is done in, if it is hers, stays.
pub fn update(
    conn: &mut DbConn,
    clock: &dyn Clock,
    asker: &Asker,
    principal: &Principal,
    id: &str,
    changes: UserChanges,
) -> Result<User, PeopleError> {
    let principal = principal.first_party("change people")?;
    visible(&principal, id)?;
    let mut user = accounts::find_user(conn, id)?.ok_or(AccountError::UnknownUser)?;
    // All or nothing: a bad name is refused before the password changes.
    if let Some(name) = &changes.name {
        accounts::parse_name(name)?;
    }
    if let Some(password) = &changes.password {
        let _permit = hashing(&asker.hashes)?;
        let own = id == principal.user.id;
        if own {
            let current = changes.current_password.as_ref().map(|p| p.expose()).unwrap_or("");
            let checked = crate::sessions::check_current_password(
                conn,
                clock,
                &asker.policy,
                &asker.failures,
                &user.email,
                current,
                asker.ip,
            )?;
            match checked {
                crate::sessions::CurrentPassword::Right => {}
                crate::sessions::CurrentPassword::Wrong => return Err(PeopleError::WrongPassword),
                crate::sessions::CurrentPassword::Throttled(secs) => return Err(PeopleError::Throttled(secs)),
            }
        } else {
            principal.require_admin("set another person's password")?;
        }
        let keep = match &principal.credential {
            crate::domain::principal::Credential::Session { session_id } if own => Some(session_id.as_str()),
            _ => None,
        };
        user = accounts::change_password(conn, clock, id, password, keep, principal.actor())?;
    }
    if let Some(name) = &changes.name {
        user = accounts::rename_user(conn, clock, id, name, principal.actor())?;
    }
    Ok(user)
}

/// Disables a user (admins, not themself): their credentials stop working.
pub fn disable(conn: &mut DbConn, clock: &dyn Clock, principal: &Principal, id: &str) -> Result<User, PeopleError> {
    let principal = principal.first_party("disable users")?;
    principal.require_admin("disable users")?;
    if id == principal.user.id {
        return Err(PeopleError::CannotDisableSelf);
    }
    accounts::find_user(conn, id)?.ok_or(AccountError::UnknownUser)?;
    Ok(accounts::disable_user_id(conn, clock, id, principal.actor())?)
}
