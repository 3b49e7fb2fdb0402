//! `GET /dashboard`: the person's keys and apps at a glance, with each
//! app's Client ID, and the recent audit events about them.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;

use super::api_keys::{KeyRow, list_keys, row};
use super::apps::{AppRow, app_row, list_apps};
use super::{Layout, Section, Signed, store_failure, when};
use crate::audit::{self, AuditReadError, Described};
use crate::domain::page::Page;
use crate::domain::principal::Principal;
use crate::http::AppState;
use crate::http::error::ApiError;

/// The events the overview shows.
const EVENTS_SHOWN: usize = 10;

pub struct EventRow {
    pub when: String,
    pub action: String,
    /// What the target is called (when it is a person, app or key)…
    pub target: String,
    /// …and its id.
    pub target_id: String,
    /// Who (by name and email), and with which credential.
    pub actor: String,
    pub actor_email: String,
    pub credential: String,
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct OverviewPage {
    layout: Layout,
    keys: Vec<KeyRow>,
    apps: Vec<AppRow>,
    /// The newest events about the person's keys, apps and account.
    events: Vec<EventRow>,
}

/// The newest events about what the person owns (`audit::about_own`).
async fn events_about(state: &AppState, principal: &Principal) -> Result<Vec<Described>, AuditReadError> {
    let principal = principal.clone();
    state.db.run(move |conn| audit::about_own(conn, &principal, EVENTS_SHOWN as i64)).await
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
    let events = match events_about(&state, &signed.principal).await {
        Ok(events) => events,
        Err(e) => return store_failure(ApiError::from(e)),
    };
    let now = state.clock.now();
    let page = OverviewPage {
        layout: signed.layout(Section::Overview),
        keys: keys.iter().map(|k| row(k, now)).collect(),
        apps: apps.iter().map(app_row).collect(),
        events: events
            .iter()
            .map(|d| EventRow {
                when: when(&d.event.occurred_at),
                action: d.event.action.clone(),
                target: d.target.clone().unwrap_or_default(),
                target_id: d.event.target.clone().unwrap_or_default(),
                actor: d.actor.clone(),
                actor_email: d.actor_email.clone().unwrap_or_default(),
                credential: d.credential.clone().unwrap_or_default(),
            })
            .collect(),
    };
    crate::http::pages::render(StatusCode::OK, &page)
}
