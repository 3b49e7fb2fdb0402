//! The `api_keys` table.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::api_keys;
use super::{DbConn, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    pub id: String,
    pub owner_id: String,
    pub client_id: Option<String>,
    pub name: String,
    pub key_type: crate::domain::KeyType,
    pub mode: crate::domain::Mode,
    pub prefix: String,
    pub last4: String,
    pub fingerprint: String,
    pub permissions: String,
    pub allowed_ips: String,
    pub allowed_referrers: String,
    pub allowed_endpoints: String,
    pub rate_limit: Option<i64>,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub rotated_from: Option<String>,
}

pub fn insert(conn: &mut DbConn, row: &ApiKeyRow) -> Result<(), StoreError> {
    diesel::insert_into(api_keys::table).values(row).execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<ApiKeyRow>, StoreError> {
    Ok(api_keys::table.find(id).select(ApiKeyRow::as_select()).first(conn).optional()?)
}

pub fn find_by_fingerprint(conn: &mut DbConn, fingerprint: &str) -> Result<Option<ApiKeyRow>, StoreError> {
    Ok(api_keys::table
        .filter(api_keys::fingerprint.eq(fingerprint))
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()?)
}

/// Keys, oldest first; of one owner when given.
pub fn list(conn: &mut DbConn, owner_id: Option<&str>) -> Result<Vec<ApiKeyRow>, StoreError> {
    let mut query = api_keys::table.into_boxed();
    if let Some(owner) = owner_id {
        query = query.filter(api_keys::owner_id.eq(owner.to_string()));
    }
    Ok(query.order((api_keys::created_at.asc(), api_keys::id.asc())).select(ApiKeyRow::as_select()).load(conn)?)
}

/// One page of an owner's keys, oldest first (by `created_at`, then
/// `id`): up to `fetch` keys after the key whose `(created_at, id)` is
/// `after`. Keyset, not OFFSET, so keys created meanwhile never shift it.
pub fn page_of_owner(
    conn: &mut DbConn,
    owner_id: &str,
    after: Option<(NaiveDateTime, &str)>,
    fetch: i64,
) -> Result<Vec<ApiKeyRow>, StoreError> {
    let mut query = api_keys::table.filter(api_keys::owner_id.eq(owner_id.to_string())).into_boxed();
    if let Some((at, id)) = after {
        query = query
            .filter(api_keys::created_at.gt(at).or(api_keys::created_at.eq(at).and(api_keys::id.gt(id.to_string()))));
    }
    Ok(query
        .order((api_keys::created_at.asc(), api_keys::id.asc()))
        .limit(fetch)
        .select(ApiKeyRow::as_select())
        .load(conn)?)
}

/// Revokes a key now; false when it was revoked already.
pub fn revoke(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<bool, StoreError> {
    let n = diesel::update(api_keys::table.find(id).filter(api_keys::revoked_at.is_null()))
        .set(api_keys::revoked_at.eq(now))
        .execute(conn)?;
    Ok(n == 1)
}

/// Inserts the successor of `old` and ends the old key at `old_expires_at`
/// (or sooner, if it was to end sooner), in one transaction — only if the
/// old key is still live at `now`: a rotation racing a revocation (or an
/// expiry) loses, so no successor outlives a revoked key. False when it
/// lost.
pub fn rotate(
    conn: &mut DbConn,
    old: &ApiKeyRow,
    new: &ApiKeyRow,
    old_expires_at: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    let end = old.expires_at.map_or(old_expires_at, |e| e.min(old_expires_at));
    let rotated = conn.transaction(|conn| {
        // The write comes first, so SQLite takes its write lock at once.
        let live = api_keys::table
            .find(&old.id)
            .filter(api_keys::revoked_at.is_null())
            .filter(api_keys::expires_at.is_null().or(api_keys::expires_at.gt(now)));
        if diesel::update(live).set(api_keys::expires_at.eq(end)).execute(conn)? != 1 {
            return Ok(false);
        }
        diesel::insert_into(api_keys::table).values(new).execute(conn)?;
        Ok::<_, diesel::result::Error>(true)
    })?;
    Ok(rotated)
}

/// Records use of keys (batched by the caller).
pub fn touch(conn: &mut DbConn, ids: &[String], now: NaiveDateTime) -> Result<(), StoreError> {
    diesel::update(api_keys::table.filter(api_keys::id.eq_any(ids)))
        .set(api_keys::last_used_at.eq(now))
        .execute(conn)?;
    Ok(())
}
