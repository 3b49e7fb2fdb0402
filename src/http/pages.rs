//! HTML pages (askama, autoescaped), the stylesheet, and the answers for
//! unknown paths and methods.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;

use super::AppState;
use crate::http::error::{ApiError, ErrorKind, current_request_id};

/// The stylesheet is compiled into the binary: one file to deploy.
const STYLESHEET: &str = include_str!("../../static/style.css");
/// The dashboard's copy button (progressive enhancement), also built in.
const COPY_SCRIPT: &str = include_str!("../../static/copy.js");

#[derive(Template)]
#[template(path = "index.html")]
struct IndexPage<'a> {
    issuer: &'a str,
    environment: &'a str,
    /// Email and logout token of the person signed in.
    signed_in: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
    request_id: &'a str,
}

/// Renders a template with a status; a template that fails to render is an
/// internal error, logged with the request id.
pub fn render(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(html) => HttpResponse::build(status).content_type("text/html; charset=utf-8").body(html),
        Err(e) => ApiError::internal(&e).error_response(),
    }
}

pub fn error_page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let request_id = current_request_id().unwrap_or_default();
    render(status, &ErrorPage { title, message, request_id: &request_id })
}

pub async fn index(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let environment = state.config.environment.as_str();
    let signed_in = super::browser::signed_in(&state, &req).await;
    render(StatusCode::OK, &IndexPage { issuer: &state.issuer, environment, signed_in })
}

pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")))
        .body(STYLESHEET)
}

pub async fn copy_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600")))
        .body(COPY_SCRIPT)
}

/// A browser asking for a page gets HTML; everything else gets JSON.
fn wants_html(req: &HttpRequest) -> bool {
    !req.path().starts_with("/v1")
        && req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"))
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    if wants_html(&req) {
        return error_page(StatusCode::NOT_FOUND, "Not found", "There is no page at this address.");
    }
    ApiError::new(ErrorKind::NotFound, "route_not_found", "No such endpoint").error_response()
}

pub async fn method_not_allowed() -> HttpResponse {
    ApiError::new(ErrorKind::MethodNotAllowed, "method_not_allowed", "This endpoint does not accept that method")
        .error_response()
}
