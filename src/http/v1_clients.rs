//! `/v1/clients`: the API form of `tessera client …`. A caller registers
//! and manages the clients it owns; an admin any client. A client that is
//! not the caller's reads as not found.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::caller::Caller;
use crate::http::error::ApiError;
use crate::oauth::clients::{self, AuthMethod, ClientChanges, GrantType, NewClient};

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
    /// Whether the code flow must use PKCE (default true); false only for
    /// a confidential client.
    require_pkce: Option<bool>,
    /// RS256 (default), ES256 or EdDSA.
    id_token_signed_response_alg: Option<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
}

pub(super) fn parse_id_token_alg(text: Option<&str>) -> Result<Option<clients::SigningAlg>, ApiError> {
    text.map(|a| {
        clients::SigningAlg::parse(a).ok_or_else(|| {
            ApiError::bad_request(
                "validation_error",
                format!("unknown id_token_signed_response_alg {a:?}: use RS256, ES256 or EdDSA"),
            )
        })
    })
    .transpose()
}

/// `POST /v1/clients`: the secret, if any, appears only here.
#[utoipa::path(post, path = "/v1/clients", tag = "clients", request_body = Register, security(("bearer" = []), ("api_key" = [])), responses((status = 201, description = "Registered; client_secret shown this once", body = crate::http::openapi::Envelope), (status = 400, description = "Bad input", body = crate::http::error::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::error::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::error::ErrorBody)))]
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
        owner_id: None,
        require_pkce: body.require_pkce,
        id_token_alg: parse_id_token_alg(body.id_token_signed_response_alg.as_deref())?,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
    };
    let (clock, master) = (state.clock.clone(), state.master_key.clone());
    let (client, secret) =
        state.db.run(move |conn| clients::register(conn, clock.as_ref(), &master, &caller, new)).await?;
    let mut data = serde_json::to_value(&client).map_err(|e| ApiError::internal(&e))?;
    data["client_secret"] = secret.map(|s| s.expose().into()).unwrap_or(serde_json::Value::Null);
    Ok(HttpResponse::build(StatusCode::CREATED).json(json!({ "success": true, "data": data })))
}

/// `GET /v1/clients`: a page of one's own, oldest first; of all for an
/// admin.
#[utoipa::path(get, path = "/v1/clients", tag = "clients", params(("limit" = Option<u32>, Query, description = "Items per page, 1 to 100 (default 20)", minimum = 1, maximum = 100), ("starting_after" = Option<String>, Query, description = "The id of the last item of the previous page")), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "A page of own clients (all for an admin)", body = crate::http::openapi::ListEnvelope), (status = 400, description = "Bad limit or cursor", body = crate::http::error::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::error::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::error::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<super::list::PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.into_inner().page()?;
    let list = state.db.run(move |conn| clients::list_visible(conn, &caller, &page)).await?;
    Ok(super::list::answer(list))
}

/// `GET /v1/clients/{id}`.
#[utoipa::path(get, path = "/v1/clients/{id}", tag = "clients", params(("id" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "The client", body = crate::http::openapi::Envelope), (status = 404, description = "Unknown or not visible", body = crate::http::error::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::error::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::error::ErrorBody)))]
pub async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let client = state.db.run(move |conn| clients::find_visible(conn, &caller, &id)).await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "data": client })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Update {
    name: Option<String>,
    redirect_uris: Option<Vec<String>>,
    scope: Option<String>,
    audiences: Option<Vec<String>>,
    require_pkce: Option<bool>,
    id_token_signed_response_alg: Option<String>,
    post_logout_redirect_uris: Option<Vec<String>>,
}

/// `PATCH /v1/clients/{id}`.
#[utoipa::path(patch, path = "/v1/clients/{id}", tag = "clients", params(("id" = String, Path)), request_body = Update, security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "Updated", body = crate::http::openapi::Envelope), (status = 400, description = "Bad input", body = crate::http::error::ErrorBody), (status = 404, description = "Unknown", body = crate::http::error::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::error::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::error::ErrorBody)))]
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
        require_pkce: body.require_pkce,
        id_token_alg: parse_id_token_alg(body.id_token_signed_response_alg.as_deref())?,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
    };
    let (clock, master) = (state.clock.clone(), state.master_key.clone());
    let client =
        state.db.run(move |conn| clients::update_visible(conn, clock.as_ref(), &master, &caller, &id, changes)).await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "data": client })))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    expire_old_in: Option<u64>,
}

/// `POST /v1/clients/{id}/rotate-secret`: the new secret, once.
#[utoipa::path(post, path = "/v1/clients/{id}/rotate-secret", tag = "clients", params(("id" = String, Path)), request_body(content = RotateSecret, description = "Optional"), security(("bearer" = []), ("api_key" = [])), responses((status = 201, description = "The new secret, shown this once", body = crate::http::openapi::Envelope), (status = 400, description = "Bad input", body = crate::http::error::ErrorBody), (status = 404, description = "Unknown", body = crate::http::error::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::error::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::error::ErrorBody)))]
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
    let (clock, master) = (state.clock.clone(), state.master_key.clone());
    let client_id = id.into_inner();
    let id = client_id.clone();
    let overlap = std::time::Duration::from_secs(expire);
    let secret = state
        .db
        .run(move |conn| clients::rotate_secret_visible(conn, clock.as_ref(), &master, &caller, &id, overlap))
        .await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(json!({
        "success": true,
        "data": { "client_id": client_id, "client_secret": secret.expose(), "old_secret_expires_in": expire },
    })))
}

/// `DELETE /v1/clients/{id}`: disables the client.
#[utoipa::path(delete, path = "/v1/clients/{id}", tag = "clients", params(("id" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "Disabled", body = crate::http::v1_keys::Message), (status = 404, description = "Unknown", body = crate::http::error::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::error::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::error::ErrorBody)))]
pub async fn disable(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let clock = state.clock.clone();
    state.db.run(move |conn| clients::disable_visible(conn, clock.as_ref(), &caller, &id)).await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "message": "Client disabled successfully" })))
}
