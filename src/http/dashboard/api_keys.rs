//! `/dashboard/api-keys…`: list, create, settings, rotate and revoke a
//! person's API keys through `apikeys::*_as`, the functions `/v1` calls.

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::next_page;
use super::{
    FormFields, Layout, Section, Signed, forbidden, not_found, secret_page, see_other, store_failure, when, when_or,
};
use crate::apikeys::{self, ApiKey, ApiKeyError, KeyType, Mode, NewKey, Rotation};
use crate::domain::page::{Page, PageOf};
use crate::domain::permissions::Permissions;
use crate::domain::principal::Principal;
use crate::http::AppState;
use crate::http::pages::{error_page, render};

/// One page of the person's keys: the one place the pages list keys.
pub(super) async fn list_keys(
    state: &AppState,
    principal: &Principal,
    page: Page,
) -> Result<PageOf<ApiKey>, ApiKeyError> {
    let principal = principal.clone();
    state.db.run(move |conn| apikeys::list_as(conn, &principal, None, &page)).await
}

/// A key as a table row shows it.
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub display: String,
    pub mode: &'static str,
    pub key_type: &'static str,
    pub permissions: String,
    pub restrictions: String,
    pub created: String,
    pub last_used: String,
    pub expires: String,
    pub status: &'static str,
}

/// `active`, `expired` or `revoked`.
pub fn status_of(key: &ApiKey, now: chrono::DateTime<chrono::Utc>) -> &'static str {
    if key.revoked_at.is_some_and(|r| r <= now) {
        "revoked"
    } else if key.is_expired(now) {
        "expired"
    } else {
        // Including a key whose revocation a rotation scheduled: it works
        // until then (shown as its expiry).
        "active"
    }
}

fn permissions_text(p: Permissions) -> String {
    if p.is_empty() { "none".into() } else { p.names().join(", ") }
}

/// "2 IPs, 1 endpoint" or "none".
fn restrictions_summary(key: &ApiKey) -> String {
    let r = &key.restrictions;
    let mut parts = Vec::new();
    let mut add = |n: usize, one: &str, many: &str| {
        if n > 0 {
            parts.push(format!("{n} {}", if n == 1 { one } else { many }));
        }
    };
    add(r.ips.len(), "IP rule", "IP rules");
    add(r.referrers.len(), "referrer", "referrers");
    add(r.endpoints.len(), "endpoint", "endpoints");
    if parts.is_empty() { "none".into() } else { parts.join(", ") }
}

pub fn row(key: &ApiKey, now: chrono::DateTime<chrono::Utc>) -> KeyRow {
    KeyRow {
        id: key.id.clone(),
        name: key.name.clone(),
        display: key.display(),
        mode: key.mode.as_str(),
        key_type: key.key_type.as_str(),
        permissions: permissions_text(key.permissions),
        restrictions: restrictions_summary(key),
        created: when(&key.created_at),
        last_used: when_or(key.last_used.as_ref(), "never"),
        expires: when_or(key.expires_at.as_ref().or(key.revoked_at.as_ref().filter(|r| **r > now)), "never"),
        status: status_of(key, now),
    }
}

/// What the person typed into the create form, kept on an error (there
/// is no secret in it).
#[derive(Default)]
pub struct KeyForm {
    pub name: String,
    pub key_type: String,
    pub permissions: Vec<String>,
    pub allowed_ips: String,
    pub allowed_referrers: String,
    pub allowed_endpoints: String,
    pub expires_in_days: String,
}

impl KeyForm {
    pub fn checked(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }
}

/// A message beside a field (`field` is the input's name; "" for the form).
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    /// A service's message beside `field`, as a sentence ("The name …."):
    /// services write lower-case clauses meant for JSON.
    pub fn from_service(field: &'static str, message: &str) -> Self {
        let mut chars = message.trim().chars();
        let mut text: String = chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default();
        if !text.ends_with(['.', '!', '?']) {
            text.push('.');
        }
        Self { field, message: text }
    }
}

pub fn error_for<'a>(errors: &'a [FieldError], field: &str) -> Option<&'a str> {
    errors.iter().find(|e| e.field == field).map(|e| e.message.as_str())
}

#[derive(Template)]
#[template(path = "dashboard/api_keys.html")]
struct KeysPage {
    layout: Layout,
    keys: Vec<KeyRow>,
    /// The next page's address, when there is one.
    next: Option<String>,
    form: KeyForm,
    errors: Vec<FieldError>,
    /// The one mode this server's environment accepts.
    mode: &'static str,
    /// The permissions this person may put on a key.
    grantable: Vec<&'static str>,
}

