//! The `users` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::users;
use super::{DbConn, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    pub role: crate::domain::Role,
    pub disabled: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Inserts a user; `Conflict` when the email is taken.
pub fn insert(conn: &mut DbConn, row: &UserRow) -> Result<(), StoreError> {
    diesel::insert_into(users::table).values(row).execute(conn)?;
    Ok(())
}

pub fn find_by_email(conn: &mut DbConn, email: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(users::table.filter(users::email.eq(email)).select(UserRow::as_select()).first(conn).optional()?)
}

pub fn find_by_id(conn: &mut DbConn, id: &str) -> Result<Option<UserRow>, StoreError> {
    Ok(users::table.find(id).select(UserRow::as_select()).first(conn).optional()?)
}

/// Every user, oldest first.
pub fn list(conn: &mut DbConn) -> Result<Vec<UserRow>, StoreError> {
    Ok(users::table.order((users::created_at.asc(), users::id.asc())).select(UserRow::as_select()).load(conn)?)
}

/// One page of users, oldest first (by `created_at`, then `id`): up to
/// `fetch` after the user whose `(created_at, id)` is `after`. Keyset, not
/// OFFSET.
pub fn page(conn: &mut DbConn, after: Option<(NaiveDateTime, &str)>, fetch: i64) -> Result<Vec<UserRow>, StoreError> {
    let mut query = users::table.into_boxed();
    if let Some((at, id)) = after {
        query = query.filter(users::created_at.gt(at).or(users::created_at.eq(at).and(users::id.gt(id.to_string()))));
    }
    Ok(query.order((users::created_at.asc(), users::id.asc())).limit(fetch).select(UserRow::as_select()).load(conn)?)
}

pub fn count_enabled_admins(conn: &mut DbConn) -> Result<i64, StoreError> {
    Ok(users::table.filter(users::role.eq("admin")).filter(users::disabled.eq(false)).count().get_result(conn)?)
}

/// `NotFound` when no user has this id.
pub fn set_password_hash(conn: &mut DbConn, id: &str, hash: &str, now: NaiveDateTime) -> Result<(), StoreError> {
    let n = diesel::update(users::table.find(id))
        .set((users::password_hash.eq(hash), users::updated_at.eq(now)))
        .execute(conn)?;
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// `NotFound` when no user has this id.
pub fn set_disabled(conn: &mut DbConn, id: &str, disabled: bool, now: NaiveDateTime) -> Result<(), StoreError> {
    let n = diesel::update(users::table.find(id))
        .set((users::disabled.eq(disabled), users::updated_at.eq(now)))
        .execute(conn)?;
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

/// `NotFound` when no user has this id.
pub fn set_display_name(conn: &mut DbConn, id: &str, name: &str, now: NaiveDateTime) -> Result<(), StoreError> {
    let n = diesel::update(users::table.find(id))
        .set((users::display_name.eq(name), users::updated_at.eq(now)))
        .execute(conn)?;
    if n == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}
