//! Token state that outlives a request: revoked access tokens (by jti) and
//! client-assertion jti values already used. Both are kept only until the
//! token or assertion would have expired anyway.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{revoked_tokens, used_assertions};
use super::{DbConn, StoreError};

/// Marks an access token revoked; revoking it twice is not an error.
pub fn revoke(
    conn: &mut DbConn,
    jti: &str,
    client_id: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> Result<(), StoreError> {
    let inserted = diesel::insert_into(revoked_tokens::table)
        .values((
            revoked_tokens::jti.eq(jti),
            revoked_tokens::client_id.eq(client_id),
            revoked_tokens::revoked_at.eq(now),
            revoked_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn);
    match inserted.map_err(StoreError::from) {
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

pub fn is_revoked(conn: &mut DbConn, jti: &str) -> Result<bool, StoreError> {
    Ok(diesel::select(diesel::dsl::exists(revoked_tokens::table.find(jti))).get_result(conn)?)
}

/// Records an assertion's jti; false when it was used before (a replay).
pub fn use_assertion(
    conn: &mut DbConn,
    client_id: &str,
    jti: &str,
    expires_at: NaiveDateTime,
) -> Result<bool, StoreError> {
    let inserted = diesel::insert_into(used_assertions::table)
        .values((
            used_assertions::client_id.eq(client_id),
            used_assertions::jti.eq(jti),
            used_assertions::expires_at.eq(expires_at),
        ))
        .execute(conn);
    match inserted.map_err(StoreError::from) {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes what can no longer matter: revocations of expired tokens and
/// jti values of expired assertions. Returns how many rows went.
pub fn purge_expired(conn: &mut DbConn, now: NaiveDateTime) -> Result<usize, StoreError> {
    let a = diesel::delete(revoked_tokens::table.filter(revoked_tokens::expires_at.le(now))).execute(conn)?;
    let b = diesel::delete(used_assertions::table.filter(used_assertions::expires_at.le(now))).execute(conn)?;
    Ok(a + b)
}
