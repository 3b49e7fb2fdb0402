//! The `signing_keys` table. State changes are conditional updates, so two
//! instances promoting the same key at once cannot both win.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::signing_keys;
use super::{DbConn, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub kid: String,
    pub algorithm: String,
    pub state: String,
    pub public_jwk: String,
    pub private_key: String,
    pub created_at: NaiveDateTime,
    pub activates_at: NaiveDateTime,
    pub retired_at: Option<NaiveDateTime>,
    pub unpublish_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut DbConn, row: &SigningKeyRow) -> Result<(), StoreError> {
    diesel::insert_into(signing_keys::table).values(row).execute(conn)?;
    Ok(())
}

/// Every key, newest first.
pub fn list(conn: &mut DbConn) -> Result<Vec<SigningKeyRow>, StoreError> {
    Ok(signing_keys::table
        .order((signing_keys::activates_at.desc(), signing_keys::kid.desc()))
        .select(SigningKeyRow::as_select())
        .load(conn)?)
}

/// `next` keys whose time has come.
pub fn due(conn: &mut DbConn, now: NaiveDateTime) -> Result<Vec<SigningKeyRow>, StoreError> {
    Ok(signing_keys::table
        .filter(signing_keys::state.eq("next"))
        .filter(signing_keys::activates_at.le(now))
        .order(signing_keys::activates_at.asc())
        .select(SigningKeyRow::as_select())
        .load(conn)?)
}

/// `next` → `active`; false when another caller promoted it first.
pub fn activate(conn: &mut DbConn, kid: &str) -> Result<bool, StoreError> {
    let n = diesel::update(signing_keys::table.find(kid).filter(signing_keys::state.eq("next")))
        .set(signing_keys::state.eq("active"))
        .execute(conn)?;
    Ok(n == 1)
}

/// Retires every active key of `algorithm` but `keep`.
pub fn retire_others(
    conn: &mut DbConn,
    algorithm: &str,
    keep: &str,
    now: NaiveDateTime,
    unpublish_at: NaiveDateTime,
) -> Result<usize, StoreError> {
    Ok(diesel::update(
        signing_keys::table
            .filter(signing_keys::algorithm.eq(algorithm))
            .filter(signing_keys::state.eq("active"))
            .filter(signing_keys::kid.ne(keep)),
    )
    .set((
        signing_keys::state.eq("retired"),
        signing_keys::retired_at.eq(now),
        signing_keys::unpublish_at.eq(unpublish_at),
    ))
    .execute(conn)?)
}

/// The newest active key of `algorithm`.
pub fn active(conn: &mut DbConn, algorithm: &str) -> Result<Option<SigningKeyRow>, StoreError> {
    Ok(signing_keys::table
        .filter(signing_keys::algorithm.eq(algorithm))
        .filter(signing_keys::state.eq("active"))
        .order((signing_keys::activates_at.desc(), signing_keys::kid.desc()))
        .select(SigningKeyRow::as_select())
        .first(conn)
        .optional()?)
}

/// What the JWKS shows at `now`: next and active keys, and retired keys
/// whose tokens may still be alive.
pub fn published(conn: &mut DbConn, now: NaiveDateTime) -> Result<Vec<SigningKeyRow>, StoreError> {
    Ok(signing_keys::table
        .filter(
            signing_keys::state
                .eq_any(["next", "active"])
                .or(signing_keys::state.eq("retired").and(signing_keys::unpublish_at.gt(now))),
        )
        .order((signing_keys::activates_at.desc(), signing_keys::kid.desc()))
        .select(SigningKeyRow::as_select())
        .load(conn)?)
}

pub fn find(conn: &mut DbConn, kid: &str) -> Result<Option<SigningKeyRow>, StoreError> {
    Ok(signing_keys::table.find(kid).select(SigningKeyRow::as_select()).first(conn).optional()?)
}
