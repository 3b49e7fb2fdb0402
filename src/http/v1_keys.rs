//! `/v1/api-keys`, `/v1/keys/verify` and the Authmatech rotation routes:
//! parse, call one `apikeys` function, render. Every rule (who sees which
//! key, what a caller may grant or rotate) lives in `crate::apikeys`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::body::JsonBody;
use super::caller::{Caller, Reader};
use crate::apikeys::{self, ApiKey, KeyType, Mode, NewKey, Rotation, VerifyRequest};
use crate::crypto::Secret;
use crate::domain::permissions::Permissions;
use crate::http::error::{ApiError, ErrorBody};

// Documentation shapes of the answers (the handlers build them as JSON;
// the OpenAPI test checks real answers against them).

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct KeyCreated {
    success: bool,
    data: ApiKeyWithSecret,
}

/// An API key plus the raw `key`, shown once.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ApiKeyWithSecret {
    id: String,
    name: String,
    prefix: String,
    last4: String,
    mode: Mode,
    #[schema(rename = "type")]
    key_type: KeyType,
    permissions: Vec<String>,
    restrictions: apikeys::Restrictions,
    created_at: chrono::DateTime<chrono::Utc>,
    last_used: Option<chrono::DateTime<chrono::Utc>>,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    key: String,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct KeyList {
    success: bool,
    data: Vec<ApiKey>,
    /// Whether keys follow the last of `data`.
    has_more: bool,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct KeyOne {
    success: bool,
    data: ApiKey,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Message {
    success: bool,
    message: String,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Verdict {
    valid: bool,
    /// VALID, NOT_FOUND, REVOKED, EXPIRED, WRONG_ENVIRONMENT, FORBIDDEN,
    /// INSUFFICIENT_PERMISSIONS or RATE_LIMITED.
    code: String,
    key_id: Option<String>,
    owner: Option<String>,
    mode: Option<Mode>,
    permissions: Option<Vec<String>>,
    ratelimit: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestrictionsIn {
    #[serde(default)]
    ips: Vec<String>,
    #[serde(default)]
    referrers: Vec<String>,
    #[serde(default)]
    endpoints: Vec<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    mode: Option<Mode>,
    #[serde(rename = "type")]
    key_type: Option<KeyType>,
    /// Each exactly one of read, write, delete, admin.
    #[serde(default)]
    permissions: Vec<String>,
    client_id: Option<String>,
    #[serde(default)]
    restrictions: RestrictionsIn,
    expires_in: Option<u64>,
    rate_limit: Option<u32>,
    /// Admins only: create the key for another user.
    owner_id: Option<String>,
}

fn created(key: &ApiKey, raw: &Secret) -> Result<HttpResponse, ApiError> {
    let mut data = serde_json::to_value(key).map_err(|e| ApiError::internal(&e))?;
    data["key"] = raw.expose().into();
    Ok(HttpResponse::build(StatusCode::CREATED).json(json!({ "success": true, "data": data })))
}

/// `POST /v1/api-keys`.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = CreateKey, security(("bearer" = []), ("api_key" = [])), responses((status = 201, description = "The key, shown this once", body = KeyCreated), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid credential", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn create(state: web::Data<AppState>, caller: Caller, body: JsonBody) -> Result<HttpResponse, ApiError> {
    let body: CreateKey = body.parse()?;
    let new = NewKey {
        owner_id: body.owner_id.unwrap_or_else(|| caller.user.id.clone()),
        client_id: body.client_id,
        name: body.name,
        key_type: body.key_type.unwrap_or(KeyType::Secret),
        mode: body.mode.unwrap_or(Mode::of(state.config.environment)),
        permissions: body.permissions,
        allowed_ips: body.restrictions.ips,
        allowed_referrers: body.restrictions.referrers,
        allowed_endpoints: body.restrictions.endpoints,
        expires_in: body.expires_in,
        rate_limit: body.rate_limit,
    };
    let (clock, master) = (state.clock.clone(), state.master_key.clone());
    let (key, raw) = state.db.run(move |conn| apikeys::create_as(conn, clock.as_ref(), &master, &caller, new)).await?;
    created(&key, &raw)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    owner_id: Option<String>,
    limit: Option<String>,
    starting_after: Option<String>,
}

/// `GET /v1/api-keys`: a page of the caller's keys, oldest first; an admin
/// may name an owner.
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", params(("owner_id" = Option<String>, Query, description = "Admins: another owner"), ("limit" = Option<u32>, Query, description = "Items per page, 1 to 100 (default 20)", minimum = 1, maximum = 100), ("starting_after" = Option<String>, Query, description = "The id of the last item of the previous page")), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "A page of the caller's keys", body = KeyList), (status = 400, description = "Bad limit or cursor", body = ErrorBody), (status = 401, description = "No valid credential", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let ListQuery { owner_id, limit, starting_after } = query.into_inner();
    let page = super::list::page(limit.as_deref(), starting_after)?;
    let keys = state.db.run(move |conn| apikeys::list_as(conn, &caller, owner_id.as_deref(), &page)).await?;
    Ok(super::list::answer(keys))
}

/// `GET /v1/api-keys/{id}`.
#[utoipa::path(get, path = "/v1/api-keys/{id}", tag = "api-keys", params(("id" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "The key", body = KeyOne), (status = 404, description = "Not the caller's, or unknown", body = ErrorBody), (status = 401, description = "No valid credential", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let key = state.db.run(move |conn| apikeys::find_as(conn, &caller, &id)).await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "data": key })))
}

/// `DELETE /v1/api-keys/{id}`: fails at once.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys", params(("id" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "Revoked", body = Message), (status = 404, description = "Unknown", body = ErrorBody), (status = 409, description = "Already revoked", body = ErrorBody), (status = 401, description = "No valid credential", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn revoke(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let clock = state.clock.clone();
    state.db.run(move |conn| apikeys::revoke_as(conn, clock.as_ref(), &caller, &id)).await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "message": "API key revoked successfully" })))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// Seconds the old key keeps working (default 0: it ends now).
    #[serde(default)]
    expire_old_in: u64,
    /// A new lifetime for the successor; by default it expires when the
    /// original would have.
    expires_in: Option<u64>,
}

