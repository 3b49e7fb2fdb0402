//! Audit events: who did what to which thing, when. Details are small JSON
//! objects and must never hold a secret.

use crate::clock::Clock;
use crate::crypto::public_id;
pub use crate::domain::Actor;
use crate::domain::page::{Page, PageError, PageOf};
use crate::store::audit::{self, AuditEventRow};
use crate::store::{DbConn, StoreError};

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
    record_at(conn, clock.now().naive_utc(), event)
}

/// `record`, at a time given: when it happened, not when it is written.
fn record_at(conn: &mut DbConn, occurred_at: chrono::NaiveDateTime, event: AuditEvent<'_>) -> Result<(), StoreError> {
    audit::insert(
        conn,
        &AuditEventRow {
            id: public_id("evt"),
            occurred_at,
            actor: Some(event.actor.as_column()),
            credential: event.actor.credential_column(),
            action: event.action.to_string(),
            target: event.target.map(str::to_string),
            ip: event.ip.map(str::to_string),
            request_id: event.request_id.map(str::to_string),
            details: event.details.to_string(),
        },
    )
}

/// Addresses tracked in one minute, beyond which a new one is suppressed.
const FAILURE_AUDIT_MAX_TRACKED: usize = 10_000;

/// A failed authentication to record (the code or reason, never the
/// credential).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    pub action: &'static str,
    pub target: Option<String>,
    /// The per-IP subject (`sessions::ip_subject`), for the sample.
    pub subject: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub details: serde_json::Value,
    /// When it happened: set by `FailureSample::admit`, so rows written
    /// off the request path keep the order of the requests.
    pub occurred_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Which failed authentications get a row: at most `per_ip` a minute for
/// one client address (an IPv6 /64), and `per_minute` for all of them
/// together, per instance (`TESSERA_AUDIT_FAILURES_PER_IP`,
/// `TESSERA_AUDIT_FAILURES_PER_MINUTE`). A flood of bad credentials — many
/// addresses behind a trusted proxy, an IPv6 /48 — thus writes at most
/// `per_minute` rows a minute, however many it sends; the failures left
/// out are counted (`tessera_auth_failure_audits_suppressed_total`), and
/// the next row written says how many (`details.suppressed`). A fixed
/// window per minute of the injected clock, so it is tested without
/// waiting.
pub struct FailureSample {
    clock: crate::clock::SharedClock,
    per_ip: u32,
    per_minute: u32,
    window: std::sync::Mutex<FailureWindow>,
}

#[derive(Default)]
struct FailureWindow {
    minute: i64,
    written: u32,
    per_subject: std::collections::HashMap<String, u32>,
    /// Failures left out since the last row written.
    suppressed: u64,
}

impl FailureSample {
    pub fn new(clock: crate::clock::SharedClock, per_ip: u32, per_minute: u32) -> Self {
        Self { clock, per_ip, per_minute, window: Default::default() }
    }

    /// `failure`, to be written (with the count of those left out before
    /// it), or `None` when it is over the bounds (then counted).
    pub fn admit(&self, mut failure: AuthFailure) -> Option<AuthFailure> {
        let minute = self.clock.now().timestamp().div_euclid(60);
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if w.minute != minute {
            w.minute = minute;
            w.written = 0;
            w.per_subject.clear();
        }
        let subject = failure.subject.clone().unwrap_or_default();
        let tracked = w.per_subject.len() < FAILURE_AUDIT_MAX_TRACKED || w.per_subject.contains_key(&subject);
        let mine = w.per_subject.get(&subject).copied().unwrap_or(0);
        if w.written >= self.per_minute || !tracked || mine >= self.per_ip {
            w.suppressed += 1;
            metrics::counter!("tessera_auth_failure_audits_suppressed_total").increment(1);
            return None;
        }
        w.written += 1;
        w.per_subject.insert(subject, mine + 1);
        failure.occurred_at = Some(self.clock.now());
        let suppressed = std::mem::take(&mut w.suppressed);
        if suppressed > 0
            && let Some(details) = failure.details.as_object_mut()
        {
            details.insert("suppressed".into(), suppressed.into());
        }
        Some(failure)
    }
}

