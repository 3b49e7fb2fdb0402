//! The `audit_events` table: append-only.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::audit_events;
use super::{DbConn, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
pub struct AuditEventRow {
    pub id: String,
    pub occurred_at: NaiveDateTime,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub details: String,
    /// Which credential of the actor acted (`Credential::audit_label`).
    pub credential: Option<String>,
}

pub fn insert(conn: &mut DbConn, row: &AuditEventRow) -> Result<(), StoreError> {
    diesel::insert_into(audit_events::table).values(row).execute(conn)?;
    Ok(())
}

/// Events about one target, oldest first.
pub fn for_target(conn: &mut DbConn, target: &str) -> Result<Vec<AuditEventRow>, StoreError> {
    Ok(audit_events::table
        .filter(audit_events::target.eq(target))
        .order((audit_events::occurred_at.asc(), audit_events::id.asc()))
        .select(AuditEventRow::as_select())
        .load(conn)?)
}

pub fn find(conn: &mut DbConn, id: &str) -> Result<Option<AuditEventRow>, StoreError> {
    Ok(audit_events::table.find(id).select(AuditEventRow::as_select()).first(conn).optional()?)
}

/// One page of events, newest first (by `occurred_at`, then `id`, both
/// descending), optionally of one action, actor or target: up to `fetch` events
/// older than the one whose `(occurred_at, id)` is `after`. Keyset, not
/// OFFSET, so events recorded while a reader walks back never shift it.
pub fn page(
    conn: &mut DbConn,
    action: Option<&str>,
    actor: Option<&str>,
    target: Option<&str>,
    after: Option<(NaiveDateTime, &str)>,
    fetch: i64,
) -> Result<Vec<AuditEventRow>, StoreError> {
    let mut query = audit_events::table.into_boxed();
    if let Some(a) = action {
        query = query.filter(audit_events::action.eq(a.to_string()));
    }
    if let Some(a) = actor {
        query = query.filter(audit_events::actor.eq(a.to_string()));
    }
    if let Some(t) = target {
        query = query.filter(audit_events::target.eq(t.to_string()));
    }
    if let Some((at, id)) = after {
        query = query.filter(
            audit_events::occurred_at
                .lt(at)
                .or(audit_events::occurred_at.eq(at).and(audit_events::id.lt(id.to_string()))),
        );
    }
    Ok(query
        .order((audit_events::occurred_at.desc(), audit_events::id.desc()))
        .limit(fetch)
        .select(AuditEventRow::as_select())
        .load(conn)?)
}

/// The newest events whose target is one of `targets`, at most `limit`.
pub fn recent_for_targets(conn: &mut DbConn, targets: &[String], limit: i64) -> Result<Vec<AuditEventRow>, StoreError> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    Ok(audit_events::table
        .filter(audit_events::target.eq_any(targets))
        .order((audit_events::occurred_at.desc(), audit_events::id.desc()))
        .limit(limit)
        .select(AuditEventRow::as_select())
        .load(conn)?)
}
