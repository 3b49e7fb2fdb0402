//! `/dashboard/apps…`: a person's OAuth apps through the `clients::*_visible`
//! functions and `clients::register`, the ones `/v1/clients` calls, so the
//! redirect-URI and scope rules are the same.

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::api_keys::{ConfirmPage, FieldError, SecretPage, error_for, overlap_label};
use super::{FormFields, Layout, Section, Signed, forbidden, not_found, secret_page, see_other, store_failure, when};
use crate::domain::page::{Page, PageOf};
use crate::domain::principal::Principal;
use crate::http::AppState;
use crate::http::pages::{error_page, render};
use crate::oauth::clients::{self, Client, ClientChanges, ClientError, GrantType, NewClient};

/// One page of the person's apps: the one place the pages list clients.
pub(super) async fn list_apps(
    state: &AppState,
    principal: &Principal,
    page: Page,
) -> Result<PageOf<Client>, ClientError> {
    let principal = principal.clone();
    state.db.run(move |conn| clients::list_visible(conn, &principal, &page)).await
}

/// An app as a table row shows it.
pub struct AppRow {
    pub client_id: String,
    pub name: String,
    pub client_type: &'static str,
    pub redirect_uris: Vec<String>,
    pub scope: String,
    pub grant_types: String,
    pub auth_method: &'static str,
    /// `required` or `optional` (a confidential app with a backend).
    pub pkce: &'static str,
    /// Where OpenID Connect logout may send the person back to.
    pub post_logout_redirect_uris: Vec<String>,
    pub created: String,
    pub status: &'static str,
}

pub fn app_row(c: &Client) -> AppRow {
    AppRow {
        client_id: c.client_id.clone(),
        name: c.name.clone(),
        client_type: c.client_type,
        redirect_uris: c.redirect_uris.clone(),
        scope: c.scope.to_string(),
        grant_types: c.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(", "),
        auth_method: c.token_endpoint_auth_method.as_str(),
        pkce: if c.require_pkce { "required" } else { "optional" },
        post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
        created: when(&c.created_at),
        status: if c.disabled { "disabled" } else { "active" },
    }
}

/// The register form as typed (no secret in it).
pub struct AppForm {
    pub name: String,
    pub client_type: String,
    pub redirect_uris: String,
    pub scope: String,
    pub grant_types: Vec<String>,
    /// `required` or `optional`.
    pub pkce: String,
}

impl Default for AppForm {
    fn default() -> Self {
        Self {
            name: String::new(),
            client_type: "confidential".into(),
            redirect_uris: String::new(),
            scope: "read".into(),
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            pkce: "required".into(),
        }
    }
}

impl AppForm {
    pub fn has_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }
}

#[derive(Template)]
#[template(path = "dashboard/apps.html")]
struct AppsPage {
    layout: Layout,
    apps: Vec<AppRow>,
    /// The next page's address, when there is one.
    next: Option<String>,
    form: AppForm,
    errors: Vec<FieldError>,
    grants: Vec<&'static str>,
    self_service_scopes: String,
}

impl AppsPage {
    fn error(&self, field: &str) -> Option<&str> {
        error_for(&self.errors, field)
    }
}

fn client_error(e: ClientError) -> HttpResponse {
    match e {
        ClientError::UnknownClient => not_found(),
        ClientError::Page(e) => error_page(StatusCode::BAD_REQUEST, "Not accepted", &e.to_string()),
        ClientError::Forbidden(message) => forbidden(&message),
        ClientError::Denied(e) => forbidden(&e.to_string()),
        ClientError::NoSecret(method) => error_page(
            StatusCode::CONFLICT,
            "No secret to rotate",
            &format!("This app has no secret: it authenticates with {method}."),
        ),
        ClientError::Invalid { message, .. } | ClientError::InvalidRedirectUri { message, .. } => {
            error_page(StatusCode::BAD_REQUEST, "Not accepted", &message)
        }
        ClientError::UnknownOwner => error_page(StatusCode::BAD_REQUEST, "Not accepted", "No such owner."),
        ClientError::Store(e) => store_failure(e),
    }
}