/// Writes a failed authentication that `FailureSample::admit` let through.
pub fn record_failure(conn: &mut DbConn, clock: &dyn Clock, failure: &AuthFailure) -> Result<(), StoreError> {
    let mut event = AuditEvent::new(Actor::System, failure.action, failure.target.as_deref());
    event.ip = failure.ip.as_deref();
    event.request_id = failure.request_id.as_deref();
    event.details = failure.details.clone();
    record_at(conn, failure.occurred_at.unwrap_or_else(|| clock.now()).naive_utc(), event)
}

/// An event as the audit API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    pub id: String,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub actor: Option<String>,
    /// The credential the actor used: `api_key:key_…`,
    /// `access_token:cl_…`, `client_jwt:cl_…` or `session:ses_…`.
    pub credential: Option<String>,
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
            credential: r.credential,
            action: r.action,
            target: r.target,
            ip: r.ip,
            request_id: r.request_id,
        }
    }
}

/// An event in words, for the dashboard's pages: people by name and email,
/// credentials and targets by their names, each beside its id.
#[derive(Debug, Clone)]
pub struct Described {
    pub event: Event,
    /// The person's name, `the CLI operator`, `the server`…
    pub actor: String,
    /// …and a person's email, shown apart from the name she chose (which
    /// may say anything printable, an email included).
    pub actor_email: Option<String>,
    /// `API key “Deploy” (key_…)`, `access token of app “Photo Printer”`,
    /// `dashboard session`: how the actor acted, when it is known.
    pub credential: Option<String>,
    /// What the target is called, when it names a person, an app or a key.
    pub target: Option<String>,
}

