//! Audit events: who did what to which thing, when. Details are small JSON
//! objects and must never hold a secret.

use crate::clock::Clock;
use crate::crypto::public_id;
use crate::page::{Page, PageError, PageOf};
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

/// Which events to read. The page size is the `Page`'s (1–100, default
/// 20, like every list; it was up to 1000, default 100, before lists were
/// paginated — walk with `starting_after` instead).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub action: Option<String>,
    /// A user id, `cli` or `system`.
    pub actor: Option<String>,
    pub target: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditReadError {
    #[error(transparent)]
    Page(#[from] PageError),
    #[error(transparent)]
    Denied(#[from] crate::principal::AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One page of the log, newest first (admins), of the events that match
/// `filter`. `starting_after` must name an event that matches it too, else
/// `PageError::UnknownCursor`.
pub fn recent(
    conn: &mut DbConn,
    principal: &crate::principal::Principal,
    filter: &Filter,
    page: &Page,
) -> Result<PageOf<Event>, AuditReadError> {
    principal.require_admin("read the audit log")?;
    let (action, actor, target) = (filter.action.as_deref(), filter.actor.as_deref(), filter.target.as_deref());
    let after = match page.starting_after() {
        None => None,
        Some(id) => match audit::find(conn, id)? {
            Some(row)
                if action.is_none_or(|a| row.action == a)
                    && actor.is_none_or(|a| row.actor.as_deref() == Some(a))
                    && target.is_none_or(|t| row.target.as_deref() == Some(t)) =>
            {
                Some((row.occurred_at, row.id))
            }
            _ => return Err(PageError::UnknownCursor.into()),
        },
    };
    let rows =
        audit::page(conn, action, actor, target, after.as_ref().map(|(at, id)| (*at, id.as_str())), page.fetch())?;
    PageOf::from_rows(rows, page, |row| Ok(Event::from(row)))
}

/// The newest events about what `principal`'s user owns — their API keys,
/// their OAuth apps and their own account — at most `limit`: what the
/// dashboard's overview shows anyone, admin or not.
pub fn about_own(
    conn: &mut DbConn,
    principal: &crate::principal::Principal,
    limit: i64,
) -> Result<Vec<Event>, AuditReadError> {
    let owner = principal.user.id.as_str();
    let mut targets: Vec<String> = crate::store::api_keys::list(conn, Some(owner))?.into_iter().map(|k| k.id).collect();
    targets.extend(crate::store::clients::list_by_owner(conn, owner)?.into_iter().map(|c| c.id));
    targets.push(owner.to_string());
    Ok(audit::recent_for_targets(conn, &targets, limit)?.into_iter().map(Event::from).collect())
}
