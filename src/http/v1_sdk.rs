//! SDK tokens (`sdk_test_…`/`sdk_live_…`): created, listed and revoked by
//! their owner; accepted only on `POST /v1/api/sdk/session`, which opens a
//! short-lived session that the owner's back end reads with its API key at
//! `GET /v1/api/sdk/session/{id}`. Anywhere else an SDK token is 403. The
//! rules live in `crate::sdk`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::AppState;
use super::caller::Caller;
use crate::http::error::{ApiError, ErrorBody};
use crate::sdk;

/// `POST /v1/sdk-tokens`: a publishable token for the caller, shown once.
#[utoipa::path(post, path = "/v1/sdk-tokens", tag = "sdk", security(("bearer" = []), ("api_key" = [])), responses((status = 201, description = "The SDK token, shown this once", body = crate::http::openapi::Envelope), (status = 401, description = "No valid credential", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn create_token(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let (clock, master, environment) = (state.clock.clone(), state.master_key.clone(), state.config.environment);
    let (token, raw) =
        state.db.run(move |conn| sdk::create_token(conn, clock.as_ref(), &master, environment, &caller)).await?;
    Ok(HttpResponse::build(StatusCode::CREATED)
        .json(json!({ "success": true, "data": { "id": token.id, "mode": token.mode, "token": raw } })))
}

/// `GET /v1/sdk-tokens`: a page of the caller's SDK tokens, oldest first
/// (never the tokens).
#[utoipa::path(get, path = "/v1/sdk-tokens", tag = "sdk", params(("limit" = Option<u32>, Query, description = "Items per page, 1 to 100 (default 20)", minimum = 1, maximum = 100), ("starting_after" = Option<String>, Query, description = "The id of the last item of the previous page")), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "A page of the caller's SDK tokens", body = crate::http::openapi::ListEnvelope), (status = 400, description = "Bad limit or cursor", body = ErrorBody), (status = 401, description = "No valid credential", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn list_tokens(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<super::list::PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.into_inner().page()?;
    let tokens = state.db.run(move |conn| sdk::list_tokens(conn, &caller, &page)).await?;
    Ok(super::list::answer(tokens))
}

/// `DELETE /v1/sdk-tokens/{id}`: revokes it at once.
#[utoipa::path(delete, path = "/v1/sdk-tokens/{id}", tag = "sdk", params(("id" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "Revoked", body = crate::http::v1_keys::Message), (status = 404, description = "Unknown or not the caller's", body = ErrorBody), (status = 409, description = "Already revoked", body = ErrorBody), (status = 401, description = "No valid credential", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn revoke_token(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let clock = state.clock.clone();
    state.db.run(move |conn| sdk::revoke_token(conn, clock.as_ref(), &caller, &id)).await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "message": "SDK token revoked successfully" })))
}

/// `POST /v1/api/sdk/session` with `X-SDK-TOKEN` (and nothing else);
/// rate-limited per SDK token.
#[utoipa::path(post, path = "/v1/api/sdk/session", tag = "sdk", security(("sdk_token" = [])), responses((status = 201, description = "A session", body = crate::http::openapi::Envelope), (status = 401, description = "Bad SDK token", body = ErrorBody), (status = 429, description = "Too many sessions for this token", body = ErrorBody)))]
pub async fn open_session(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let raw = req.headers().get("x-sdk-token").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let origin = req.headers().get("origin").and_then(|v| v.to_str().ok()).map(str::to_string);
    let ip = super::client_ip(&req, &state.config.trusted_proxies);
    let (master, environment) = (state.master_key.clone(), state.config.environment);
    let token = match state.db.run(move |conn| sdk::authenticate(conn, &master, environment, &raw)).await {
        Ok(t) => t,
        Err(e) => {
            let e = ApiError::from(e);
            if e.kind == crate::http::error::ErrorKind::Unauthorized {
                state.limits.check_failure(ip).await?;
            }
            return Err(e);
        }
    };
    state.limits.check_key(&format!("sdk:{}", token.id), None).await?;
    let clock = state.clock.clone();
    let ip = ip.map(|i| i.to_string());
    let session = state.db.run(move |conn| sdk::open_session(conn, clock.as_ref(), &token, origin, ip)).await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(json!({
        "success": true,
        "data": { "session_id": session.session_id, "expires_at": session.expires_at },
    })))
}

/// `GET /v1/api/sdk/session/{id}`: the owner's back end reads a session.
#[utoipa::path(get, path = "/v1/api/sdk/session/{id}", tag = "sdk", params(("id" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "The session", body = crate::http::openapi::Envelope), (status = 404, description = "Unknown, expired or not visible", body = ErrorBody), (status = 401, description = "No valid credential", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn read_session(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let clock = state.clock.clone();
    let session = state.db.run(move |conn| sdk::read_session(conn, clock.as_ref(), &caller, &id)).await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "data": session })))
}