/// Names what `events` name, each id looked up once.
pub fn describe(conn: &mut DbConn, events: Vec<Event>) -> Result<Vec<Described>, StoreError> {
    // A person is named by her email here; the actor, by name and email.
    let mut people: std::collections::HashMap<String, Option<(String, String)>> = Default::default();
    let mut person = |conn: &mut DbConn, id: &str| -> Result<Option<(String, String)>, StoreError> {
        if let Some(found) = people.get(id) {
            return Ok(found.clone());
        }
        let found = crate::store::users::find_by_id(conn, id)?.map(|u| (u.display_name, u.email));
        people.insert(id.to_string(), found.clone());
        Ok(found)
    };
    let mut known: std::collections::HashMap<String, Option<String>> = Default::default();
    let mut name_of = |conn: &mut DbConn, id: &str| -> Result<Option<String>, StoreError> {
        if let Some(found) = known.get(id) {
            return Ok(found.clone());
        }
        let found = match id.split_once('_').map(|(prefix, _)| prefix) {
            Some("usr") => crate::store::users::find_by_id(conn, id)?.map(|u| u.email),
            Some("cl") => crate::store::clients::find(conn, id)?.map(|c| format!("app “{}”", c.name)),
            Some("key") => crate::store::api_keys::find(conn, id)?.map(|k| format!("API key “{}”", k.name)),
            Some("rs") => crate::store::resources::find(conn, id)?.map(|r| format!("resource server “{}”", r.name)),
            _ => None,
        };
        known.insert(id.to_string(), found.clone());
        Ok(found)
    };
    let mut described = Vec::with_capacity(events.len());
    for event in events {
        let (actor, actor_email) = match event.actor.as_deref() {
            Some("cli") => ("the CLI operator".to_string(), None),
            Some("system") | None => ("the server".to_string(), None),
            Some(id) => match person(conn, id)? {
                Some((name, email)) => (name, Some(email)),
                None => (id.to_string(), None),
            },
        };
        let credential = match event.credential.as_deref().and_then(|c| c.split_once(':')) {
            Some(("session", _)) => Some("dashboard session".to_string()),
            Some((kind, id)) => {
                let named = name_of(conn, id)?.unwrap_or_else(|| id.to_string());
                Some(match kind {
                    "api_key" => format!("{named} ({id})"),
                    "access_token" => format!("access token of {named}"),
                    "client_jwt" => format!("signed JWT of {named}"),
                    _ => format!("{kind} {id}"),
                })
            }
            None => None,
        };
        let target = match event.target.as_deref() {
            Some(id) => name_of(conn, id)?,
            None => None,
        };
        described.push(Described { event, actor, actor_email, credential, target });
    }
    Ok(described)
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
    Denied(#[from] crate::domain::principal::AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One page of the log, newest first (admins), of the events that match
/// `filter`. `starting_after` must name an event that matches it too, else
/// `PageError::UnknownCursor`.
pub fn recent(
    conn: &mut DbConn,
    principal: &crate::domain::principal::Principal,
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

/// `recent`, in words (`describe`): the dashboard's audit page.
pub fn recent_described(
    conn: &mut DbConn,
    principal: &crate::domain::principal::Principal,
    filter: &Filter,
    page: &Page,
) -> Result<PageOf<Described>, AuditReadError> {
    let found = recent(conn, principal, filter, page)?;
    Ok(PageOf { data: describe(conn, found.data)?, has_more: found.has_more })
}

/// The newest events about what `principal`'s user owns — their API keys,
/// their OAuth apps and their own account — at most `limit`, in words:
/// what the dashboard's overview shows anyone, admin or not.
pub fn about_own(
    conn: &mut DbConn,
    principal: &crate::domain::principal::Principal,
    limit: i64,
) -> Result<Vec<Described>, AuditReadError> {
    let owner = principal.user.id.as_str();
    let mut targets: Vec<String> = crate::store::api_keys::list(conn, Some(owner))?.into_iter().map(|k| k.id).collect();
    targets.extend(crate::store::clients::list_by_owner(conn, owner)?.into_iter().map(|c| c.id));
    targets.push(owner.to_string());
    let events = audit::recent_for_targets(conn, &targets, limit)?.into_iter().map(Event::from).collect();
    Ok(describe(conn, events)?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;

    fn failure(subject: &str) -> AuthFailure {
        AuthFailure {
            action: "client.auth_failed",
            target: None,
            subject: Some(subject.to_string()),
            ip: None,
            request_id: None,
            details: serde_json::json!({ "reason": "x" }),
            occurred_at: None,
        }
    }

    #[test]
    fn the_sample_is_bounded_per_address_and_in_all_and_counts_the_rest() {
        let clock = ManualClock::frozen();
        let sample = FailureSample::new(Arc::new(clock.clone()), 2, 5);
        let admitted = |subject: &str| sample.admit(failure(subject)).is_some();
        assert!(admitted("ip:a") && admitted("ip:a"));
        assert!(!admitted("ip:a"), "two per address");
        // The next row written says how many were left out before it.
        assert_eq!(sample.admit(failure("ip:b")).unwrap().details["suppressed"], 1);
        assert!(admitted("ip:c") && admitted("ip:d"));
        assert!(!admitted("ip:e") && !admitted("ip:f"), "five in all");
        // A new minute: a new budget, and the count of those left out.
        clock.advance(chrono::Duration::minutes(1));
        let next = sample.admit(failure("ip:a")).expect("a new window");
        assert_eq!(next.details["suppressed"], 2);
        assert_eq!(next.details["reason"], "x", "the rest of the details kept");
        assert!(sample.admit(failure("ip:a")).unwrap().details.get("suppressed").is_none(), "counted once");
    }

    #[test]
    fn a_zero_bound_audits_nothing() {
        let sample = FailureSample::new(Arc::new(ManualClock::frozen()), 0, 100);
        assert!(sample.admit(failure("ip:a")).is_none());
    }
}