impl KeysPage {
    fn error(&self, field: &str) -> Option<&str> {
        error_for(&self.errors, field)
    }
}

fn keys_page_with(
    state: &AppState,
    signed: &Signed,
    keys: &PageOf<ApiKey>,
    form: KeyForm,
    errors: Vec<FieldError>,
    status: StatusCode,
) -> HttpResponse {
    let now = state.clock.now();
    let page = KeysPage {
        layout: signed.layout(Section::ApiKeys),
        keys: keys.data.iter().map(|k| row(k, now)).collect(),
        next: next_page("/dashboard/api-keys", keys.has_more, keys.data.last().map(|k| k.id.as_str())),
        form,
        errors,
        mode: Mode::of(state.config.environment).as_str(),
        grantable: Permissions::of_user(&signed.principal.user).names(),
    };
    render(status, &page)
}

/// `GET /dashboard/api-keys`.
pub async fn keys_page(
    state: web::Data<AppState>,
    signed: Signed,
    query: web::Query<super::PageParams>,
) -> HttpResponse {
    let page = match query.into_inner().page() {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, "Not accepted", &e.to_string()),
    };
    match list_keys(&state, &signed.principal, page).await {
        Ok(keys) => keys_page_with(&state, &signed, &keys, KeyForm::default(), Vec::new(), StatusCode::OK),
        Err(e) => key_error(e),
    }
}

/// The page for a service refusal that is not about a form field.
fn key_error(e: ApiKeyError) -> HttpResponse {
    match e {
        ApiKeyError::Unknown => not_found(),
        ApiKeyError::Page(e) => error_page(StatusCode::BAD_REQUEST, "Not accepted", &e.to_string()),
        ApiKeyError::Revoked => error_page(StatusCode::CONFLICT, "Already revoked", "This key is already revoked."),
        ApiKeyError::Expired => error_page(StatusCode::CONFLICT, "Expired", "This key has expired."),
        ApiKeyError::Forbidden { message, .. } => forbidden(&message),
        e @ ApiKeyError::InvalidClientSecret => forbidden(&e.to_string()),
        ApiKeyError::Invalid { message, .. } => error_page(StatusCode::BAD_REQUEST, "Not accepted", &message),
        ApiKeyError::Store(e) => store_failure(e),
    }
}

