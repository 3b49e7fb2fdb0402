//! The `client_registrations` and `initial_access_tokens` tables: dynamic
//! client registration (RFC 7591) and its management tokens (RFC 7592).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{client_registrations, initial_access_tokens};
use super::{DbConn, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = client_registrations)]
pub struct RegistrationRow {
    pub client_id: String,
    /// `open`, or the id of the initial access token that let it in.
    pub registered_by: String,
    /// Fingerprint of the registration access token.
    pub token_fingerprint: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = initial_access_tokens)]
pub struct InitialAccessTokenRow {
    pub id: String,
    pub fingerprint: String,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub max_uses: Option<i64>,
    pub uses: i64,
    pub revoked_at: Option<NaiveDateTime>,
    pub created_by: Option<String>,
}

pub fn insert(conn: &mut DbConn, row: &RegistrationRow) -> Result<(), StoreError> {
    diesel::insert_into(client_registrations::table).values(row).execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConn, client_id: &str) -> Result<Option<RegistrationRow>, StoreError> {
    Ok(client_registrations::table.find(client_id).select(RegistrationRow::as_select()).first(conn).optional()?)
}

pub fn insert_initial_token(conn: &mut DbConn, row: &InitialAccessTokenRow) -> Result<(), StoreError> {
    diesel::insert_into(initial_access_tokens::table).values(row).execute(conn)?;
    Ok(())
}

pub fn find_initial_token_by_fingerprint(
    conn: &mut DbConn,
    fingerprint: &str,
) -> Result<Option<InitialAccessTokenRow>, StoreError> {
    Ok(initial_access_tokens::table
        .filter(initial_access_tokens::fingerprint.eq(fingerprint))
        .select(InitialAccessTokenRow::as_select())
        .first(conn)
        .optional()?)
}

/// Every initial access token, newest first.
pub fn list_initial_tokens(conn: &mut DbConn) -> Result<Vec<InitialAccessTokenRow>, StoreError> {
    Ok(initial_access_tokens::table
        .order((initial_access_tokens::created_at.desc(), initial_access_tokens::id.desc()))
        .select(InitialAccessTokenRow::as_select())
        .load(conn)?)
}

/// Revokes a live token; `false` when no token with this id is unrevoked.
pub fn revoke_initial_token(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<bool, StoreError> {
    let n = diesel::update(initial_access_tokens::table.find(id).filter(initial_access_tokens::revoked_at.is_null()))
        .set(initial_access_tokens::revoked_at.eq(now))
        .execute(conn)?;
    Ok(n == 1)
}

/// Counts one use of token `id` if it is still usable at `now` (not
/// revoked, not expired, uses left), in one conditional update, so two
/// registrations racing for the last use cannot both have it.
pub fn use_initial_token(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<bool, StoreError> {
    let n = diesel::update(
        initial_access_tokens::table
            .find(id)
            .filter(initial_access_tokens::revoked_at.is_null())
            .filter(initial_access_tokens::expires_at.is_null().or(initial_access_tokens::expires_at.gt(now)))
            .filter(
                initial_access_tokens::max_uses
                    .is_null()
                    .or(initial_access_tokens::uses.lt(initial_access_tokens::max_uses.assume_not_null())),
            ),
    )
    .set(initial_access_tokens::uses.eq(initial_access_tokens::uses + 1))
    .execute(conn)?;
    Ok(n == 1)
}