/// The form's field for a field the service names (the API's names).
fn form_field(field: &'static str) -> &'static str {
    match field {
        "require_pkce" => "pkce",
        "audiences" => "scope",
        "token_endpoint_auth_method" => "client_type",
        on_the_form @ ("name" | "redirect_uris" | "post_logout_redirect_uris" | "scope" | "grant_types") => on_the_form,
        _ => "",
    }
}

/// A refusal about the form's content, as a message beside its field;
/// anything else stays an error for `client_error`.
fn refusal_beside_field(e: ClientError) -> Result<FieldError, ClientError> {
    match e {
        ClientError::Invalid { field, message } | ClientError::InvalidRedirectUri { field, message } => {
            Ok(FieldError::from_service(form_field(field), &message))
        }
        // What the caller may not give a client is about its scope and
        // audiences.
        ClientError::Forbidden(message) => Ok(FieldError::from_service("scope", &message)),
        other => Err(other),
    }
}

async fn apps_page_with(
    state: &web::Data<AppState>,
    signed: &Signed,
    page: Page,
    form: AppForm,
    errors: Vec<FieldError>,
    status: StatusCode,
) -> HttpResponse {
    match list_apps(state, &signed.principal, page).await {
        Ok(apps) => render(
            status,
            &AppsPage {
                layout: signed.layout(Section::Apps),
                apps: apps.data.iter().map(app_row).collect(),
                next: super::next_page(
                    "/dashboard/apps",
                    apps.has_more,
                    apps.data.last().map(|a| a.client_id.as_str()),
                ),
                form,
                errors,
                grants: GrantType::ALL.iter().map(|g| g.as_str()).collect(),
                self_service_scopes: clients::SELF_SERVICE_SCOPES.join(" "),
            },
        ),
        Err(e) => client_error(e),
    }
}

/// `GET /dashboard/apps`.
pub async fn apps_page(
    state: web::Data<AppState>,
    signed: Signed,
    query: web::Query<super::PageParams>,
) -> HttpResponse {
    let page = match query.into_inner().page() {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, "Not accepted", &e.to_string()),
    };
    apps_page_with(&state, &signed, page, AppForm::default(), Vec::new(), StatusCode::OK).await
}

