//! `POST /oauth/register` (RFC 7591) and `GET`/`PUT`/`DELETE
//! /oauth/register/{client_id}` (RFC 7592): read the JSON body and the
//! bearer token, count the caller's IP, call `oauth::registration`, answer
//! JSON that is never cached.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::{Bytes, Path};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};

use super::AppState;
use crate::oauth::registration::{self, RegistrationError, RegistrationRequest};

fn bearer(req: &HttpRequest) -> Option<String> {
    registration::bearer_token(req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()))
}

/// A body that says it is JSON; anything else is refused before parsing.
fn json_body(req: &HttpRequest, body: Bytes) -> Result<Vec<u8>, RegistrationError> {
    if super::media_type(req) != "application/json" {
        return Err(RegistrationError::InvalidClientMetadata("the body must be application/json".into()));
    }
    Ok(body.to_vec())
}

fn no_store(status: StatusCode) -> HttpResponseBuilder {
    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
    response
}

pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, RegistrationError> {
    let ip = super::client_ip(&req, &state.config.trusted_proxies);
    state.limits.check_registration(ip).await.map_err(|e| {
        let (retry_after, message) = (e.retry_after.unwrap_or(1), e.message.to_string());
        if e.kind == crate::http::error::ErrorKind::ServiceUnavailable {
            RegistrationError::Unavailable { retry_after, message }
        } else {
            RegistrationError::RateLimited { retry_after, message }
        }
    })?;
    let request =
        RegistrationRequest { bearer: bearer(&req), body: json_body(&req, body)?, ip: ip.map(|i| i.to_string()) };
    let (server, master) = (state.oauth.clone(), state.master_key.clone());
    let registered = state.db.run(move |conn| registration::register(conn, &server, &master, &request)).await?;
    Ok(no_store(StatusCode::CREATED).json(registered))
}

pub async fn read(
    state: web::Data<AppState>,
    req: HttpRequest,
    client_id: Path<String>,
) -> Result<HttpResponse, RegistrationError> {
    let (server, token) = (state.oauth.clone(), bearer(&req));
    let client_id = client_id.into_inner();
    let metadata = state.db.run(move |conn| registration::read(conn, &server, &client_id, token.as_deref())).await?;
    Ok(no_store(StatusCode::OK).json(metadata))
}

pub async fn replace(
    state: web::Data<AppState>,
    req: HttpRequest,
    client_id: Path<String>,
    body: Bytes,
) -> Result<HttpResponse, RegistrationError> {
    let (server, token) = (state.oauth.clone(), bearer(&req));
    let client_id = client_id.into_inner();
    let body = json_body(&req, body)?;
    let metadata =
        state.db.run(move |conn| registration::replace(conn, &server, &client_id, token.as_deref(), &body)).await?;
    Ok(no_store(StatusCode::OK).json(metadata))
}

pub async fn delete(
    state: web::Data<AppState>,
    req: HttpRequest,
    client_id: Path<String>,
) -> Result<HttpResponse, RegistrationError> {
    let (server, token) = (state.oauth.clone(), bearer(&req));
    let client_id = client_id.into_inner();
    state.db.run(move |conn| registration::delete(conn, &server, &client_id, token.as_deref())).await?;
    Ok(no_store(StatusCode::NO_CONTENT).finish())
}
