//! Batched deletes of rows that can no longer matter, for the purge
//! service (`crate::purge`), which decides the cut-off times.
//!
//! Each function deletes at most `limit` rows in one short statement,
//! `DELETE FROM t WHERE key IN (SELECT key FROM t WHERE … LIMIT n)`, so no
//! statement holds locks for long (SQLite locks the whole file while it
//! writes), and returns how many went; the caller loops until a batch
//! comes back short. The same query runs on both backends.

use chrono::NaiveDateTime;
use diesel::dsl::{exists, not};
use diesel::prelude::*;

use super::schema::{
    api_key_daily_usage, api_key_uses, audit_events, authorization_codes, grant_access_tokens, grants,
    initial_access_tokens, login_failures, refresh_tokens, revoked_tokens, sdk_sessions, sessions, used_assertions,
};
use super::{DbConn, StoreError};

/// Authorization codes past their expiry, used or not: an expired code is
/// refused whatever its row says.
pub fn authorization_codes(conn: &mut DbConn, now: NaiveDateTime, limit: i64) -> Result<usize, StoreError> {
    let rows = diesel::alias!(authorization_codes as batch);
    let batch = rows
        .filter(rows.field(authorization_codes::expires_at).le(now))
        .select(rows.field(authorization_codes::id))
        .limit(limit);
    Ok(diesel::delete(authorization_codes::table.filter(authorization_codes::id.eq_any(batch))).execute(conn)?)
}

/// Browser sessions past their absolute expiry, or idle since
/// `idle_before` (the same two rules `sessions::resolve` applies).
pub fn sessions(
    conn: &mut DbConn,
    now: NaiveDateTime,
    idle_before: NaiveDateTime,
    limit: i64,
) -> Result<usize, StoreError> {
    let rows = diesel::alias!(sessions as batch);
    let batch = rows
        .filter(rows.field(sessions::expires_at).le(now).or(rows.field(sessions::last_seen_at).le(idle_before)))
        .select(rows.field(sessions::id))
        .limit(limit);
    Ok(diesel::delete(sessions::table.filter(sessions::id.eq_any(batch))).execute(conn)?)
}

/// Client-assertion jti values whose assertion has expired (the stored
/// expiry already includes the leeway), so a replay is refused anyway.
///
/// The key is `(client_id, jti)`, and a row-value `IN` is not something
/// diesel builds; so a batch of keys is read first (by the expiry index)
/// and deleted per client, by the primary key. Each row deleted was dead
/// when read and time only moves on, so the gap between the two
/// statements is harmless.
pub fn used_assertions(conn: &mut DbConn, now: NaiveDateTime, limit: i64) -> Result<usize, StoreError> {
    let mut keys: Vec<(String, String)> = used_assertions::table
        .filter(used_assertions::expires_at.le(now))
        .select((used_assertions::client_id, used_assertions::jti))
        .limit(limit)
        .load(conn)?;
    keys.sort();
    let mut deleted = 0;
    for chunk in keys.chunk_by(|a, b| a.0 == b.0) {
        let client_id = &chunk[0].0;
        let jtis: Vec<&str> = chunk.iter().map(|(_, jti)| jti.as_str()).collect();
        deleted += diesel::delete(
            used_assertions::table
                .filter(used_assertions::client_id.eq(client_id))
                .filter(used_assertions::jti.eq_any(jtis))
                .filter(used_assertions::expires_at.le(now)),
        )
        .execute(conn)?;
    }
    Ok(deleted)
}

/// SDK sessions past their expiry (they read as 404 from then on).
pub fn sdk_sessions(conn: &mut DbConn, now: NaiveDateTime, limit: i64) -> Result<usize, StoreError> {
    let rows = diesel::alias!(sdk_sessions as batch);
    let batch =
        rows.filter(rows.field(sdk_sessions::expires_at).le(now)).select(rows.field(sdk_sessions::id)).limit(limit);
    Ok(diesel::delete(sdk_sessions::table.filter(sdk_sessions::id.eq_any(batch))).execute(conn)?)
}

/// Failed sign-ins at or before `before`: the throttle counts only those
/// after it.
pub fn login_failures(conn: &mut DbConn, before: NaiveDateTime, limit: i64) -> Result<usize, StoreError> {
    let rows = diesel::alias!(login_failures as batch);
    let batch = rows
        .filter(rows.field(login_failures::occurred_at).le(before))
        .select(rows.field(login_failures::id))
        .limit(limit);
    Ok(diesel::delete(login_failures::table.filter(login_failures::id.eq_any(batch))).execute(conn)?)
}

/// Revocations of access tokens that have expired: an expired token is
/// refused before its revocation is looked up.
pub fn revoked_tokens(conn: &mut DbConn, now: NaiveDateTime, limit: i64) -> Result<usize, StoreError> {
    let rows = diesel::alias!(revoked_tokens as batch);
    let batch = rows
        .filter(rows.field(revoked_tokens::expires_at).le(now))
        .select(rows.field(revoked_tokens::jti))
        .limit(limit);
    Ok(diesel::delete(revoked_tokens::table.filter(revoked_tokens::jti.eq_any(batch))).execute(conn)?)
}

