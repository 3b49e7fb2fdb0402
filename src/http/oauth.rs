//! The OAuth endpoints over HTTP: read the form and the Authorization
//! header, call the endpoint's service (`oauth::endpoints::serve_…`),
//! answer JSON that is never cached.

use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::AppState;
use crate::oauth::{OAuthError, Params, Request, endpoints};

/// The form of an OAuth request; anything but a form body is refused.
fn read_request(req: &HttpRequest, body: &[u8]) -> Result<Request, OAuthError> {
    if !super::is_form(req) {
        return Err(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"));
    }
    let authorization = match req.headers().get(header::AUTHORIZATION) {
        None => None,
        Some(v) => Some(
            v.to_str().map_err(|_| OAuthError::invalid_client("the Authorization header is not ASCII"))?.to_string(),
        ),
    };
    let trusted = req.app_data::<web::Data<AppState>>().map(|s| s.config.trusted_proxies.clone()).unwrap_or_default();
    let ip = super::client_ip(req, &trusted).map(|ip| ip.to_string());
    Ok(Request { params: Params::parse(body)?, authorization, ip })
}

fn no_store_json(body: &impl Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")))
        .json(body)
}

/// A failed client authentication counts against the caller's IP, as on
/// `/v1`: once the IP's budget is spent the answer is 429 and nothing is
/// written; within it, the failure is audited within bounds.
async fn counted(state: &AppState, req: &HttpRequest, mut e: OAuthError) -> OAuthError {
    let Some(failure) = e.failed_auth.take() else { return e };
    crate::telemetry::client_auth_failed(failure.method);
    let ip = super::client_ip(req, &state.config.trusted_proxies);
    if let Err(limited) = state.limits.check_failure(ip).await {
        return OAuthError::rate_limited(limited.retry_after.unwrap_or(1), limited.message);
    }
    super::audit_failure(state, failure.audit);
    e
}

pub async fn token(state: web::Data<AppState>, req: HttpRequest, body: Bytes) -> Result<HttpResponse, OAuthError> {
    let request = read_request(&req, &body)?;
    let grant = crate::telemetry::enabled().then(|| crate::telemetry::grant_label(request.params.get("grant_type")));
    let response = match endpoints::serve_token(&state.db, state.oauth.clone(), request).await {
        Ok(r) => r,
        Err(e) => return Err(counted(&state, &req, e).await),
    };
    if let Some(grant) = grant {
        crate::telemetry::token_issued(grant, &response.access_token);
    }
    Ok(no_store_json(&response))
}

pub async fn introspect(state: web::Data<AppState>, req: HttpRequest, body: Bytes) -> Result<HttpResponse, OAuthError> {
    let request = read_request(&req, &body)?;
    let response = match endpoints::serve_introspection(&state.db, state.oauth.clone(), request).await {
        Ok(r) => r,
        Err(e) => return Err(counted(&state, &req, e).await),
    };
    Ok(no_store_json(&response))
}

pub async fn revoke(state: web::Data<AppState>, req: HttpRequest, body: Bytes) -> Result<HttpResponse, OAuthError> {
    let request = read_request(&req, &body)?;
    if let Err(e) = endpoints::serve_revocation(&state.db, state.oauth.clone(), request).await {
        return Err(counted(&state, &req, e).await);
    }
    Ok(no_store_json(&serde_json::json!({})))
}

/// RFC 8414 metadata, also served as `openid-configuration`.
pub async fn metadata(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, OAuthError> {
    let doc = endpoints::serve_metadata(&state.db, state.oauth.clone()).await?;
    let body = bytes::Bytes::from(serde_json::to_vec(&doc).map_err(|e| OAuthError::server_error(&e))?);
    let etag = crate::crypto::etag_of(&body);
    Ok(super::well_known::cacheable(&req, "application/json", "public, max-age=300".into(), &etag, body))
}