/// The form's field for a field the service names (the API's names; the
/// form asks for days where the API takes seconds).
fn form_field(field: &'static str) -> &'static str {
    match field {
        "expires_in" => "expires_in_days",
        on_the_form @ ("name" | "permissions" | "allowed_ips" | "allowed_referrers" | "allowed_endpoints") => {
            on_the_form
        }
        // Not on the form (an owner, a client binding): above it.
        _ => "",
    }
}

/// Parses the create form at the edge; what the form itself can tell is
/// wrong is a field error, the rest is the service's to judge.
fn parse_new_key(
    state: &AppState,
    principal: &Principal,
    form: &FormFields,
) -> (KeyForm, Result<NewKey, Vec<FieldError>>) {
    let kept = KeyForm {
        name: form.one("name").to_string(),
        key_type: form.one("type").to_string(),
        permissions: form.all("permissions"),
        allowed_ips: form.one("allowed_ips").to_string(),
        allowed_referrers: form.one("allowed_referrers").to_string(),
        allowed_endpoints: form.one("allowed_endpoints").to_string(),
        expires_in_days: form.one("expires_in_days").to_string(),
    };
    let mut errors = Vec::new();
    let mode = Mode::of(state.config.environment);
    if form.one("mode") != mode.as_str() {
        errors.push(FieldError { field: "mode", message: format!("This server accepts {} keys only.", mode.as_str()) });
    }
    let key_type = match form.one("type") {
        "secret" | "" => KeyType::Secret,
        "restricted" => KeyType::Restricted,
        _ => {
            errors.push(FieldError { field: "type", message: "Choose secret or restricted.".into() });
            KeyType::Secret
        }
    };
    let days = form.one("expires_in_days").trim();
    let expires_in = if days.is_empty() {
        None
    } else {
        match days.parse::<u64>() {
            Ok(d) if (1..=3650).contains(&d) => Some(d * 24 * 3600),
            _ => {
                errors.push(FieldError {
                    field: "expires_in_days",
                    message: "Enter a whole number of days from 1 to 3650, or leave it empty.".into(),
                });
                None
            }
        }
    };
    if !errors.is_empty() {
        return (kept, Err(errors));
    }
    let new = NewKey {
        owner_id: principal.user.id.clone(),
        client_id: None,
        name: form.one("name").to_string(),
        key_type,
        mode,
        permissions: form.all("permissions"),
        allowed_ips: form.lines("allowed_ips"),
        allowed_referrers: form.lines("allowed_referrers"),
        allowed_endpoints: form.lines("allowed_endpoints"),
        expires_in,
        rate_limit: None,
    };
    (kept, Ok(new))
}

/// One secret, shown once.
#[derive(Template)]
#[template(path = "dashboard/secret.html")]
pub struct SecretPage {
    pub layout: Layout,
    pub title: String,
    pub intro: String,
    pub secret_label: &'static str,
    pub secret: String,
    /// Facts shown beside the secret (label, value), e.g. the Client ID.
    pub facts: Vec<(&'static str, String)>,
    pub next: String,
    pub next_label: &'static str,
}

/// `POST /dashboard/api-keys`: creates a key and shows it once.
pub async fn create_key(state: web::Data<AppState>, signed: Signed, req: HttpRequest, body: Bytes) -> HttpResponse {
    let form = match FormFields::checked(&signed, &req, &body) {
        Ok(f) => f,
        Err(refused) => return refused.page(),
    };
    let principal = signed.principal.clone();
    let (kept, parsed) = parse_new_key(&state, &principal, &form);
    let outcome = match parsed {
        Ok(new) => {
            let (clock, master) = (state.clock.clone(), state.master_key.clone());
            state.db.run(move |conn| apikeys::create_as(conn, clock.as_ref(), &master, &principal, new)).await
        }
        Err(errors) => return rerender(&state, &signed, kept, errors).await,
    };
    match outcome {
        Ok((key, raw)) => secret_page(
            StatusCode::CREATED,
            &SecretPage {
                layout: signed.layout(Section::ApiKeys),
                title: format!("API key “{}” created", key.name),
                intro: "Copy your key now and keep it somewhere safe.".into(),
                secret_label: "Your new API key",
                secret: raw.expose().to_string(),
                facts: vec![("Key ID", key.id.clone()), ("Shown later as", key.display())],
                next: format!("/dashboard/api-keys/{}", key.id),
                next_label: "Done, go to the key’s settings",
            },
        ),
        Err(ApiKeyError::Invalid { field, message }) => {
            let errors = vec![FieldError::from_service(form_field(field), &message)];
            rerender(&state, &signed, kept, errors).await
        }
        Err(ApiKeyError::Forbidden { message, .. }) => {
            rerender(&state, &signed, kept, vec![FieldError::from_service("permissions", &message)]).await
        }
        Err(e) => key_error(e),
    }
}

/// The list and form again, with the input kept and the messages beside
/// their fields (422).
async fn rerender(
    state: &web::Data<AppState>,
    signed: &Signed,
    kept: KeyForm,
    errors: Vec<FieldError>,
) -> HttpResponse {
    match list_keys(state, &signed.principal, Page::default()).await {
        Ok(keys) => keys_page_with(state, signed, &keys, kept, errors, StatusCode::UNPROCESSABLE_ENTITY),
        Err(e) => key_error(e),
    }
}

#[derive(Template)]
#[template(path = "dashboard/api_key.html")]
struct KeyPage {
    layout: Layout,
    key: KeyRow,
    ips: Vec<String>,
    referrers: Vec<String>,
    endpoints: Vec<String>,
    rotated_from: Option<String>,
    /// Whether rotate and revoke are offered (not for a revoked or expired
    /// key).
    live: bool,
    /// Requests per day as an inline SVG (`charts::daily_bars`: numbers and
    /// dates only, nothing a person typed).
    chart: String,
    /// Totals over the chart's days: allowed, refused, rate-limited.
    totals: (u64, u64, u64),
    uses: Vec<UseRow>,
}

/// One use of the key, as its table row shows it.
pub struct UseRow {
    pub at: String,
    pub ip: String,
    pub method: String,
    pub path: String,
    pub outcome: &'static str,
}

async fn find_key(state: &AppState, signed: &Signed, id: String) -> Result<ApiKey, ApiKeyError> {
    let principal = signed.principal.clone();
    state.db.run(move |conn| apikeys::find_as(conn, &principal, &id)).await
}

/// `GET /dashboard/api-keys/{id}`.
pub async fn key_page(state: web::Data<AppState>, signed: Signed, id: web::Path<String>) -> HttpResponse {
    let (clock, principal, id) = (state.clock.clone(), signed.principal.clone(), id.into_inner());
    let (key, usage) =
        match state.db.run(move |conn| apikeys::find_with_usage(conn, clock.as_ref(), &principal, &id)).await {
            Ok(found) => found,
            Err(e) => return key_error(e),
        };
    let totals = usage.days.iter().fold((0, 0, 0), |(a, r, l), d| (a + d.allowed, r + d.refused, l + d.rate_limited));
    let uses = usage
        .recent
        .iter()
        .map(|u| UseRow {
            at: u.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            ip: u.ip.clone().unwrap_or_else(|| "—".into()),
            method: u.method.clone(),
            path: u.path.clone(),
            outcome: match u.outcome {
                crate::apikeys::usage::Outcome::Allowed => "allowed",
                crate::apikeys::usage::Outcome::Refused => "refused",
                crate::apikeys::usage::Outcome::RateLimited => "rate-limited",
            },
        })
        .collect();
    let now = state.clock.now();
    let row = row(&key, now);
    let page = KeyPage {
        layout: signed.layout(Section::ApiKeys),
        live: row.status == "active",
        key: row,
        ips: key.restrictions.ips.clone(),
        referrers: key.restrictions.referrers.clone(),
        endpoints: key.restrictions.endpoints.iter().map(|e| format!("{} {}", e.method, e.path)).collect(),
        rotated_from: key.rotated_from.clone(),
        chart: crate::charts::daily_bars(&usage.days),
        totals,
        uses,
    };
    render(StatusCode::OK, &page)
}

/// `POST /dashboard/api-keys/{id}/rotate`: shows the successor once.
pub async fn rotate_key(
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
    let Some(expire_old_in) = super::chosen_overlap(&form) else {
        return error_page(StatusCode::BAD_REQUEST, "Not accepted", "Choose when the old key stops working.");
    };
    let (principal, clock, master, id) =
        (signed.principal.clone(), state.clock.clone(), state.master_key.clone(), id.into_inner());
    let rotation = Rotation { expire_old_in, expires_in: None };
    let outcome =
        state.db.run(move |conn| apikeys::rotate_as(conn, clock.as_ref(), &master, &principal, &id, rotation)).await;
    match outcome {
        Ok((key, raw)) => {
            let old = match expire_old_in {
                0 => "The old key stopped working now.".to_string(),
                s => format!("The old key keeps working for {} more, then stops.", overlap_label(s)),
            };
            secret_page(
                StatusCode::OK,
                &SecretPage {
                    layout: signed.layout(Section::ApiKeys),
                    title: format!("API key “{}” rotated", key.name),
                    intro: format!("{old} Replace it with this key everywhere it is used."),
                    secret_label: "Your new API key",
                    secret: raw.expose().to_string(),
                    facts: vec![("Key ID", key.id.clone()), ("Shown later as", key.display())],
                    next: format!("/dashboard/api-keys/{}", key.id),
                    next_label: "Done, go to the new key’s settings",
                },
            )
        }
        Err(e) => key_error(e),
    }
}

pub fn overlap_label(secs: u64) -> &'static str {
    match secs {
        0 => "no time",
        3600 => "1 hour",
        86400 => "24 hours",
        _ => "7 days",
    }
}

#[derive(Template)]
#[template(path = "dashboard/confirm.html")]
pub struct ConfirmPage {
    pub layout: Layout,
    pub title: String,
    pub warning: String,
    pub action: String,
    pub button: &'static str,
    pub back: String,
}

/// `GET /dashboard/api-keys/{id}/revoke`: the confirmation.
pub async fn revoke_key_page(state: web::Data<AppState>, signed: Signed, id: web::Path<String>) -> HttpResponse {
    let key = match find_key(&state, &signed, id.into_inner()).await {
        Ok(k) => k,
        Err(e) => return key_error(e),
    };
    render(
        StatusCode::OK,
        &ConfirmPage {
            layout: signed.layout(Section::ApiKeys),
            title: format!("Revoke “{}”?", key.name),
            warning: format!(
                "The key {} stops working at once, everywhere it is used. This cannot be undone.",
                key.display()
            ),
            action: format!("/dashboard/api-keys/{}/revoke", key.id),
            button: "Revoke this key",
            back: format!("/dashboard/api-keys/{}", key.id),
        },
    )
}

/// `POST /dashboard/api-keys/{id}/revoke`.
pub async fn revoke_key(
    state: web::Data<AppState>,
    signed: Signed,
    id: web::Path<String>,
    req: HttpRequest,
    body: Bytes,
) -> HttpResponse {
    if let Err(refused) = FormFields::checked(&signed, &req, &body) {
        return refused.page();
    }
    let (principal, clock, id) = (signed.principal.clone(), state.clock.clone(), id.into_inner());
    match state.db.run(move |conn| apikeys::revoke_as(conn, clock.as_ref(), &principal, &id)).await {
        Ok(key) => see_other(&format!("/dashboard/api-keys/{}", key.id)),
        Err(e) => key_error(e),
    }
}
