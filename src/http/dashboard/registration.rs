//! `/dashboard/admin/registration`: initial access tokens for dynamic
//! client registration — make one (shown once), list, revoke — as the CLI's
//! `tessera registration token …` does, through `crate::admin`.

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::admin::admin_error;
use super::api_keys::{FieldError, SecretPage, error_for};
use super::{FormFields, Layout, Section, Signed, secret_page, see_other, when, when_or};
use crate::admin::{self, AdminError};
use crate::http::AppState;
use crate::http::pages::render;
use crate::oauth::registration::{InitialTokenError, REGISTER_PATH};

pub struct TokenRow {
    pub id: String,
    pub state: &'static str,
    pub uses: String,
    pub created: String,
    pub expires: String,
    pub live: bool,
}

#[derive(Default)]
pub struct TokenForm {
    pub expires_in: String,
    pub max_uses: String,
}

#[derive(Template)]
#[template(path = "dashboard/admin_registration.html")]
struct RegistrationPage {
    layout: Layout,
    policy: &'static str,
    endpoint: String,
    scopes: String,
    tokens: Vec<TokenRow>,
    form: TokenForm,
    errors: Vec<FieldError>,
    revoked: Option<String>,
}

impl RegistrationPage {
    fn error(&self, field: &str) -> Option<&str> {
        error_for(&self.errors, field)
    }
}

async fn page_with(
    state: &AppState,
    signed: &Signed,
    form: TokenForm,
    errors: Vec<FieldError>,
    revoked: Option<String>,
    status: StatusCode,
) -> HttpResponse {
    let principal = signed.principal.clone();
    let list = match state.db.run(move |conn| admin::list_initial_tokens(conn, &principal)).await {
        Ok(l) => l,
        Err(e) => return admin_error(e),
    };
    let now = state.clock.now();
    let tokens = list
        .into_iter()
        .map(|t| TokenRow {
            state: t.state(now),
            live: t.is_usable(now),
            uses: t.max_uses.map_or(t.uses.to_string(), |m| format!("{} of {m}", t.uses)),
            created: when(&t.created_at),
            expires: when_or(t.expires_at.as_ref(), "never"),
            id: t.id,
        })
        .collect();
    let policy = &state.oauth.registration;
    render(
        status,
        &RegistrationPage {
            layout: signed.layout(Section::Admin),
            policy: policy.mode.as_str(),
            endpoint: state.oauth.url(REGISTER_PATH),
            scopes: policy.scopes.to_string(),
            tokens,
            form,
            errors,
            revoked,
        },
    )
}

#[derive(serde::Deserialize)]
pub struct RevokedQuery {
    revoked: Option<String>,
}

/// `GET /dashboard/admin/registration`.
pub async fn registration_page(
    state: web::Data<AppState>,
    signed: Signed,
    query: web::Query<RevokedQuery>,
) -> HttpResponse {
    let revoked = query.into_inner().revoked.filter(|id| id.starts_with("iat_") && id.len() < 40);
    page_with(&state, &signed, TokenForm::default(), Vec::new(), revoked, StatusCode::OK).await
}

/// A whole number in a form field, or the field's error.
fn optional_number<T: std::str::FromStr>(text: &str, field: &'static str, what: &str) -> Result<Option<T>, FieldError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| FieldError { field, message: format!("{what} must be a whole number.") })
}

/// `POST /dashboard/admin/registration`: makes a token and shows it once.
pub async fn create_initial_token(
    state: web::Data<AppState>,
    signed: Signed,
    req: HttpRequest,
    body: Bytes,
) -> HttpResponse {
    let form = match FormFields::checked(&signed, &req, &body) {
        Ok(f) => f,
        Err(refused) => return refused.page(),
    };
    let kept = TokenForm { expires_in: form.one("expires_in").to_string(), max_uses: form.one("max_uses").to_string() };
    let parsed = optional_number::<u64>(&kept.expires_in, "expires_in", "Expires in")
        .and_then(|e| optional_number::<i64>(&kept.max_uses, "max_uses", "Uses").map(|m| (e, m)));
    let (expires_in, max_uses) = match parsed {
        Ok(p) => p,
        Err(error) => return page_with(&state, &signed, kept, vec![error], None, StatusCode::BAD_REQUEST).await,
    };
    let (clock, principal) = (state.clock.clone(), signed.principal.clone());
    let created = state
        .db
        .run(move |conn| admin::create_initial_token(conn, clock.as_ref(), &principal, expires_in, max_uses))
        .await;
    match created {
        Ok((info, token)) => secret_page(
            StatusCode::CREATED,
            &SecretPage {
                layout: signed.layout(Section::Admin),
                title: "Initial access token made".into(),
                intro: format!(
                    "Give it to whoever should register a client: they send it as `Authorization: Bearer` to {}.",
                    state.oauth.url(REGISTER_PATH)
                ),
                secret_label: "Initial access token",
                secret: token.expose().to_string(),
                facts: vec![("ID", info.id)],
                next: "/dashboard/admin/registration".into(),
                next_label: "Back to registration",
            },
        ),
        Err(AdminError::Registration(InitialTokenError::Invalid(message))) => {
            let field = if message.contains("uses") { "max_uses" } else { "expires_in" };
            let errors = vec![FieldError { field, message }];
            page_with(&state, &signed, kept, errors, None, StatusCode::BAD_REQUEST).await
        }
        Err(e) => admin_error(e),
    }
}

/// `POST /dashboard/admin/registration/{id}/revoke`: at once.
pub async fn revoke_initial_token(
    state: web::Data<AppState>,
    signed: Signed,
    req: HttpRequest,
    id: web::Path<String>,
    body: Bytes,
) -> HttpResponse {
    if let Err(refused) = FormFields::checked(&signed, &req, &body) {
        return refused.page();
    }
    let (clock, principal, id) = (state.clock.clone(), signed.principal.clone(), id.into_inner());
    let target = id.clone();
    match state.db.run(move |conn| admin::revoke_initial_token(conn, clock.as_ref(), &principal, &target)).await {
        Ok(()) => see_other(&format!("/dashboard/admin/registration?revoked={id}")),
        Err(e) => admin_error(e),
    }
}
