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
use crate::error::ApiError;
use crate::http::AppState;
use crate::page::Page;
use crate::principal::Principal;

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
/// read the audit log today (`audit::recent`, one read per target); for
/// anyone else `None`.
async fn events_about(
    state: &AppState,
    principal: &Principal,
    targets: Vec<String>,
) -> Result<Option<Vec<Event>>, AuditReadError> {
    if !principal.is_admin() {
        return Ok(None);
    }
    let principal = principal.clone();
    let mut events = state
        .db
        .run(move |conn| {
            let mut events = Vec::new();
            for target in targets.into_iter().take(EVENT_TARGETS) {
                let filter = Filter { target: Some(target), ..Filter::default() };
                events.extend(audit::recent(conn, &principal, &filter, &Page::first(EVENTS_SHOWN as u32))?.data);
            }
            Ok::<_, AuditReadError>(events)
        })
        .await?;
    events.sort_by_key(|e| std::cmp::Reverse(e.occurred_at));
    events.truncate(EVENTS_SHOWN);
    Ok(Some(events))
}

/// `GET /dashboard`.
pub async fn overview(state: web::Data<AppState>, signed: Signed) -> HttpResponse {
    let keys = match list_keys(&state, &signed.principal, Page::default()).await {
        Ok(k) => k.data,
        Err(e) => return store_failure(ApiError::from(e)),
    };
    let apps = match list_apps(&state, &signed.principal, Page::default()).await {
        Ok(a) => a.data,
        Err(e) => return store_failure(ApiError::from(e)),
    };
    let targets = keys.iter().map(|k| k.id.clone()).chain(apps.iter().map(|a| a.client_id.clone())).collect();
    let events = match events_about(&state, &signed.principal, targets).await {
        Ok(events) => events,
        Err(e) => return store_failure(ApiError::from(e)),
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
