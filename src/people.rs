//! `/v1/users` and the dashboard's people pages: who may see and change
//! whom. Anyone reads and renames themself; an admin lists, creates, reads,
//! renames and disables anyone but themself. Another user reads as unknown
//! to a member, so nothing leaks.

use crate::accounts::{self, AccountError, NewUser, User};
use crate::clock::Clock;
use crate::principal::{AuthError, Principal};
use crate::store::{DbConn, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PeopleError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Denied(#[from] AuthError),
    #[error("you cannot disable yourself")]
    CannotDisableSelf,
}

impl From<StoreError> for PeopleError {
    fn from(e: StoreError) -> Self {
        Self::Account(e.into())
    }
}

/// Everyone for an admin; oneself for anyone else.
pub fn list(conn: &mut DbConn, principal: &Principal) -> Result<Vec<User>, PeopleError> {
    if !principal.is_admin() {
        return Ok(vec![principal.user.clone()]);
    }
    Ok(accounts::list_users(conn)?)
}

fn visible(principal: &Principal, id: &str) -> Result<(), PeopleError> {
    if principal.may_manage(Some(id)) { Ok(()) } else { Err(AccountError::UnknownUser.into()) }
}

pub fn get(conn: &mut DbConn, principal: &Principal, id: &str) -> Result<User, PeopleError> {
    visible(principal, id)?;
    accounts::find_user(conn, id)?.ok_or_else(|| AccountError::UnknownUser.into())
}

/// Creates a user (admins). argon2 runs here: call it on the blocking pool.
pub fn create(conn: &mut DbConn, clock: &dyn Clock, principal: &Principal, new: NewUser) -> Result<User, PeopleError> {
    principal.require_admin("create users")?;
    Ok(accounts::create_user(conn, clock, new, principal.actor())?)
}

pub fn rename(
    conn: &mut DbConn,
    clock: &dyn Clock,
    principal: &Principal,
    id: &str,
    name: &str,
) -> Result<User, PeopleError> {
    visible(principal, id)?;
    Ok(accounts::rename_user(conn, clock, id, name, principal.actor())?)
}

/// Disables a user (admins, not themself): their credentials stop working.
pub fn disable(conn: &mut DbConn, clock: &dyn Clock, principal: &Principal, id: &str) -> Result<User, PeopleError> {
    principal.require_admin("disable users")?;
    if id == principal.user.id {
        return Err(PeopleError::CannotDisableSelf);
    }
    accounts::find_user(conn, id)?.ok_or(AccountError::UnknownUser)?;
    Ok(accounts::disable_user_id(conn, clock, id, principal.actor())?)
}
