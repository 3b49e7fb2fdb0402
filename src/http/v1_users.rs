//! `/v1/users`: people. Anyone reads and renames themself; an admin
//! lists, creates, reads, renames and disables anyone. Another user's
//! record reads as not found for a member, so nothing leaks.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::caller::Caller;
use crate::accounts::{self, AccountError, NewUser, Role, User};
use crate::audit::Actor;
use crate::error::{ApiError, ErrorKind};

fn not_found() -> ApiError {
    ApiError::new(ErrorKind::NotFound, "user_not_found", "No such user")
}

fn admin_only(caller: &Caller, what: &str) -> Result<(), ApiError> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(ApiError::new(ErrorKind::Forbidden, "forbidden", format!("Only an admin may {what}")))
    }
}

/// `GET /v1/users`: everyone for an admin, oneself for anyone else.
#[utoipa::path(get, path = "/v1/users", tag = "users", security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "Everyone (admin) or oneself", body = crate::http::openapi::Envelope), (status = 401, description = "No valid credential", body = crate::http::v1_keys::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::v1_keys::ErrorBody)))]
pub async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    if !caller.is_admin() {
        return Ok(HttpResponse::Ok().json(json!({ "success": true, "data": [caller.user] })));
    }
    let users = state.db.run(accounts::list_users).await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "data": users })))
}

/// `GET /v1/users/{id}`.
#[utoipa::path(get, path = "/v1/users/{id}", tag = "users", params(("id" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "The user", body = crate::http::openapi::Envelope), (status = 404, description = "Unknown or not visible", body = crate::http::v1_keys::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::v1_keys::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::v1_keys::ErrorBody)))]
pub async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if id != caller.user.id && !caller.is_admin() {
        return Err(not_found());
    }
    let user = state.db.run(move |conn| accounts::find_user(conn, &id)).await?.ok_or_else(not_found)?;
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
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = CreateUser, security(("bearer" = []), ("api_key" = [])), responses((status = 201, description = "Created", body = crate::http::openapi::Envelope), (status = 400, description = "Bad input", body = crate::http::v1_keys::ErrorBody), (status = 409, description = "Email taken", body = crate::http::v1_keys::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::v1_keys::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::v1_keys::ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: super::body::JsonBody,
) -> Result<HttpResponse, ApiError> {
    admin_only(&caller, "create users")?;
    let body: CreateUser = body.parse()?;
    let role = if body.admin { Role::Admin } else { Role::Member };
    let new = NewUser::parse(&body.email, &body.name, &body.password, role)?;
    let (clock, actor) = (state.clock.clone(), Actor::User(caller.user.id.clone()));
    let user: User = state.db.run(move |conn| accounts::create_user(conn, clock.as_ref(), new, actor)).await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(json!({ "success": true, "data": user })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    name: String,
}

/// `PATCH /v1/users/{id}`: the display name.
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "users", params(("id" = String, Path)), request_body = UpdateUser, security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "Renamed", body = crate::http::openapi::Envelope), (status = 404, description = "Unknown or not visible", body = crate::http::v1_keys::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::v1_keys::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::v1_keys::ErrorBody)))]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: super::body::JsonBody,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if id != caller.user.id && !caller.is_admin() {
        return Err(not_found());
    }
    let (clock, actor, name) =
        (state.clock.clone(), Actor::User(caller.user.id.clone()), body.parse::<UpdateUser>()?.name);
    let user = state.db.run(move |conn| accounts::rename_user(conn, clock.as_ref(), &id, &name, actor)).await.map_err(
        |e| match e {
            AccountError::UnknownUser => not_found(),
            other => other.into(),
        },
    )?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "data": user })))
}

/// `DELETE /v1/users/{id}` (admin): disables the user (records are kept
/// for the audit trail).
#[utoipa::path(delete, path = "/v1/users/{id}", tag = "users", params(("id" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "Disabled", body = crate::http::v1_keys::Message), (status = 404, description = "Unknown", body = crate::http::v1_keys::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::v1_keys::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::v1_keys::ErrorBody)))]
pub async fn disable(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    admin_only(&caller, "disable users")?;
    let id = id.into_inner();
    if id == caller.user.id {
        return Err(ApiError::new(ErrorKind::Conflict, "cannot_disable_self", "You cannot disable yourself"));
    }
    let (clock, actor) = (state.clock.clone(), Actor::User(caller.user.id.clone()));
    state.db.run(move |conn| accounts::disable_user_id(conn, clock.as_ref(), &id, actor)).await.map_err(
        |e| match e {
            AccountError::UnknownUser => not_found(),
            other => other.into(),
        },
    )?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "message": "User disabled successfully" })))
}