/// `POST /dashboard/apps`: registers an app and shows its Client ID and
/// secret once.
pub async fn create_app(state: web::Data<AppState>, signed: Signed, req: HttpRequest, body: Bytes) -> HttpResponse {
    let form = match FormFields::checked(&signed, &req, &body) {
        Ok(f) => f,
        Err(refused) => return refused.page(),
    };
    let kept = AppForm {
        name: form.one("name").to_string(),
        client_type: form.one("client_type").to_string(),
        redirect_uris: form.one("redirect_uris").to_string(),
        scope: form.one("scope").to_string(),
        grant_types: form.all("grant_types"),
        pkce: form.one("pkce").to_string(),
    };
    let mut errors = Vec::new();
    let require_pkce = match pkce_choice(form.one("pkce")) {
        Ok(choice) => choice.unwrap_or(true),
        Err(error) => {
            errors.push(error);
            true
        }
    };
    let public = match form.one("client_type") {
        "confidential" => false,
        "public" => true,
        _ => {
            errors.push(FieldError { field: "client_type", message: "Choose confidential or public.".into() });
            false
        }
    };
    let mut grant_types = Vec::new();
    for g in form.all("grant_types") {
        match GrantType::parse(&g) {
            Some(g) => grant_types.push(g),
            None => errors.push(FieldError { field: "grant_types", message: format!("Unknown grant type {g}.") }),
        }
    }
    if !errors.is_empty() {
        return apps_page_with(&state, &signed, Page::default(), kept, errors, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let new = NewClient {
        name: form.one("name").to_string(),
        public,
        redirect_uris: form.lines("redirect_uris"),
        grant_types,
        scope: form.one("scope").trim().to_string(),
        require_pkce: Some(require_pkce),
        ..NewClient::default()
    };
    let (principal, clock, master) = (signed.principal.clone(), state.clock.clone(), state.master_key.clone());
    match state.db.run(move |conn| clients::register(conn, clock.as_ref(), &master, &principal, new)).await {
        Ok((client, secret)) => {
            let (intro, secret) = match secret {
                Some(s) => ("Save the Client ID and the secret now.".to_string(), s.expose().to_string()),
                None => ("A public app has no secret: it uses PKCE instead.".to_string(), String::new()),
            };
            secret_page(
                StatusCode::CREATED,
                &SecretPage {
                    layout: signed.layout(Section::Apps),
                    title: format!("App “{}” registered", client.name),
                    intro,
                    secret_label: "Client secret",
                    secret,
                    facts: vec![("Client ID", client.client_id.clone())],
                    next: format!("/dashboard/apps/{}", client.client_id),
                    next_label: "Done, go to the app’s settings",
                },
            )
        }
        Err(e) => match refusal_beside_field(e) {
            Ok(error) => {
                apps_page_with(&state, &signed, Page::default(), kept, vec![error], StatusCode::UNPROCESSABLE_ENTITY)
                    .await
            }
            Err(e) => client_error(e),
        },
    }
}

/// The PKCE choice of a form: `required`, `optional`, or not sent
/// (`None`: the default on register, unchanged on edit).
fn pkce_choice(value: &str) -> Result<Option<bool>, FieldError> {
    match value {
        "" => Ok(None),
        "required" => Ok(Some(true)),
        "optional" => Ok(Some(false)),
        _ => Err(FieldError { field: "pkce", message: "Choose required or optional.".into() }),
    }
}

/// The edit form as typed.
pub struct EditForm {
    pub name: String,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub scope: String,
    /// `required` or `optional`.
    pub pkce: String,
}

#[derive(Template)]
#[template(path = "dashboard/app.html")]
struct AppPage {
    layout: Layout,
    app: AppRow,
    uses_secret: bool,
    form: EditForm,
    errors: Vec<FieldError>,
    /// Whether the edit was just saved.
    saved: bool,
}

impl AppPage {
    fn error(&self, field: &str) -> Option<&str> {
        error_for(&self.errors, field)
    }
}

fn app_page_with(
    signed: &Signed,
    client: &Client,
    form: Option<EditForm>,
    errors: Vec<FieldError>,
    saved: bool,
) -> HttpResponse {
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    let form = form.unwrap_or_else(|| EditForm {
        name: client.name.clone(),
        redirect_uris: client.redirect_uris.join("\n"),
        post_logout_redirect_uris: client.post_logout_redirect_uris.join("\n"),
        scope: client.scope.to_string(),
        pkce: if client.require_pkce { "required" } else { "optional" }.to_string(),
    });
    render(
        status,
        &AppPage {
            layout: signed.layout(Section::Apps),
            app: app_row(client),
            uses_secret: client.token_endpoint_auth_method.uses_secret(),
            form,
            errors,
            saved,
        },
    )
}

async fn find_app(state: &AppState, signed: &Signed, id: String) -> Result<Client, ClientError> {
    let principal = signed.principal.clone();
    state.db.run(move |conn| clients::find_visible(conn, &principal, &id)).await
}

#[derive(serde::Deserialize)]
pub struct SavedQuery {
    saved: Option<String>,
}

/// `GET /dashboard/apps/{id}`.
pub async fn app_page(
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
    query: web::Query<SavedQuery>,
) -> HttpResponse {
    match find_app(&state, &signed, id.into_inner()).await {
        Ok(client) => app_page_with(&signed, &client, None, Vec::new(), query.saved.is_some()),
        Err(e) => client_error(e),
    }
}

/// `POST /dashboard/apps/{id}`: name, redirect URIs, scope and (for a
/// confidential app) the PKCE policy.
pub async fn update_app(
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
    req: HttpRequest,
    body: Bytes,
) -> HttpResponse {
    let form = match FormFields::checked(&signed, &req, &body) {
        Ok(f) => f,
        Err(refused) => return refused.page(),
    };
    let id = id.into_inner();
    let kept = EditForm {
        name: form.one("name").to_string(),
        redirect_uris: form.one("redirect_uris").to_string(),
        post_logout_redirect_uris: form.one("post_logout_redirect_uris").to_string(),
        scope: form.one("scope").to_string(),
        pkce: form.one("pkce").to_string(),
    };
    let require_pkce = match pkce_choice(form.one("pkce")) {
        Ok(choice) => choice,
        Err(error) => {
            return match find_app(&state, &signed, id).await {
                Ok(client) => app_page_with(&signed, &client, Some(kept), vec![error], false),
                Err(e) => client_error(e),
            };
        }
    };
    let changes = ClientChanges {
        name: Some(form.one("name").to_string()),
        redirect_uris: Some(form.lines("redirect_uris")),
        post_logout_redirect_uris: Some(form.lines("post_logout_redirect_uris")),
        scope: Some(form.one("scope").trim().to_string()),
        require_pkce,
        ..ClientChanges::default()
    };
    let (principal, clock, master, client_id) =
        (signed.principal.clone(), state.clock.clone(), state.master_key.clone(), id.clone());
    match state
        .db
        .run(move |conn| clients::update_visible(conn, clock.as_ref(), &master, &principal, &client_id, changes))
        .await
    {
        Ok(client) => see_other(&format!("/dashboard/apps/{}?saved=1", client.client_id)),
        Err(e) => match refusal_beside_field(e) {
            Ok(error) => match find_app(&state, &signed, id).await {
                Ok(client) => app_page_with(&signed, &client, Some(kept), vec![error], false),
                Err(e) => client_error(e),
            },
            Err(e) => client_error(e),
        },
    }
}

/// `POST /dashboard/apps/{id}/rotate-secret`: the new secret, once; the
/// old one keeps working for the chosen overlap.
pub async fn rotate_app_secret(
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
    req: HttpRequest,
    body: Bytes,
) -> HttpResponse {
    let form = match FormFields::checked(&signed, &req, &body) {
        Ok(f) => f,
        Err(refused) => return refused.page(),
    };
    let Some(overlap) = super::chosen_overlap(&form) else {
        return error_page(StatusCode::BAD_REQUEST, "Not accepted", "Choose when the old secret stops working.");
    };
    let (principal, clock, master, client_id) =
        (signed.principal.clone(), state.clock.clone(), state.master_key.clone(), id.into_inner());
    let shown_id = client_id.clone();
    let expire_old_in = std::time::Duration::from_secs(overlap);
    let outcome = state
        .db
        .run(move |conn| {
            clients::rotate_secret_visible(conn, clock.as_ref(), &master, &principal, &client_id, expire_old_in)
        })
        .await;
    match outcome {
        Ok(secret) => {
            let old = match overlap {
                0 => "The old secret stopped working now.".to_string(),
                s => format!("The old secret keeps working for {} more, then stops.", overlap_label(s)),
            };
            secret_page(
                StatusCode::OK,
                &SecretPage {
                    layout: signed.layout(Section::Apps),
                    title: "Client secret rotated".into(),
                    intro: format!("{old} Put the new secret in your app’s configuration."),
                    secret_label: "New client secret",
                    secret: secret.expose().to_string(),
                    facts: vec![("Client ID", shown_id.clone())],
                    next: format!("/dashboard/apps/{shown_id}"),
                    next_label: "Done, back to the app",
                },
            )
        }
        Err(e) => client_error(e),
    }
}

/// What a confirmation page asks about an app: its verb in the path, and
/// the words of the page.
struct Ending {
    verb: &'static str,
    title: &'static str,
    warning: &'static str,
    button: &'static str,
}

const DISABLE: Ending = Ending {
    verb: "disable",
    title: "Disable “{}”?",
    warning: "The app can no longer sign people in or get tokens, and its API keys stop working.",
    button: "Disable this app",
};

const DELETE: Ending = Ending {
    verb: "delete",
    title: "Delete “{}” for good?",
    warning: "Its Client ID stops existing: every token it holds stops working, the people who let it in are forgotten, and the API keys bound to it are revoked. This cannot be undone.",
    button: "Delete this app",
};

/// The confirmation page for `ending` an app the person may see.
async fn confirm_ending(state: &AppState, signed: &Signed, id: String, ending: Ending) -> HttpResponse {
    match find_app(state, signed, id).await {
        Ok(client) => render(
            StatusCode::OK,
            &ConfirmPage {
                layout: signed.layout(Section::Apps),
                title: ending.title.replace("{}", &client.name),
                warning: ending.warning.into(),
                action: format!("/dashboard/apps/{}/{}", client.client_id, ending.verb),
                button: ending.button,
                back: format!("/dashboard/apps/{}", client.client_id),
            },
        ),
        Err(e) => client_error(e),
    }
}

/// `GET /dashboard/apps/{id}/disable`: the confirmation.
pub async fn disable_app_page(state: web::Data<AppState>, signed: Signed, id: web::Path<String>) -> HttpResponse {
    confirm_ending(&state, &signed, id.into_inner(), DISABLE).await
}

/// `POST /dashboard/apps/{id}/disable`.
pub async fn disable_app(
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
    req: HttpRequest,
    body: Bytes,
) -> HttpResponse {
    if let Err(refused) = FormFields::checked(&signed, &req, &body) {
        return refused.page();
    }
    let (principal, clock, client_id) = (signed.principal.clone(), state.clock.clone(), id.into_inner());
    let back = format!("/dashboard/apps/{client_id}");
    match state.db.run(move |conn| clients::disable_visible(conn, clock.as_ref(), &principal, &client_id)).await {
        Ok(()) => see_other(&back),
        Err(e) => client_error(e),
    }
}

/// `GET /dashboard/apps/{id}/delete`: the confirmation.
pub async fn delete_app_page(state: web::Data<AppState>, signed: Signed, id: web::Path<String>) -> HttpResponse {
    confirm_ending(&state, &signed, id.into_inner(), DELETE).await
}

/// `POST /dashboard/apps/{id}/delete`.
pub async fn delete_app(
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
    req: HttpRequest,
    body: Bytes,
) -> HttpResponse {
    if let Err(refused) = FormFields::checked(&signed, &req, &body) {
        return refused.page();
    }
    let (principal, clock, client_id) = (signed.principal.clone(), state.clock.clone(), id.into_inner());
    match state.db.run(move |conn| clients::delete_visible(conn, clock.as_ref(), &principal, &client_id)).await {
        Ok(()) => see_other("/dashboard/apps"),
        Err(e) => client_error(e),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::pkce_choice;

    proptest! {
        /// Only the two words (or nothing) parse; anything else is a
        /// refusal beside the field, never a panic.
        #[test]
        fn only_required_or_optional_parse(value in "\\PC{0,24}|required|optional|") {
            let parsed = pkce_choice(&value).map_err(|e| e.field);
            let expected = match value.as_str() {
                "" => Ok(None),
                "required" => Ok(Some(true)),
                "optional" => Ok(Some(false)),
                _ => Err("pkce"),
            };
            prop_assert_eq!(parsed, expected);
        }
    }
}
