//! `/v1/clients`: the API form of `tessera client …`. A caller registers
//! and manages the clients it owns; an admin any client. A client that is
//! not the caller's reads as not found.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::caller::Caller;
use crate::audit::Actor;
use crate::error::{ApiError, ErrorKind};
use crate::oauth::clients::{self, AuthMethod, Client, ClientChanges, ClientError, GrantType, NewClient};

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Invalid(m) => ApiError::bad_request("validation_error", m),
            ClientError::UnknownClient => not_found(),
            ClientError::UnknownOwner => ApiError::bad_request("validation_error", "No such owner"),
            ClientError::NoSecret(_) => ApiError::new(ErrorKind::Conflict, "no_client_secret", e.to_string()),
            ClientError::Store(s) => s.into(),
        }
    }
}

fn not_found() -> ApiError {
    ApiError::new(ErrorKind::NotFound, "client_not_found", "No such client")
}

fn owned(caller: &Caller, client: Option<Client>) -> Result<Client, ApiError> {
    match client {
        Some(c) if c.owner_id.as_deref() == Some(caller.user.id.as_str()) || caller.is_admin() => Ok(c),
        _ => Err(not_found()),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Register {
    name: String,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    grant_types: Vec<String>,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    public: bool,
    token_endpoint_auth_method: Option<String>,
    /// A JWK Set, for private_key_jwt.
    jwks: Option<serde_json::Value>,
}

/// `POST /v1/clients`: the secret, if any, appears only here.
#[utoipa::path(post, path = "/v1/clients", tag = "clients", request_body = Register, security(("bearer" = []), ("api_key" = [])), responses((status = 201, description = "Registered; client_secret shown this once", body = crate::http::openapi::Envelope), (status = 400, description = "Bad input", body = crate::http::v1_keys::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::v1_keys::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::v1_keys::ErrorBody)))]
pub async fn register(
    state: web::Data<AppState>,
    caller: Caller,
    body: super::body::JsonBody,
) -> Result<HttpResponse, ApiError> {
    let body: Register = body.parse()?;
    let grant_types = body
        .grant_types
        .iter()
        .map(|g| {
            GrantType::parse(g)
                .ok_or_else(|| ApiError::bad_request("validation_error", format!("unknown grant type {g:?}")))
        })
        .collect::<Result<_, _>>()?;
    let auth_method = body
        .token_endpoint_auth_method
        .as_deref()
        .map(|m| {
            AuthMethod::parse(m)
                .ok_or_else(|| ApiError::bad_request("validation_error", format!("unknown auth method {m:?}")))
        })
        .transpose()?;
    let new = NewClient {
        name: body.name,
        public: body.public,
        redirect_uris: body.redirect_uris,
        grant_types,
        scope: body.scope,
        audiences: body.audiences,
        auth_method,
        jwks: body.jwks.map(|j| j.to_string()),
        owner_id: Some(caller.user.id.clone()),
    };
    let (clock, master, actor) = (state.clock.clone(), state.master_key.clone(), Actor::User(caller.user.id.clone()));
    let (client, secret) = state.db.run(move |conn| clients::create(conn, clock.as_ref(), &master, new, actor)).await?;
    let mut data = serde_json::to_value(&client).map_err(|e| ApiError::internal(&e))?;
    data["client_secret"] = secret.map(|s| s.expose().into()).unwrap_or(serde_json::Value::Null);
    Ok(HttpResponse::build(StatusCode::CREATED).json(json!({ "success": true, "data": data })))
}

/// `GET /v1/clients`: one's own; all for an admin.
#[utoipa::path(get, path = "/v1/clients", tag = "clients", security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "Own clients (all for an admin)", body = crate::http::openapi::Envelope), (status = 401, description = "No valid credential", body = crate::http::v1_keys::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::v1_keys::ErrorBody)))]
pub async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let (admin, owner) = (caller.is_admin(), caller.user.id.clone());
    let list =
        state.db.run(move |conn| if admin { clients::list(conn) } else { clients::list_owned(conn, &owner) }).await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "data": list })))
}

