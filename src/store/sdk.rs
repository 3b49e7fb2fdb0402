//! The `sdk_tokens` and `sdk_sessions` tables.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{sdk_sessions, sdk_tokens};
use super::{DbConn, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = sdk_tokens)]
pub struct SdkTokenRow {
    pub id: String,
    pub owner_id: String,
    pub mode: crate::domain::Mode,
    pub fingerprint: String,
    pub last4: String,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = sdk_sessions)]
pub struct SdkSessionRow {
    pub id: String,
    pub token_id: String,
    pub owner_id: String,
    pub origin: Option<String>,
    pub ip: Option<String>,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

pub fn insert_token(conn: &mut DbConn, row: &SdkTokenRow) -> Result<(), StoreError> {
    diesel::insert_into(sdk_tokens::table).values(row).execute(conn)?;
    Ok(())
}

pub fn find_token_by_fingerprint(conn: &mut DbConn, fingerprint: &str) -> Result<Option<SdkTokenRow>, StoreError> {
    Ok(sdk_tokens::table
        .filter(sdk_tokens::fingerprint.eq(fingerprint))
        .select(SdkTokenRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn insert_session(conn: &mut DbConn, row: &SdkSessionRow) -> Result<(), StoreError> {
    diesel::insert_into(sdk_sessions::table).values(row).execute(conn)?;
    Ok(())
}

pub fn find_session(conn: &mut DbConn, id: &str) -> Result<Option<SdkSessionRow>, StoreError> {
    Ok(sdk_sessions::table.find(id).select(SdkSessionRow::as_select()).first(conn).optional()?)
}

/// One page of an owner's SDK tokens, oldest first (by `created_at`, then
/// `id`): up to `fetch` after the token whose `(created_at, id)` is
/// `after`. Keyset, not OFFSET.
pub fn page_of_owner(
    conn: &mut DbConn,
    owner_id: &str,
    after: Option<(NaiveDateTime, &str)>,
    fetch: i64,
) -> Result<Vec<SdkTokenRow>, StoreError> {
    let mut query = sdk_tokens::table.filter(sdk_tokens::owner_id.eq(owner_id.to_string())).into_boxed();
    if let Some((at, id)) = after {
        query = query.filter(
            sdk_tokens::created_at.gt(at).or(sdk_tokens::created_at.eq(at).and(sdk_tokens::id.gt(id.to_string()))),
        );
    }
    Ok(query
        .order((sdk_tokens::created_at.asc(), sdk_tokens::id.asc()))
        .limit(fetch)
        .select(SdkTokenRow::as_select())
        .load(conn)?)
}

pub fn find_token(conn: &mut DbConn, id: &str) -> Result<Option<SdkTokenRow>, StoreError> {
    Ok(sdk_tokens::table.find(id).select(SdkTokenRow::as_select()).first(conn).optional()?)
}

/// Revokes a live token; false when it was already revoked.
pub fn revoke_token(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<bool, StoreError> {
    let n = diesel::update(sdk_tokens::table.filter(sdk_tokens::id.eq(id)).filter(sdk_tokens::revoked_at.is_null()))
        .set(sdk_tokens::revoked_at.eq(now))
        .execute(conn)?;
    Ok(n == 1)
}
