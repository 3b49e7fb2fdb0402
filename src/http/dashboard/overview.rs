//! `GET /dashboard`: the person's keys and apps at a glance, with each
//! app's Client ID, and the recent audit events about them.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;

use super::api_keys::{KeyRow, list_keys, row};
use super::apps::{AppRow, app_row, list_apps};
use super::{Layout, Section, Signed, store_failure, when};
use crate::audit::{self, AuditReadError, Event, Filter};
use crate::http::AppState;
use crate::principal::Principal;
use crate::store::{DbConn, StoreError};

/// The most targets whose events the overview reads, and events it shows.
const EVENT_TARGETS: usize = 20;
const EVENTS_SHOWN: usize = 10;

pub struct EventRow {
    pub when: String,
    pub action: String,
    pub target: String,
    pub actor: String,
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct OverviewPage {
    layout: Layout,
    keys: Vec<KeyRow>,
    apps: Vec<AppRow>,
    /// `None`: the audit log is not readable by this person (members; see
    /// the report on `audit::about`).
    events: Option<Vec<EventRow>>,
}

/// Events whose target is one of `targets`, newest first. Only admins may
/// read the audit log today (`audit::recent`); for anyone else `None`.
fn events_about(
    conn: &mut DbConn,
    principal: &Principal,
    targets: &[String],
) -> Result<Option<Vec<Event>>, StoreError> {
    if !principal.is_admin() {
        return Ok(None);
    }
    let mut events = Vec::new();
    for target in targets.iter().take(EVENT_TARGETS) {
        let filter = Filter { target: Some(target.clone()), limit: Some(EVENTS_SHOWN as i64), ..Filter::default() };
        match audit::recent(conn, principal, &filter) {
            Ok(found) => events.extend(found),
            Err(AuditReadError::Store(e)) => return Err(e),
            Err(AuditReadError::Denied(_) | AuditReadError::BadLimit) => return Ok(None),
        }
    }
    events.sort_by_key(|e| std::cmp::Reverse(e.occurred_at));
    events.truncate(EVENTS_SHOWN);
    Ok(Some(events))
}

/// What the overview reads, in one trip to the pool.
#[derive(Debug, thiserror::Error)]
enum OverviewError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::apikeys::ApiKeyError> for OverviewError {
    fn from(e: crate::apikeys::ApiKeyError) -> Self {
        match e {
            crate::apikeys::ApiKeyError::Store(s) => Self::Store(s),
            other => Self::Store(StoreError::Internal(other.to_string())),
        }
    }
}

impl From<crate::oauth::clients::ClientError> for OverviewError {
    fn from(e: crate::oauth::clients::ClientError) -> Self {
        match e {
            crate::oauth::clients::ClientError::Store(s) => Self::Store(s),
            other => Self::Store(StoreError::Internal(other.to_string())),
        }
    }
}

/// `GET /dashboard`.
pub async fn overview(state: web::Data<AppState>, signed: Signed) -> HttpResponse {
    let principal = signed.principal.clone();
    let read = state
        .db
        .run(move |conn| -> Result<_, OverviewError> {
            let keys = list_keys(conn, &principal)?;
            let apps = list_apps(conn, &principal)?;
            let targets: Vec<String> =
                keys.iter().map(|k| k.id.clone()).chain(apps.iter().map(|a| a.client_id.clone())).collect();
            let events = events_about(conn, &principal, &targets)?;
            Ok((keys, apps, events))
        })
        .await;
    let (keys, apps, events) = match read {
        Ok(r) => r,
        Err(OverviewError::Store(e)) => return store_failure(&e),
    };
    let now = state.clock.now();
    let page = OverviewPage {
        layout: signed.layout(Section::Overview),
        keys: keys.iter().map(|k| row(k, now)).collect(),
        apps: apps.iter().map(app_row).collect(),
        events: events.map(|list| {
            list.iter()
                .map(|e| EventRow {
                    when: when(&e.occurred_at),
                    action: e.action.clone(),
                    target: e.target.clone().unwrap_or_default(),
                    actor: e.actor.clone().unwrap_or_else(|| "system".into()),
                })
                .collect()
        }),
    };
    crate::http::pages::render(StatusCode::OK, &page)
}
