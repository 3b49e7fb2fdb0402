//! The OpenID Connect endpoints over HTTP: UserInfo (`GET`/`POST
//! /oauth/userinfo`) and RP-initiated logout (`GET`/`POST /oauth/logout`).
//! The rules live in `oauth::oidc`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::AppState;
use super::browser::{expired_session_cookie, peer_ip, session_cookie, sessions};
use super::pages::{error_page, render};
use crate::oauth::oidc::{self, LogoutDecision, LogoutRefusal, UserInfoError};
use crate::oauth::{OAuthError, Params};

/// The bearer token of a UserInfo request: the `Authorization` header, or
/// for `POST` an `access_token` form field (RFC 6750 §2.2), never both.
fn bearer_token(req: &HttpRequest, body: &[u8]) -> Result<Option<String>, &'static str> {
    let header = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(v) => {
            let text = v.to_str().map_err(|_| "The Authorization header is not ASCII")?;
            match text.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(token.trim().to_string()),
                _ => return Err("Only a Bearer token is accepted"),
            }
        }
    };
    let form = if req.method() == actix_web::http::Method::POST && super::is_form(req) {
        Params::parse(body).map_err(|_| "The form is malformed")?.get("access_token").map(str::to_string)
    } else {
        None
    };
    match (header, form) {
        (Some(_), Some(_)) => Err("Send the access token once: in the Authorization header or the form"),
        (h, f) => Ok(h.or(f)),
    }
}

/// A RFC 6750 §3 refusal.
fn bearer_refusal(status: StatusCode, error: Option<&str>, description: &str, scope: Option<&str>) -> HttpResponse {
    let mut challenge = String::from("Bearer");
    if let Some(error) = error {
        challenge.push_str(&format!(" error=\"{error}\", error_description=\"{description}\""));
    }
    if let Some(scope) = scope {
        challenge.push_str(&format!(", scope=\"{scope}\""));
    }
    let mut res = HttpResponse::build(status);
    res.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        res.insert_header((header::WWW_AUTHENTICATE, value));
    }
    match error {
        Some(error) => res.json(serde_json::json!({ "error": error, "error_description": description })),
        None => res.finish(),
    }
}

/// `GET`/`POST /oauth/userinfo` (OpenID Connect Core §5.3).
pub async fn userinfo(state: web::Data<AppState>, req: HttpRequest, body: Bytes) -> HttpResponse {
    let token = match bearer_token(&req, &body) {
        Ok(t) => t,
        Err(why) => return bearer_refusal(StatusCode::BAD_REQUEST, Some("invalid_request"), why, None),
    };
    match oidc::serve_userinfo(&state.db, state.oauth.clone(), token).await {
        Ok(claims) => {
            HttpResponse::Ok().insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store"))).json(claims)
        }
        Err(UserInfoError::NoToken) => bearer_refusal(StatusCode::UNAUTHORIZED, None, "", None),
        Err(UserInfoError::InvalidToken(why)) => {
            bearer_refusal(StatusCode::UNAUTHORIZED, Some("invalid_token"), why, None)
        }
        Err(UserInfoError::InsufficientScope) => bearer_refusal(
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "The access token was not granted the openid scope",
            Some("openid"),
        ),
        Err(UserInfoError::Server(e)) => actix_web::ResponseError::error_response(&e),
    }
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage<'a> {
    client_name: Option<&'a str>,
    user_email: &'a str,
    params: &'a [(String, String)],
    csrf: &'a str,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage<'a> {
    /// Where the application asked to send the person, when nothing
    /// vouched enough for a redirect: a link to follow by hand.
    link: Option<&'a str>,
}

async fn logout_with(state: web::Data<AppState>, req: HttpRequest, params: Params) -> HttpResponse {
    let ip = peer_ip(&req).map(|ip| ip.to_string());
    let sessions = sessions(&state);
    let decision =
        oidc::serve_logout(&state.db, state.oauth.clone(), sessions.policy, params, session_cookie(&req), ip).await;
    match decision {
        Ok(LogoutDecision::SignedOut { redirect, link, ended }) => {
            let mut res = match redirect {
                Some(url) => HttpResponse::Found().insert_header((header::LOCATION, url)).finish(),
                None => render(StatusCode::OK, &SignedOutPage { link: link.as_deref() }),
            };
            if ended {
                let _ = res.add_removal_cookie(&expired_session_cookie(&state));
            }
            res
        }
        Ok(LogoutDecision::Confirm { request, csrf, user_email }) => render(
            StatusCode::OK,
            &LogoutPage {
                client_name: request.client.as_ref().map(|c| c.name.as_str()),
                user_email: &user_email,
                params: &request.params,
                csrf: &csrf,
            },
        ),
        Ok(LogoutDecision::Refuse(message)) => error_page(StatusCode::BAD_REQUEST, "Sign-out refused", &message),
        Err(LogoutRefusal::Page(message)) => error_page(StatusCode::BAD_REQUEST, "Sign-out refused", &message),
        Err(LogoutRefusal::Server(e)) => server_error(e),
    }
}

fn server_error(e: OAuthError) -> HttpResponse {
    error_page(e.status, "Something went wrong", &e.description)
}

fn too_many_params() -> HttpResponse {
    error_page(StatusCode::BAD_REQUEST, "Sign-out refused", "The request has too many parameters.")
}

/// `GET /oauth/logout` (the end-session endpoint).
pub async fn logout_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    match Params::parse_lenient(req.query_string().as_bytes()) {
        Ok(params) => logout_with(state, req, params).await,
        Err(_) => too_many_params(),
    }
}

/// `POST /oauth/logout`: the same parameters as a form, and the
/// confirmation form's answer.
pub async fn logout_post(state: web::Data<AppState>, req: HttpRequest, body: Bytes) -> HttpResponse {
    if !super::is_form(&req) {
        return error_page(StatusCode::BAD_REQUEST, "Bad request", "The request must be a form.");
    }
    match Params::parse_lenient(&body) {
        Ok(params) => logout_with(state, req, params).await,
        Err(_) => too_many_params(),
    }
}
