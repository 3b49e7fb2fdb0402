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