impl RotateKey {
    fn rotation(body: &JsonBody) -> Result<Rotation, ApiError> {
        let b = body.parse_optional::<RotateKey>()?.unwrap_or_default();
        Ok(Rotation { expire_old_in: b.expire_old_in, expires_in: b.expires_in })
    }
}

/// `POST /v1/api-keys/{id}/rotate`: the new key, once.
#[utoipa::path(post, path = "/v1/api-keys/{id}/rotate", tag = "api-keys", params(("id" = String, Path)), request_body(content = RotateKey, description = "Optional"), security(("bearer" = []), ("api_key" = [])), responses((status = 201, description = "The successor, shown this once", body = KeyCreated), (status = 400, description = "Bad input", body = ErrorBody), (status = 404, description = "Unknown", body = ErrorBody), (status = 409, description = "Revoked or expired", body = ErrorBody), (status = 401, description = "No valid credential", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn rotate(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let rotation = RotateKey::rotation(&body)?;
    let (clock, master) = (state.clock.clone(), state.master_key.clone());
    let (key, raw) =
        state.db.run(move |conn| apikeys::rotate_as(conn, clock.as_ref(), &master, &caller, &id, rotation)).await?;
    created(&key, &raw)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyKey {
    key: String,
    ip: Option<String>,
    referrer: Option<String>,
    method: Option<String>,
    path: Option<String>,
    /// Each exactly one of read, write, delete, admin.
    #[serde(default)]
    permissions: Vec<String>,
    /// The `X-CLIENT-ID` the key came with (required for a key bound to a
    /// client).
    client_id: Option<String>,
}

