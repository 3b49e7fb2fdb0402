//! `/dashboard/connected-apps`: the apps this person has let in, and the
//! button that takes it back (`oauth::connected_apps`): the consent is
//! forgotten and the app's token families for this person are revoked.

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::{FormFields, Layout, Section, Signed, forbidden, not_found, see_other, store_failure, when, when_or};
use crate::http::AppState;
use crate::http::pages::render;
use crate::oauth::connected_apps::{self, ConnectedApp, ConnectedAppError};

/// A connected app as its row shows it.
pub struct ConnectedRow {
    pub client_id: String,
    pub name: String,
    pub owner: String,
    pub audience: String,
    pub scopes: String,
    pub granted: String,
    pub last_used: String,
}

fn row(a: &ConnectedApp) -> ConnectedRow {
    ConnectedRow {
        client_id: a.client_id.clone(),
        name: a.name.clone(),
        owner: a.owner.clone().unwrap_or_else(|| "the operator".into()),
        audience: if a.audience.is_empty() { "this server's API".into() } else { a.audience.clone() },
        scopes: a.scopes.join(" "),
        granted: when(&a.granted_at),
        last_used: when_or(a.last_used.as_ref(), "never"),
    }
}

#[derive(Template)]
#[template(path = "dashboard/connected_apps.html")]
struct ConnectedPage {
    layout: Layout,
    apps: Vec<ConnectedRow>,
    /// The name of the app just revoked, for the notice.
    revoked: Option<String>,
}

#[derive(serde::Deserialize)]
pub struct Notice {
    revoked: Option<String>,
}

/// `GET /dashboard/connected-apps`.
pub async fn connected_apps_page(
    state: web::Data<AppState>,
    signed: Signed,
    notice: web::Query<Notice>,
) -> HttpResponse {
    let user = signed.principal.user.id.clone();
    match state.db.run(move |conn| connected_apps::list(conn, &user)).await {
        Ok(apps) => render(
            StatusCode::OK,
            &ConnectedPage {
                layout: signed.layout(Section::ConnectedApps),
                apps: apps.iter().map(row).collect(),
                revoked: notice.into_inner().revoked.map(|r| r.chars().take(100).collect()),
            },
        ),
        Err(ConnectedAppError::NotConnected) => not_found(),
        Err(ConnectedAppError::Store(e)) => store_failure(e),
    }
}

/// `POST /dashboard/connected-apps/{client_id}/revoke`.
pub async fn revoke_connected_app(
    state: web::Data<AppState>,
    signed: Signed,
    req: HttpRequest,
    client_id: web::Path<String>,
    body: Bytes,
) -> HttpResponse {
    if let Err(refused) = FormFields::checked(&signed, &req, &body) {
        return refused.page();
    }
    let actor = match signed.principal.first_party("revoke an app's access") {
        Ok(principal) => principal.actor(),
        Err(e) => return forbidden(&e.to_string()),
    };
    let (clock, user, client_id) = (state.clock.clone(), signed.principal.user.id.clone(), client_id.into_inner());
    let id = client_id.clone();
    match state.db.run(move |conn| connected_apps::revoke(conn, clock.as_ref(), &user, &id, actor)).await {
        Ok(_) => {
            let query = form_urlencoded::Serializer::new(String::new()).append_pair("revoked", &client_id).finish();
            see_other(&format!("/dashboard/connected-apps?{query}"))
        }
        Err(ConnectedAppError::NotConnected) => not_found(),
        Err(ConnectedAppError::Store(e)) => store_failure(e),
    }
}