/// `GET /v1/clients/{id}`.
#[utoipa::path(get, path = "/v1/clients/{id}", tag = "clients", params(("id" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "The client", body = crate::http::openapi::Envelope), (status = 404, description = "Unknown or not visible", body = crate::http::v1_keys::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::v1_keys::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::v1_keys::ErrorBody)))]
pub async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let client = state.db.run(move |conn| clients::find(conn, &id)).await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "data": owned(&caller, client)? })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Update {
    name: Option<String>,
    redirect_uris: Option<Vec<String>>,
    scope: Option<String>,
    audiences: Option<Vec<String>>,
}

/// Runs `f` on a client the caller owns (or any, for an admin).
async fn with_owned<T: Send + 'static>(
    state: &AppState,
    caller: &Caller,
    id: String,
    f: impl FnOnce(&mut crate::store::DbConn, &str) -> Result<T, ClientError> + Send + 'static,
) -> Result<T, ApiError> {
    let caller = caller.clone();
    state
        .db
        .run(move |conn| -> Result<_, crate::store::StoreError> {
            let found = match clients::find(conn, &id) {
                Ok(c) => c,
                Err(e) => return Ok(Err(ApiError::from(e))),
            };
            if let Err(e) = owned(&caller, found) {
                return Ok(Err(e));
            }
            Ok(f(conn, &id).map_err(ApiError::from))
        })
        .await?
}

/// `PATCH /v1/clients/{id}`.
#[utoipa::path(patch, path = "/v1/clients/{id}", tag = "clients", params(("id" = String, Path)), request_body = Update, security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "Updated", body = crate::http::openapi::Envelope), (status = 400, description = "Bad input", body = crate::http::v1_keys::ErrorBody), (status = 404, description = "Unknown", body = crate::http::v1_keys::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::v1_keys::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::v1_keys::ErrorBody)))]
pub async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: super::body::JsonBody,
) -> Result<HttpResponse, ApiError> {
    let body: Update = body.parse()?;
    let changes = ClientChanges {
        name: body.name,
        redirect_uris: body.redirect_uris,
        scope: body.scope,
        audiences: body.audiences,
    };
    let (clock, actor) = (state.clock.clone(), Actor::User(caller.user.id.clone()));
    let client = with_owned(&state, &caller, id.into_inner(), move |conn, id| {
        clients::update(conn, clock.as_ref(), id, changes, actor)
    })
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "data": client })))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    expire_old_in: Option<u64>,
}

/// `POST /v1/clients/{id}/rotate-secret`: the new secret, once.
#[utoipa::path(post, path = "/v1/clients/{id}/rotate-secret", tag = "clients", params(("id" = String, Path)), request_body(content = RotateSecret, description = "Optional"), security(("bearer" = []), ("api_key" = [])), responses((status = 201, description = "The new secret, shown this once", body = crate::http::openapi::Envelope), (status = 404, description = "Unknown", body = crate::http::v1_keys::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::v1_keys::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::v1_keys::ErrorBody)))]
pub async fn rotate_secret(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: super::body::JsonBody,
) -> Result<HttpResponse, ApiError> {
    let expire = body
        .parse_optional::<RotateSecret>()?
        .and_then(|b| b.expire_old_in)
        .unwrap_or(clients::DEFAULT_SECRET_OVERLAP_SECS);
    let (clock, master, actor) = (state.clock.clone(), state.master_key.clone(), Actor::User(caller.user.id.clone()));
    let id = id.into_inner();
    let client_id = id.clone();
    let secret = with_owned(&state, &caller, id, move |conn, id| {
        clients::rotate_secret(conn, clock.as_ref(), &master, id, std::time::Duration::from_secs(expire), actor)
    })
    .await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(json!({
        "success": true,
        "data": { "client_id": client_id, "client_secret": secret.expose(), "old_secret_expires_in": expire },
    })))
}

/// `DELETE /v1/clients/{id}`: disables the client.
#[utoipa::path(delete, path = "/v1/clients/{id}", tag = "clients", params(("id" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "Disabled", body = crate::http::v1_keys::Message), (status = 404, description = "Unknown", body = crate::http::v1_keys::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::v1_keys::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::v1_keys::ErrorBody)))]
pub async fn disable(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (clock, actor) = (state.clock.clone(), Actor::User(caller.user.id.clone()));
    with_owned(&state, &caller, id.into_inner(), move |conn, id| clients::disable(conn, clock.as_ref(), id, actor))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "message": "Client disabled successfully" })))
}