/// `POST /v1/keys/verify`, for microservices checking a key their own
/// caller presented. Always 200 with a verdict; a key the verifying
/// credential may not see (neither its own nor, for an admin, anyone's)
/// reads `NOT_FOUND`, so existence is not revealed.
#[utoipa::path(post, path = "/v1/keys/verify", tag = "api-keys", request_body = VerifyKey, security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "Always a verdict", body = Verdict), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid credential", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn verify(state: web::Data<AppState>, reader: Reader, body: JsonBody) -> Result<HttpResponse, ApiError> {
    let body: VerifyKey = body.parse()?;
    let ip = match body.ip.as_deref().map(str::parse::<std::net::IpAddr>).transpose() {
        Ok(ip) => ip,
        Err(_) => return Err(ApiError::bad_request("validation_error", "ip is not an IP address")),
    };
    let permissions = Permissions::parse_list(&body.permissions)
        .map_err(|e| ApiError::bad_request("validation_error", e.to_string()))?;
    let endpoint = match (body.method, body.path) {
        (Some(m), Some(p)) => Some((m, p)),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request("validation_error", "method and path go together: send both or neither"));
        }
    };
    let request =
        VerifyRequest { key: body.key, ip, referrer: body.referrer, endpoint, permissions, client_id: body.client_id };
    let (server, environment) = (state.oauth.clone(), state.config.environment);
    let principal = reader.0;
    let verdict = state
        .db
        .run_cached(move |conn| {
            let (cache, clock, master) = (&server.cache, server.clock.as_ref(), server.keys.master());
            apikeys::verify(conn, cache, clock, master, environment, &principal, &request)
        })
        .await?;
    // A verification counts as a use of the key against its limit, and
    // reports the limit the server enforces (the default, or its own capped).
    let over = match &verdict.limit {
        Some((id, limit)) if verdict.valid => state.limits.check_key(id, *limit).await.is_err(),
        _ => false,
    };
    let mut verdict = if over { verdict.rate_limited() } else { verdict };
    crate::telemetry::api_key_verified(verdict.code);
    if let Some((_, limit)) = &verdict.limit {
        verdict.ratelimit = Some(json!({ "limit": state.limits.per_key_limit(*limit) }));
    }
    Ok(HttpResponse::Ok().json(verdict))
}

/// `POST /v1/api/me/api-key/rotate` (Authmatech): rotates the API key
/// that authenticates this call. The key must be bound to a client, and
/// the call must prove the client too, with its secret in `X-CLIENT-SECRET`.
#[utoipa::path(post, path = "/v1/api/me/api-key/rotate", tag = "api-keys", request_body(content = RotateKey, description = "Optional"), params(("X-CLIENT-ID" = String, Header), ("X-CLIENT-SECRET" = String, Header)), security(("api_key" = [])), responses((status = 201, description = "The successor, shown this once", body = KeyCreated), (status = 401, description = "No valid credential", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn rotate_own(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let secret = req.headers().get("x-client-secret").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let rotation = RotateKey::rotation(&body)?;
    let (clock, master) = (state.clock.clone(), state.master_key.clone());
    let (key, raw) = state
        .db
        .run(move |conn| apikeys::rotate_own(conn, clock.as_ref(), &master, &caller, &secret, rotation))
        .await?;
    created(&key, &raw)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateClientKey {
    client_id: String,
    #[serde(default)]
    expire_old_in: u64,
    expires_in: Option<u64>,
}

/// `POST /v1/api/clients/rotate-key` (Authmatech, admin): rotates the
/// newest live API key bound to `client_id`.
#[utoipa::path(post, path = "/v1/api/clients/rotate-key", tag = "api-keys", request_body = RotateClientKey, security(("bearer" = []), ("api_key" = [])), responses((status = 201, description = "The successor, shown this once", body = KeyCreated), (status = 404, description = "No live key", body = ErrorBody), (status = 401, description = "No valid credential", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn rotate_client_key(
    state: web::Data<AppState>,
    caller: Caller,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let body: RotateClientKey = body.parse()?;
    let rotation = Rotation { expire_old_in: body.expire_old_in, expires_in: body.expires_in };
    let (clock, master) = (state.clock.clone(), state.master_key.clone());
    let (key, raw) = state
        .db
        .run(move |conn| apikeys::rotate_client_key(conn, clock.as_ref(), &master, &caller, &body.client_id, rotation))
        .await
        .map_err(|e| match e {
            apikeys::ApiKeyError::Unknown => ApiError::new(
                crate::http::error::ErrorKind::NotFound,
                "api_key_not_found",
                "This client has no live API key",
            ),
            other => other.into(),
        })?;
    created(&key, &raw)
}
