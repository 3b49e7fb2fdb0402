//! API keys' usage: per-key daily counters split by outcome, and each
//! key's most recent uses. Written only by the background flush
//! (`apikeys::usage`), read by the key's page.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::upsert::excluded;

use super::schema::{api_key_daily_usage, api_key_uses};
use super::{DbConn, StoreError};

/// Uses to add to one key's counters of one day.
#[derive(Debug, Clone, PartialEq, Eq, Insertable)]
#[diesel(table_name = api_key_daily_usage)]
pub struct DailyUsageRow {
    pub key_id: String,
    /// Midnight UTC of the day.
    pub day: NaiveDateTime,
    pub allowed: i64,
    pub refused: i64,
    pub rate_limited: i64,
}

/// One use of a key, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Insertable, Queryable)]
#[diesel(table_name = api_key_uses)]
pub struct UseRow {
    pub id: String,
    pub key_id: String,
    pub used_at: NaiveDateTime,
    pub seq: i64,
    pub ip: Option<String>,
    pub method: String,
    pub path: String,
    pub outcome: String,
}

/// Adds `rows` to the daily counters, creating a day's row on its first
/// use. An upsert, so that two instances flushing the same key and day
/// both count; diesel builds `ON CONFLICT` only for a concrete backend, so
/// the one statement below is instantiated once per backend.
pub fn add_daily(conn: &mut DbConn, rows: &[DailyUsageRow]) -> Result<(), StoreError> {
    use api_key_daily_usage::dsl as d;
    macro_rules! upsert {
        ($c:expr) => {
            for row in rows {
                diesel::insert_into(d::api_key_daily_usage)
                    .values(row)
                    .on_conflict((d::key_id, d::day))
                    .do_update()
                    .set((
                        d::allowed.eq(d::allowed + excluded(d::allowed)),
                        d::refused.eq(d::refused + excluded(d::refused)),
                        d::rate_limited.eq(d::rate_limited + excluded(d::rate_limited)),
                    ))
                    .execute($c)?;
            }
        };
    }
    match conn {
        DbConn::Sqlite(c) => upsert!(c),
        DbConn::Postgres(c) => upsert!(c),
    }
    Ok(())
}

/// One key's counters for the days in `[from, to]`, oldest first; days
/// without a use have no row.
pub fn daily(
    conn: &mut DbConn,
    key_id: &str,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<Vec<(NaiveDateTime, i64, i64, i64)>, StoreError> {
    Ok(api_key_daily_usage::table
        .filter(api_key_daily_usage::key_id.eq(key_id))
        .filter(api_key_daily_usage::day.ge(from))
        .filter(api_key_daily_usage::day.le(to))
        .order(api_key_daily_usage::day.asc())
        .select((
            api_key_daily_usage::day,
            api_key_daily_usage::allowed,
            api_key_daily_usage::refused,
            api_key_daily_usage::rate_limited,
        ))
        .load(conn)?)
}

/// Stores `uses`, then trims each key they name to its newest `keep`.
pub fn add_uses(conn: &mut DbConn, uses: &[UseRow], keep: i64) -> Result<(), StoreError> {
    // One statement per row: diesel has no multi-row insert over both
    // backends at once, and the caller runs this in one transaction.
    for row in uses {
        diesel::insert_into(api_key_uses::table).values(row).execute(conn)?;
    }
    let mut keys: Vec<&str> = uses.iter().map(|u| u.key_id.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    for key in keys {
        let rows = diesel::alias!(api_key_uses as newest);
        let kept = rows
            .filter(rows.field(api_key_uses::key_id).eq(key))
            .order((rows.field(api_key_uses::used_at).desc(), rows.field(api_key_uses::seq).desc()))
            .select(rows.field(api_key_uses::id))
            .limit(keep);
        diesel::delete(api_key_uses::table.filter(api_key_uses::key_id.eq(key)).filter(api_key_uses::id.ne_all(kept)))
            .execute(conn)?;
    }
    Ok(())
}

/// One key's newest `limit` uses, newest first.
pub fn recent(conn: &mut DbConn, key_id: &str, limit: i64) -> Result<Vec<UseRow>, StoreError> {
    Ok(api_key_uses::table
        .filter(api_key_uses::key_id.eq(key_id))
        .order((api_key_uses::used_at.desc(), api_key_uses::seq.desc()))
        .limit(limit)
        .load(conn)?)
}
