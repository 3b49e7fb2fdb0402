//! SDK tokens (`sdk_test_…`/`sdk_live_…`): publishable, safe in a browser,
//! accepted only on `POST /v1/api/sdk/session`, which opens a short-lived
//! session; the owner's back end reads it with its API key at
//! `GET /v1/api/sdk/session/{id}`. Anywhere else an SDK token is 403.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::AppState;
use super::caller::Caller;
use crate::apikeys::{self, Mode};
use crate::crypto::public_id;
use crate::error::{ApiError, ErrorKind};
use crate::store::sdk::{self, SdkSessionRow, SdkTokenRow};

/// How long an SDK session lives.
pub const SESSION_TTL_SECS: i64 = 600;

/// `POST /v1/sdk-tokens`: a publishable token for the caller, shown once.
#[utoipa::path(post, path = "/v1/sdk-tokens", tag = "sdk", security(("bearer" = []), ("api_key" = [])), responses((status = 201, description = "The SDK token, shown this once", body = crate::http::openapi::Envelope), (status = 401, description = "No valid credential", body = crate::http::v1_keys::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::v1_keys::ErrorBody)))]
pub async fn create_token(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let mode = caller.mode.unwrap_or(Mode::of(state.config.environment));
    let raw = apikeys::generate_sdk_token(mode);
    let row = SdkTokenRow {
        id: public_id("sdk"),
        owner_id: caller.user.id.clone(),
        mode: mode.as_str().into(),
        fingerprint: apikeys::fingerprint(&state.master_key, &raw),
        last4: raw[raw.len() - 4..].to_string(),
        created_at: state.clock.now().naive_utc(),
        revoked_at: None,
    };
    let id = row.id.clone();
    state.db.run(move |conn| sdk::insert_token(conn, &row)).await?;
    Ok(HttpResponse::build(StatusCode::CREATED)
        .json(json!({ "success": true, "data": { "id": id, "mode": mode, "token": raw } })))
}

fn refused(message: &'static str) -> ApiError {
    ApiError::new(ErrorKind::Unauthorized, "invalid_sdk_token", message)
}

/// `POST /v1/api/sdk/session` with `X-SDK-TOKEN` (and nothing else).
#[utoipa::path(post, path = "/v1/api/sdk/session", tag = "sdk", security(("sdk_token" = [])), responses((status = 201, description = "A session", body = crate::http::openapi::Envelope), (status = 401, description = "Bad SDK token", body = crate::http::v1_keys::ErrorBody)))]
pub async fn open_session(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let raw = req.headers().get("x-sdk-token").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let Some(mode) = apikeys::parse_sdk_token(&raw) else {
        return Err(refused("X-SDK-TOKEN is missing or is not an SDK token (sdk_test_… or sdk_live_…)"));
    };
    if mode != Mode::of(state.config.environment) {
        return Err(ApiError::new(
            ErrorKind::Unauthorized,
            "wrong_environment",
            "This SDK token's mode does not match this server's environment",
        ));
    }
    let origin = req.headers().get("origin").and_then(|v| v.to_str().ok()).map(|o| o.chars().take(256).collect());
    let ip = super::client_ip(&req, &state.config.trusted_proxies).map(|ip| ip.to_string());
    let (clock, master) = (state.clock.clone(), state.master_key.clone());
    let session = state
        .db
        .run(move |conn| -> Result<_, crate::store::StoreError> {
            let Some(token) = sdk::find_token_by_fingerprint(conn, &apikeys::fingerprint(&master, &raw))? else {
                return Ok(None);
            };
            if token.revoked_at.is_some() {
                return Ok(None);
            }
            let now = clock.now();
            let row = SdkSessionRow {
                id: public_id("sess"),
                token_id: token.id,
                owner_id: token.owner_id,
                origin,
                ip,
                created_at: now.naive_utc(),
                expires_at: (now + chrono::Duration::seconds(SESSION_TTL_SECS)).naive_utc(),
            };
            sdk::insert_session(conn, &row)?;
            Ok(Some(row))
        })
        .await?
        .ok_or_else(|| refused("The SDK token is unknown or revoked"))?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(json!({
        "success": true,
        "data": { "session_id": session.id, "expires_at": session.expires_at.and_utc() },
    })))
}

/// `GET /v1/api/sdk/session/{id}`: the owner's back end reads a session.
#[utoipa::path(get, path = "/v1/api/sdk/session/{id}", tag = "sdk", params(("id" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "The session", body = crate::http::openapi::Envelope), (status = 404, description = "Unknown, expired or not visible", body = crate::http::v1_keys::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::v1_keys::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::v1_keys::ErrorBody)))]
pub async fn read_session(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let now = state.clock.now().naive_utc();
    let session = state.db.run(move |conn| sdk::find_session(conn, &id)).await?;
    let not_found =
        || ApiError::new(ErrorKind::NotFound, "session_not_found", "No such SDK session (or it has expired)");
    let session = session.filter(|s| s.owner_id == caller.user.id || caller.is_admin()).ok_or_else(not_found)?;
    if session.expires_at <= now {
        return Err(not_found());
    }
    Ok(HttpResponse::Ok().json(json!({
        "success": true,
        "data": {
            "session_id": session.id,
            "sdk_token_id": session.token_id,
            "owner": session.owner_id,
            "origin": session.origin,
            "ip": session.ip,
            "created_at": session.created_at.and_utc(),
            "expires_at": session.expires_at.and_utc(),
        },
    })))
}
