//! The dashboard: server-rendered pages where a signed-in person manages
//! their API keys and OAuth apps. The `Signed` extractor turns the session
//! cookie into a `Principal` (or a redirect to sign in); handlers parse the
//! form, call the same service function `/v1` calls, and render. No access
//! rule lives here: a page only chooses what to offer.

mod admin;
mod api_keys;
mod apps;
mod connected;
mod overview;
mod registration;

pub use admin::{
    audit_page, clients_page, create_resource, create_user, disable_user, disable_user_page, reset_password,
    resources_page, rotate_resource, rotate_signing_key, signing_keys_page, users_page,
};
pub use api_keys::{create_key, key_page, keys_page, revoke_key, revoke_key_page, rotate_key};
pub use apps::{
    app_page, apps_page, create_app, delete_app, delete_app_page, disable_app, disable_app_page, rotate_app_secret,
    update_app,
};
pub use connected::{connected_apps_page, revoke_connected_app};
pub use overview::overview;
pub use registration::{create_initial_token, registration_page, revoke_initial_token};

use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;

use super::AppState;
use super::pages::{error_page, render};
use crate::crypto::constant_time_eq;
use crate::crypto::csrf_token;
use crate::domain::principal::Principal;
use crate::http::error::ApiError;
use crate::uri::next::LocalPath;

/// The version the footer shows.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The purpose the dashboard's CSRF tokens are bound to, besides the
/// session: a dashboard token cannot sign a person out or approve consent.
const CSRF_PURPOSE: &str = "dashboard";

/// The signed-in person, for a dashboard handler.
pub struct Signed {
    pub principal: Principal,
    /// The token every dashboard form carries as `csrf_token`.
    pub csrf: String,
    /// The token of the sign-out form (its own purpose).
    pub logout_csrf: String,
}

/// Why a dashboard request does not reach its handler.
#[derive(Debug)]
pub enum NotSignedIn {
    /// To `/login?next=…`, back here afterwards.
    SignIn(String),
    /// The session store could not be read.
    Unavailable(String),
}

impl std::fmt::Display for NotSignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SignIn(_) => f.write_str("sign-in required"),
            Self::Unavailable(e) => write!(f, "sessions unavailable: {e}"),
        }
    }
}

impl ResponseError for NotSignedIn {
    fn error_response(&self) -> HttpResponse {
        match self {
            Self::SignIn(location) => {
                HttpResponse::Found().insert_header((header::LOCATION, location.as_str())).finish()
            }
            Self::Unavailable(e) => {
                crate::http::error::log_unavailable(e);
                error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Temporarily unavailable",
                    "The dashboard cannot reach its database. Please try again shortly.",
                )
            }
        }
    }
}

/// Where to sign in so that the person comes back to this page.
fn sign_in_location(req: &HttpRequest) -> String {
    let here = match req.uri().query() {
        Some(q) => format!("{}?{q}", req.path()),
        None => req.path().to_string(),
    };
    let next = LocalPath::parse_or_root(Some(&here));
    let query = form_urlencoded::Serializer::new(String::new()).append_pair("next", next.as_str()).finish();
    format!("/login?{query}")
}

impl FromRequest for Signed {
    type Error = NotSignedIn;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
                return Err(NotSignedIn::Unavailable("no application state".into()));
            };
            let sessions = super::browser::sessions(&state);
            match sessions.current(super::browser::session_cookie(&req)).await {
                Ok(Some(session)) => Ok(Signed {
                    csrf: csrf_token(&state.master_key, &session.id, CSRF_PURPOSE),
                    logout_csrf: sessions.logout_token(&session),
                    principal: Principal::for_session(session.user, session.id),
                }),
                Ok(None) => Err(NotSignedIn::SignIn(sign_in_location(&req))),
                Err(e) => Err(NotSignedIn::Unavailable(e.to_string())),
            }
        })
    }
}

/// Which part of the dashboard a page belongs to (the navigation marks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    ApiKeys,
    Apps,
    ConnectedApps,
    Admin,
}

/// What the shared layout shows: the person, sign-out, navigation.
pub struct Layout {
    pub email: String,
    pub name: String,
    pub is_admin: bool,
    pub logout_csrf: String,
    pub csrf: String,
    pub section: Section,
    pub version: &'static str,
}

impl Signed {
    pub fn layout(&self, section: Section) -> Layout {
        Layout {
            email: self.principal.user.email.clone(),
            name: self.principal.user.name.clone(),
            is_admin: self.principal.is_admin(),
            logout_csrf: self.logout_csrf.clone(),
            csrf: self.csrf.clone(),
            section,
            version: VERSION,
        }
    }

