//! `/v1/users`: people. Anyone reads and renames themself; an admin
//! lists, creates, reads, renames and disables anyone. Another user's
//! record reads as not found for a member, so nothing leaks.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::caller::Caller;
use crate::accounts::{NewUser, Role};
use crate::http::error::ApiError;
use crate::people;

/// `GET /v1/users`: a page of everyone, oldest first, for an admin;
/// oneself for anyone else.
#[utoipa::path(get, path = "/v1/users", tag = "users", params(("limit" = Option<u32>, Query, description = "Items per page, 1 to 100 (default 20)", minimum = 1, maximum = 100), ("starting_after" = Option<String>, Query, description = "The id of the last item of the previous page")), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "A page of everyone (admin) or oneself", body = crate::http::openapi::ListEnvelope), (status = 400, description = "Bad limit or cursor", body = crate::http::error::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::error::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::error::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<super::list::PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.into_inner().page()?;
    let users = state.db.run(move |conn| people::list(conn, &caller, &page)).await?;
    Ok(super::list::answer(users))
}

/// `GET /v1/me`: who the credential speaks for and what it may do now,
/// answered from the credential alone (no other read).
#[utoipa::path(get, path = "/v1/me", tag = "users", security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "The caller: its user, credential and effective permissions", body = crate::http::openapi::Envelope), (status = 401, description = "No valid credential", body = crate::http::error::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::error::ErrorBody)))]
pub async fn me(caller: Caller) -> HttpResponse {
    use crate::domain::principal::Credential;
    let (credential, key_id, client_id) = match &caller.credential {
        Credential::ApiKey { id, client_id } => ("api_key", Some(id.as_str()), client_id.as_deref()),
        Credential::AccessToken { client_id } => ("access_token", None, Some(client_id.as_str())),
        Credential::ClientJwt { client_id } => ("client_jwt", None, Some(client_id.as_str())),
        Credential::Session { .. } => ("session", None, None),
    };
    HttpResponse::Ok().json(json!({ "success": true, "data": {
        "user": caller.user,
        "credential": credential,
        "key_id": key_id,
        "client_id": client_id,
        "mode": caller.mode,
        "permissions": caller.permissions,
    } }))
}

/// `GET /v1/users/{id}`.
#[utoipa::path(get, path = "/v1/users/{id}", tag = "users", params(("id" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "The user", body = crate::http::openapi::Envelope), (status = 404, description = "Unknown or not visible", body = crate::http::error::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::error::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::error::ErrorBody)))]
pub async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let user = state.db.run(move |conn| people::get(conn, &caller, &id)).await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "data": user })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    email: String,
    name: String,
    password: String,
    #[serde(default)]
    admin: bool,
}

/// `POST /v1/users` (admin).
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = CreateUser, security(("bearer" = []), ("api_key" = [])), responses((status = 201, description = "Created", body = crate::http::openapi::Envelope), (status = 400, description = "Bad input", body = crate::http::error::ErrorBody), (status = 409, description = "Email taken", body = crate::http::error::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::error::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::error::ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: super::body::JsonBody,
) -> Result<HttpResponse, ApiError> {
    let body: CreateUser = body.parse()?;
    let role = if body.admin { Role::Admin } else { Role::Member };
    let new = NewUser::parse(&body.email, &body.name, &body.password, role)?;
    let clock = state.clock.clone();
    let hashes = state.hashes.clone();
    let user = state.db.run(move |conn| people::create(conn, clock.as_ref(), &hashes, &caller, new)).await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(json!({ "success": true, "data": user })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    name: Option<String>,
    /// A new password. One's own takes `current_password`; an admin sets
    /// anyone else's without. Every other session of the person ends and
    /// the grants she gave apps are revoked.
    password: Option<String>,
    current_password: Option<String>,
}

/// `PATCH /v1/users/{id}`: the display name and/or the password.
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "users", params(("id" = String, Path)), request_body = UpdateUser, security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "Renamed", body = crate::http::openapi::Envelope), (status = 400, description = "Bad name", body = crate::http::error::ErrorBody), (status = 404, description = "Unknown or not visible", body = crate::http::error::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::error::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::error::ErrorBody)))]
pub async fn update(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    body: super::body::JsonBody,
) -> Result<HttpResponse, ApiError> {
    let body = body.parse::<UpdateUser>()?;
    if body.name.is_none() && body.password.is_none() {
        return Err(ApiError::bad_request("validation_error", "Nothing to change: send name and/or password"));
    }
    let changes = people::UserChanges {
        name: body.name,
        password: body.password.as_deref().map(crate::accounts::Password::parse).transpose()?,
        current_password: body.current_password.map(crate::crypto::Secret::new),
    };
    let asker = people::Asker {
        policy: super::browser::sessions(&state).policy,
        ip: super::client_ip(&req, &state.config.trusted_proxies),
        hashes: state.hashes.clone(),
        failures: state.failure_audit.clone(),
    };
    let clock = state.clock.clone();
    let user = state.db.run(move |conn| people::update(conn, clock.as_ref(), &asker, &caller, &id, changes)).await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "data": user })))
}

/// `DELETE /v1/users/{id}` (admin): disables the user (records are kept
/// for the audit trail).
#[utoipa::path(delete, path = "/v1/users/{id}", tag = "users", params(("id" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "Disabled", body = crate::http::v1_keys::Message), (status = 404, description = "Unknown", body = crate::http::error::ErrorBody), (status = 409, description = "Oneself", body = crate::http::error::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::error::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::error::ErrorBody)))]
pub async fn disable(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let clock = state.clock.clone();
    state.db.run(move |conn| people::disable(conn, clock.as_ref(), &caller, &id)).await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "message": "User disabled successfully" })))
}
