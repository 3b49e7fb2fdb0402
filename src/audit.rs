//! Audit events: who did what to which thing, when. Details are small JSON
//! objects and must never hold a secret.

use crate::clock::Clock;
use crate::crypto::public_id;
use crate::store::audit::{self, AuditEventRow};
use crate::store::{DbConn, StoreError};

/// Who acted: a user id, a client id, or the operator at the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User(String),
    Cli,
    System,
}

impl Actor {
    fn as_column(&self) -> String {
        match self {
            Actor::User(id) => id.clone(),
            Actor::Cli => "cli".into(),
            Actor::System => "system".into(),
        }
    }
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    pub actor: Actor,
    pub action: &'a str,
    pub target: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub details: serde_json::Value,
}

impl<'a> AuditEvent<'a> {
    pub fn new(actor: Actor, action: &'a str, target: Option<&'a str>) -> Self {
        Self {
            actor,
            action,
            target,
            ip: None,
            request_id: None,
            details: serde_json::Value::Object(Default::default()),
        }
    }
}

pub fn record(conn: &mut DbConn, clock: &dyn Clock, event: AuditEvent<'_>) -> Result<(), StoreError> {
    audit::insert(
        conn,
        &AuditEventRow {
            id: public_id("evt"),
            occurred_at: clock.now().naive_utc(),
            actor: Some(event.actor.as_column()),
            action: event.action.to_string(),
            target: event.target.map(str::to_string),
            ip: event.ip.map(str::to_string),
            request_id: event.request_id.map(str::to_string),
            details: event.details.to_string(),
        },
    )
}

/// The most events one read returns.
pub const MAX_LIMIT: i64 = 1000;

/// An event as the audit API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    pub id: String,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub details: serde_json::Value,
}

impl From<AuditEventRow> for Event {
    fn from(r: AuditEventRow) -> Self {
        Self {
            details: serde_json::from_str(&r.details).unwrap_or_default(),
            id: r.id,
            occurred_at: r.occurred_at.and_utc(),
            actor: r.actor,
            action: r.action,
            target: r.target,
            ip: r.ip,
            request_id: r.request_id,
        }
    }
}

/// Which events to read.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub action: Option<String>,
    /// A user id, `cli` or `system`.
    pub actor: Option<String>,
    pub target: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditReadError {
    #[error("limit must be 1 to {MAX_LIMIT}")]
    BadLimit,
    #[error(transparent)]
    Denied(#[from] crate::principal::AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The newest events first (admins): the whole log.
pub fn recent(
    conn: &mut DbConn,
    principal: &crate::principal::Principal,
    filter: &Filter,
) -> Result<Vec<Event>, AuditReadError> {
    principal.require_admin("read the audit log")?;
    let limit = filter.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AuditReadError::BadLimit);
    }
    let rows = audit::recent(conn, filter.action.as_deref(), filter.actor.as_deref(), filter.target.as_deref(), limit)?;
    Ok(rows.into_iter().map(Event::from).collect())
}