    /// Whether `token` is this session's dashboard token (constant time).
    fn csrf_ok(&self, token: &str) -> bool {
        constant_time_eq(self.csrf.as_bytes(), token.as_bytes())
    }
}

/// Why a posted form is not acted on.
#[derive(Debug, Clone, Copy)]
pub enum FormRefused {
    NotAForm,
    /// Missing or another session's `csrf_token`: 403, nothing changed.
    Csrf,
}

impl FormRefused {
    pub fn page(self) -> HttpResponse {
        match self {
            Self::NotAForm => error_page(StatusCode::BAD_REQUEST, "Bad request", "The request must be a form."),
            Self::Csrf => error_page(
                StatusCode::FORBIDDEN,
                "Form refused",
                "This form expired or came from another page. Nothing was changed; please go back, reload and try again.",
            ),
        }
    }
}

/// A posted dashboard form: its fields, in order, repeated names kept
/// (permission checkboxes, grant types). Built only once its CSRF token
/// matched the session.
pub struct FormFields(Vec<(String, String)>);

impl FormFields {
    /// The form, or why it is refused: the body is not a form, or its
    /// `csrf_token` is missing or another session's.
    pub fn checked(signed: &Signed, req: &HttpRequest, body: &Bytes) -> Result<Self, FormRefused> {
        if !super::is_form(req) {
            return Err(FormRefused::NotAForm);
        }
        let form = Self(form_urlencoded::parse(body).into_owned().collect());
        if !signed.csrf_ok(form.one("csrf_token")) {
            return Err(FormRefused::Csrf);
        }
        Ok(form)
    }

    /// The first value of `name`, or "".
    pub fn one(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }

    /// The non-empty lines of a textarea, trimmed.
    pub fn lines(&self, name: &str) -> Vec<String> {
        self.one(name).lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
    }
}

/// A page that shows a secret: never stored by a browser or a proxy, even
/// if the global default changes.
pub fn secret_page(status: StatusCode, page: &impl Template) -> HttpResponse {
    let mut res = render(status, page);
    res.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    res
}

/// After a change: back to a page with GET (so a reload does not repost).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location)).finish()
}

pub fn not_found() -> HttpResponse {
    error_page(StatusCode::NOT_FOUND, "Not found", "There is nothing here, or it is not yours to see.")
}

pub fn forbidden(message: &str) -> HttpResponse {
    error_page(StatusCode::FORBIDDEN, "Not allowed", message)
}

/// A storage failure: logged in full by `ApiError`'s conversion (the one
/// place that decides), shown as a plain apology with its status.
pub fn store_failure(e: impl Into<ApiError>) -> HttpResponse {
    let e: ApiError = e.into();
    let message = if e.kind.status() == StatusCode::SERVICE_UNAVAILABLE {
        "The database cannot be reached. Please try again shortly."
    } else {
        "Something went wrong on our side. Nothing more is known here."
    };
    error_page(e.kind.status(), "Something went wrong", message)
}

/// The overlaps a rotate form offers (now, 1 hour, 24 hours, 7 days), in
/// seconds, for keys and app secrets alike.
pub const OVERLAPS: [u64; 4] = [0, 3600, 24 * 3600, 7 * 24 * 3600];

/// The overlap a rotate form chose, if it is one the form offers.
pub fn chosen_overlap(form: &FormFields) -> Option<u64> {
    form.one("expire_old_in").parse::<u64>().ok().filter(|s| OVERLAPS.contains(s))
}

/// A list page's query: `limit` and `starting_after`, as on `/v1`; other
/// parameters (a bookmark's leftovers) are ignored on pages.
#[derive(Debug, Default, serde::Deserialize)]
pub struct PageParams {
    limit: Option<String>,
    starting_after: Option<String>,
}

impl PageParams {
    pub fn page(self) -> Result<crate::domain::page::Page, crate::domain::page::PageError> {
        crate::domain::page::Page::parse(self.limit.as_deref(), self.starting_after)
    }
}

/// The address of the page after one ending at `last`, when there is more:
/// lists are walked with `starting_after`, as on `/v1`.
pub fn next_page(path: &str, has_more: bool, last: Option<&str>) -> Option<String> {
    let last = last.filter(|_| has_more)?;
    let query = form_urlencoded::Serializer::new(String::new()).append_pair("starting_after", last).finish();
    Some(format!("{path}?{query}"))
}

/// A time as the pages show it: UTC, to the minute.
pub fn when(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// An optional time, or `never`/`—` as the caller says.
pub fn when_or(t: Option<&chrono::DateTime<chrono::Utc>>, none: &str) -> String {
    t.map(when).unwrap_or_else(|| none.to_string())
}