/// Dead refresh tokens: unused ones that expired at or before
/// `dead_before`, and every token of a family that ended at or before it.
/// A retired (used) token of a family still alive is kept, because
/// presenting it again is how reuse is detected and the family revoked.
/// The caller puts `dead_before` one access-token lifetime in the past, so
/// that revoking a refresh token (RFC 7009) still reaches the access
/// tokens minted with it for as long as they live.
pub fn refresh_tokens(conn: &mut DbConn, dead_before: NaiveDateTime, limit: i64) -> Result<usize, StoreError> {
    let ended_families = grants::table.filter(grants::expires_at.le(dead_before)).select(grants::id);
    let rows = diesel::alias!(refresh_tokens as batch);
    let batch = rows
        .filter(
            rows.field(refresh_tokens::used_at)
                .is_null()
                .and(rows.field(refresh_tokens::expires_at).le(dead_before))
                .or(rows.field(refresh_tokens::grant_id).eq_any(ended_families)),
        )
        .select(rows.field(refresh_tokens::id))
        .limit(limit);
    Ok(diesel::delete(refresh_tokens::table.filter(refresh_tokens::id.eq_any(batch))).execute(conn)?)
}

/// The access-token records of grants that are entirely dead: the family
/// ended at or before `ended_before` and none of its access tokens is
/// still unexpired at `now`. Revoking such a grant has nothing left to
/// revoke.
pub fn grant_access_tokens(
    conn: &mut DbConn,
    ended_before: NaiveDateTime,
    now: NaiveDateTime,
    limit: i64,
) -> Result<usize, StoreError> {
    let ended_families = grants::table.filter(grants::expires_at.le(ended_before)).select(grants::id);
    let (rows, sibling) = diesel::alias!(grant_access_tokens as batch, grant_access_tokens as sibling);
    let live_sibling = sibling
        .filter(sibling.field(grant_access_tokens::grant_id).eq(rows.field(grant_access_tokens::grant_id)))
        .filter(sibling.field(grant_access_tokens::expires_at).gt(now));
    let batch = rows
        .filter(rows.field(grant_access_tokens::grant_id).eq_any(ended_families))
        .filter(not(exists(live_sibling)))
        .select(rows.field(grant_access_tokens::jti))
        .limit(limit);
    Ok(diesel::delete(grant_access_tokens::table.filter(grant_access_tokens::jti.eq_any(batch))).execute(conn)?)
}

/// Grants (families) that ended at or before `ended_before` and have no
/// refresh token nor access-token record left (the two functions above
/// delete those first; the check keeps the foreign keys satisfied if a
/// run stopped half-way).
pub fn grants(conn: &mut DbConn, ended_before: NaiveDateTime, limit: i64) -> Result<usize, StoreError> {
    let rows = diesel::alias!(grants as batch);
    let batch = rows
        .filter(rows.field(grants::expires_at).le(ended_before))
        .filter(not(exists(refresh_tokens::table.filter(refresh_tokens::grant_id.eq(rows.field(grants::id))))))
        .filter(not(exists(
            grant_access_tokens::table.filter(grant_access_tokens::grant_id.eq(rows.field(grants::id))),
        )))
        .select(rows.field(grants::id))
        .limit(limit);
    Ok(diesel::delete(grants::table.filter(grants::id.eq_any(batch))).execute(conn)?)
}

/// Audit events older than `before` (the retention period).
pub fn audit_events(conn: &mut DbConn, before: NaiveDateTime, limit: i64) -> Result<usize, StoreError> {
    let rows = diesel::alias!(audit_events as batch);
    let batch =
        rows.filter(rows.field(audit_events::occurred_at).lt(before)).select(rows.field(audit_events::id)).limit(limit);
    Ok(diesel::delete(audit_events::table.filter(audit_events::id.eq_any(batch))).execute(conn)?)
}

/// API keys' uses noted before `before`: the key's page shows 30 days.
pub fn key_uses(conn: &mut DbConn, before: NaiveDateTime, limit: i64) -> Result<usize, StoreError> {
    let rows = diesel::alias!(api_key_uses as batch);
    let batch =
        rows.filter(rows.field(api_key_uses::used_at).lt(before)).select(rows.field(api_key_uses::id)).limit(limit);
    Ok(diesel::delete(api_key_uses::table.filter(api_key_uses::id.eq_any(batch))).execute(conn)?)
}

/// API keys' daily counters of days that began before `before`. The key
/// is `(key_id, day)`, and a row-value `IN` is not something diesel
/// builds; so a batch of days is read first and deleted by day (every key
/// of such a day is past the cut-off, so the batch may run over `limit`
/// by the keys sharing its last day).
pub fn key_usage_days(conn: &mut DbConn, before: NaiveDateTime, limit: i64) -> Result<usize, StoreError> {
    let mut days: Vec<NaiveDateTime> = api_key_daily_usage::table
        .filter(api_key_daily_usage::day.lt(before))
        .select(api_key_daily_usage::day)
        .limit(limit)
        .load(conn)?;
    days.sort_unstable();
    days.dedup();
    Ok(diesel::delete(api_key_daily_usage::table.filter(api_key_daily_usage::day.eq_any(days))).execute(conn)?)
}

/// Initial access tokens past their expiry: they register nothing more.
pub fn initial_access_tokens(conn: &mut DbConn, now: NaiveDateTime, limit: i64) -> Result<usize, StoreError> {
    let rows = diesel::alias!(initial_access_tokens as batch);
    let batch = rows
        .filter(rows.field(initial_access_tokens::expires_at).le(now))
        .select(rows.field(initial_access_tokens::id))
        .limit(limit);
    Ok(diesel::delete(initial_access_tokens::table.filter(initial_access_tokens::id.eq_any(batch))).execute(conn)?)
}
