//! The `sessions` and `login_failures` tables.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{login_failures, sessions};
use super::{DbConn, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub created_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConn, row: &SessionRow) -> Result<(), StoreError> {
    diesel::insert_into(sessions::table).values(row).execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<SessionRow>, StoreError> {
    Ok(sessions::table.find(id).select(SessionRow::as_select()).first(conn).optional()?)
}

pub fn touch(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> Result<(), StoreError> {
    diesel::update(sessions::table.find(id)).set(sessions::last_seen_at.eq(now)).execute(conn)?;
    Ok(())
}

pub fn delete(conn: &mut DbConn, id: &str) -> Result<(), StoreError> {
    diesel::delete(sessions::table.find(id)).execute(conn)?;
    Ok(())
}

/// Ends every session of `user_id` but `keep`; how many ended.
pub fn delete_for_user_except(conn: &mut DbConn, user_id: &str, keep: Option<&str>) -> Result<usize, StoreError> {
    let mine = sessions::table.filter(sessions::user_id.eq(user_id));
    Ok(match keep {
        Some(id) => diesel::delete(mine.filter(sessions::id.ne(id))).execute(conn)?,
        None => diesel::delete(mine).execute(conn)?,
    })
}

/// Ends every session of `user_id`; how many there were.
pub fn delete_for_user(conn: &mut DbConn, user_id: &str) -> Result<usize, StoreError> {
    Ok(diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)?)
}

pub fn record_failure(conn: &mut DbConn, id: &str, subject: &str, now: NaiveDateTime) -> Result<(), StoreError> {
    diesel::insert_into(login_failures::table)
        .values((login_failures::id.eq(id), login_failures::subject.eq(subject), login_failures::occurred_at.eq(now)))
        .execute(conn)?;
    Ok(())
}

/// Deletes one failure row (a sign-in's reservation, once the password
/// proved right).
pub fn delete_failure(conn: &mut DbConn, id: &str) -> Result<(), StoreError> {
    diesel::delete(login_failures::table.find(id)).execute(conn)?;
    Ok(())
}

/// Takes, until the end of the transaction, a lock on each of `subjects`,
/// in one order whatever the caller's, so that concurrent sign-ins for one
/// account or one address count and reserve one at a time. PostgreSQL:
/// transaction-level advisory locks on a hash of the subject. SQLite needs
/// none: a transaction that writes first holds the database's one write
/// lock from its first statement.
pub fn lock_subjects(conn: &mut DbConn, subjects: &[&str]) -> Result<(), StoreError> {
    let DbConn::Postgres(pg) = conn else { return Ok(()) };
    let mut sorted = subjects.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    for subject in sorted {
        // The second argument seeds the hash: "tessera sign-in throttle".
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7252365522))")
            .bind::<diesel::sql_types::Text, _>(subject)
            .execute(pg)?;
    }
    Ok(())
}

/// Failures of `subject` since `since`, oldest first (their times).
pub fn failures_since(
    conn: &mut DbConn,
    subject: &str,
    since: NaiveDateTime,
) -> Result<Vec<NaiveDateTime>, StoreError> {
    Ok(login_failures::table
        .filter(login_failures::subject.eq(subject))
        .filter(login_failures::occurred_at.gt(since))
        .order(login_failures::occurred_at.asc())
        .select(login_failures::occurred_at)
        .load(conn)?)
}

/// Forgets the failures of `subject` (after a successful sign-in).
pub fn clear_failures(conn: &mut DbConn, subject: &str) -> Result<(), StoreError> {
    diesel::delete(login_failures::table.filter(login_failures::subject.eq(subject))).execute(conn)?;
    Ok(())
}

/// Deletes expired sessions and failures older than `failures_before`.
pub fn purge(conn: &mut DbConn, now: NaiveDateTime, failures_before: NaiveDateTime) -> Result<(), StoreError> {
    diesel::delete(sessions::table.filter(sessions::expires_at.le(now))).execute(conn)?;
    diesel::delete(login_failures::table.filter(login_failures::occurred_at.le(failures_before))).execute(conn)?;
    Ok(())
}
