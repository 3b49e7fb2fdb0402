//! `/v1/api-keys`: create (the key shown once), list, read, revoke and
//! rotate. A caller sees and manages its own keys; an admin any key.
//! A key that is not the caller's reads as not found, so nothing leaks.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::caller::Caller;
use crate::apikeys::{self, ApiKey, KeyError, KeyType, Mode, NewKey};
use crate::audit::Actor;
use crate::error::{ApiError, ErrorKind};

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

/// The `/v1` error body.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    success: bool,
    error: String,
    code: String,
    message: String,
    request_id: Option<String>,
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Invalid(m) => ApiError::bad_request("validation_error", m),
            KeyError::Unknown => ApiError::new(ErrorKind::NotFound, "api_key_not_found", "No such API key"),
            KeyError::Revoked => {
                ApiError::new(ErrorKind::Conflict, "already_revoked", "The API key is already revoked")
            }
            KeyError::Store(s) => s.into(),
        }
    }
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

fn owned(caller: &Caller, key: Option<ApiKey>) -> Result<ApiKey, ApiError> {
    match key {
        Some(k) if k.owner_id == caller.user.id || caller.is_admin() => Ok(k),
        _ => Err(ApiError::new(ErrorKind::NotFound, "api_key_not_found", "No such API key")),
    }
}

/// Runs `f` on key `id` if the caller owns it (or is an admin); any other
/// key reads as not found.
async fn with_owned<T: Send + 'static>(
    state: &AppState,
    caller: &Caller,
    id: String,
    f: impl FnOnce(&mut crate::store::DbConn, &str) -> Result<T, KeyError> + Send + 'static,
) -> Result<T, ApiError> {
    let caller = caller.clone();
    state
        .db
        .run(move |conn| -> Result<_, crate::store::StoreError> {
            let found = match apikeys::find(conn, &id) {
                Ok(k) => k,
                Err(e) => return Ok(Err(ApiError::from(e))),
            };
            if let Err(e) = owned(&caller, found) {
                return Ok(Err(e));
            }
            Ok(f(conn, &id).map_err(ApiError::from))
        })
        .await?
}

fn with_key(key: &ApiKey, raw: &crate::crypto::Secret) -> Result<serde_json::Value, ApiError> {
    let mut data = serde_json::to_value(key).map_err(|e| ApiError::internal(&e))?;
    data["key"] = raw.expose().into();
    Ok(data)
}

/// `POST /v1/api-keys`.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys", request_body = CreateKey, security(("bearer" = []), ("api_key" = [])), responses((status = 201, description = "The key, shown this once", body = KeyCreated), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid credential", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: super::body::JsonBody,
) -> Result<HttpResponse, ApiError> {
    let body: CreateKey = body.parse()?;
    let owner_id = match body.owner_id {
        Some(other) if other != caller.user.id => {
            if !caller.is_admin() {
                return Err(ApiError::new(
                    ErrorKind::Forbidden,
                    "forbidden",
                    "Only an admin may create keys for another user",
                ));
            }
            other
        }
        _ => caller.user.id.clone(),
    };
    // A key can hold no permission its creator lacks.
    let wanted: Vec<String> = if body.permissions.is_empty() && body.key_type != Some(KeyType::Restricted) {
        caller.permissions.clone()
    } else {
        body.permissions.clone()
    };
    if !caller.permissions.iter().any(|p| p == "admin")
        && let Some(extra) =
            wanted.iter().find(|p| apikeys::PERMISSIONS.contains(&p.as_str()) && !caller.permissions.contains(p))
    {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "insufficient_scope",
            format!("You cannot grant the {extra} permission, which your credential lacks"),
        ));
    }
    let new = NewKey {
        owner_id,
        client_id: body.client_id,
        name: body.name,
        key_type: body.key_type.unwrap_or(KeyType::Secret),
        mode: body.mode.unwrap_or(Mode::of(state.config.environment)),
        permissions: wanted,
        allowed_ips: body.restrictions.ips,
        allowed_referrers: body.restrictions.referrers,
        allowed_endpoints: body.restrictions.endpoints,
        expires_in: body.expires_in,
        rate_limit: body.rate_limit,
    };
    let (clock, master, actor) = (state.clock.clone(), state.master_key.clone(), Actor::User(caller.user.id.clone()));
    let (key, raw) = state
        .db
        .run(move |conn| -> Result<_, crate::store::StoreError> {
            if let Some(id) = &new.client_id
                && crate::store::clients::find(conn, id)?.is_none()
            {
                return Ok(Err(KeyError::Invalid(format!("no client {id}"))));
            }
            if crate::store::users::find_by_id(conn, &new.owner_id)?.is_none() {
                return Ok(Err(KeyError::Invalid("no such owner".into())));
            }
            Ok(apikeys::create(conn, clock.as_ref(), &master, new, actor))
        })
        .await??;
    Ok(HttpResponse::build(StatusCode::CREATED).json(json!({ "success": true, "data": with_key(&key, &raw)? })))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    owner_id: Option<String>,
}

/// `GET /v1/api-keys`: the caller's keys; an admin may name an owner.
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys", params(("owner_id" = Option<String>, Query, description = "Admins: another owner")), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "The caller's keys", body = KeyList), (status = 401, description = "No valid credential", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let owner = match &query.owner_id {
        Some(o) if caller.is_admin() => o.clone(),
        Some(o) if *o != caller.user.id => {
            return Err(ApiError::new(ErrorKind::Forbidden, "forbidden", "Only an admin may list another user's keys"));
        }
        _ => caller.user.id.clone(),
    };
    let keys = state.db.run(move |conn| apikeys::list(conn, Some(&owner))).await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "data": keys })))
}

/// `GET /v1/api-keys/{id}`.
#[utoipa::path(get, path = "/v1/api-keys/{id}", tag = "api-keys", params(("id" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "The key", body = KeyOne), (status = 404, description = "Not the caller's, or unknown", body = ErrorBody), (status = 401, description = "No valid credential", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn get(state: web::Data<AppState>, caller: Caller, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let key = state.db.run(move |conn| apikeys::find(conn, &id)).await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "data": owned(&caller, key)? })))
}

/// `DELETE /v1/api-keys/{id}`: fails at once.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys", params(("id" = String, Path)), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "Revoked", body = Message), (status = 404, description = "Unknown", body = ErrorBody), (status = 409, description = "Already revoked", body = ErrorBody), (status = 401, description = "No valid credential", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn revoke(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (clock, actor) = (state.clock.clone(), Actor::User(caller.user.id.clone()));
    with_owned(&state, &caller, id.into_inner(), move |conn, id| apikeys::revoke(conn, clock.as_ref(), id, actor))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "message": "API key revoked successfully" })))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    #[serde(default)]
    expire_old_in: u64,
}

/// `POST /v1/api-keys/{id}/rotate`: the new key, once.
#[utoipa::path(post, path = "/v1/api-keys/{id}/rotate", tag = "api-keys", params(("id" = String, Path)), request_body(content = RotateKey, description = "Optional"), security(("bearer" = []), ("api_key" = [])), responses((status = 201, description = "The successor, shown this once", body = KeyCreated), (status = 404, description = "Unknown", body = ErrorBody), (status = 401, description = "No valid credential", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn rotate(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: super::body::JsonBody,
) -> Result<HttpResponse, ApiError> {
    let expire = body.parse_optional::<RotateKey>()?.map(|b| b.expire_old_in).unwrap_or(0);
    let (clock, master, actor) = (state.clock.clone(), state.master_key.clone(), Actor::User(caller.user.id.clone()));
    let (key, raw) = with_owned(&state, &caller, id.into_inner(), move |conn, id| {
        apikeys::rotate(conn, clock.as_ref(), &master, id, expire, actor)
    })
    .await?;
    Ok(HttpResponse::build(StatusCode::CREATED).json(json!({ "success": true, "data": with_key(&key, &raw)? })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyKey {
    key: String,
    ip: Option<String>,
    referrer: Option<String>,
    method: Option<String>,
    path: Option<String>,
    #[serde(default)]
    permissions: Vec<String>,
}

/// `POST /v1/keys/verify`, for microservices checking a key their own
/// caller presented. Always 200 with a verdict; a key the verifying
/// credential may not see (neither its own nor, for an admin, anyone's)
/// reads `NOT_FOUND`, so existence is not revealed.
#[utoipa::path(post, path = "/v1/keys/verify", tag = "api-keys", request_body = VerifyKey, security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "Always a verdict", body = Verdict), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid credential", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn verify(
    state: web::Data<AppState>,
    reader: super::caller::Reader,
    body: super::body::JsonBody,
) -> Result<HttpResponse, ApiError> {
    let caller = reader.0;
    let body: VerifyKey = body.parse()?;
    let ip = match body.ip.as_deref().map(str::parse::<std::net::IpAddr>).transpose() {
        Ok(ip) => ip,
        Err(_) => return Err(ApiError::bad_request("validation_error", "ip is not an IP address")),
    };
    let (clock, master, environment) = (state.clock.clone(), state.master_key.clone(), state.config.environment);
    let raw = body.key.clone();
    let found =
        state.db.run(move |conn| apikeys::authenticate(conn, clock.as_ref(), &master, environment, &raw)).await?;
    let verdict = |code: &str, key: Option<&ApiKey>| {
        json!({
            "valid": code == "VALID",
            "code": code,
            "key_id": key.map(|k| k.id.clone()),
            "owner": key.map(|k| k.owner_id.clone()),
            "mode": key.map(|k| k.mode),
            "permissions": key.map(|k| k.permissions.clone()),
            "ratelimit": key.map(|k| json!({ "limit": k.rate_limit })),
        })
    };
    let visible = |k: &ApiKey| k.owner_id == caller.user.id || caller.is_admin();
    let key = match found {
        Ok(k) if visible(&k) => k,
        Ok(_) => return Ok(HttpResponse::Ok().json(verdict("NOT_FOUND", None))),
        Err(refusal) => {
            let code = serde_json::to_value(refusal).ok().and_then(|v| v.as_str().map(str::to_string));
            // Without the key, a refusal other than NOT_FOUND would tell
            // that a key exists; only say more to whoever may see keys.
            let code = if caller.is_admin() { code.unwrap_or_else(|| "NOT_FOUND".into()) } else { "NOT_FOUND".into() };
            return Ok(HttpResponse::Ok().json(verdict(&code, None)));
        }
    };
    let r = &key.restrictions;
    let code = if !r.allows_ip(ip) || !r.allows_referrer(body.referrer.as_deref()) {
        "FORBIDDEN"
    } else if let (Some(m), Some(p)) = (&body.method, &body.path)
        && !r.allows_endpoint(m, p)
    {
        "FORBIDDEN"
    } else if body
        .permissions
        .iter()
        .any(|p| !key.permissions.contains(p) && !key.permissions.iter().any(|k| k == "admin"))
    {
        "INSUFFICIENT_PERMISSIONS"
    } else if state.limits.check_key(&key.id, key.rate_limit).is_err() {
        // A verification counts as a use of the key against its limit.
        "RATE_LIMITED"
    } else {
        "VALID"
    };
    Ok(HttpResponse::Ok().json(verdict(code, Some(&key))))
}

/// `POST /v1/api/me/api-key/rotate` (Authmatech): rotates the API key
/// that authenticates this call. The key must be bound to a client, and
/// the call must prove the client too, with its secret in `X-CLIENT-SECRET`.
#[utoipa::path(post, path = "/v1/api/me/api-key/rotate", tag = "api-keys", request_body(content = RotateKey, description = "Optional"), params(("X-CLIENT-ID" = String, Header), ("X-CLIENT-SECRET" = String, Header)), security(("api_key" = [])), responses((status = 201, description = "The successor, shown this once", body = KeyCreated), (status = 401, description = "No valid credential", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn rotate_own(
    state: web::Data<AppState>,
    caller: Caller,
    req: actix_web::HttpRequest,
    body: super::body::JsonBody,
) -> Result<HttpResponse, ApiError> {
    let super::caller::Credential::ApiKey { id, client_id: Some(client_id) } = caller.credential.clone() else {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "forbidden",
            "Only an API key bound to a client (X-API-KEY with X-CLIENT-ID) can rotate itself",
        ));
    };
    let secret = req.headers().get("x-client-secret").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let expire = body.parse_optional::<RotateKey>()?.map(|b| b.expire_old_in).unwrap_or(0);
    let (clock, master, actor) = (state.clock.clone(), state.master_key.clone(), Actor::User(caller.user.id.clone()));
    let (key, raw) = state
        .db
        .run(move |conn| -> Result<_, crate::store::StoreError> {
            if secret.is_empty() || !crate::oauth::clients::secret_matches(conn, clock.as_ref(), &client_id, &secret)? {
                return Ok(Err(ApiError::new(
                    ErrorKind::Unauthorized,
                    "invalid_client_secret",
                    "X-CLIENT-SECRET is missing or is not the secret of the key's client",
                )));
            }
            Ok(apikeys::rotate(conn, clock.as_ref(), &master, &id, expire, actor).map_err(ApiError::from))
        })
        .await??;
    Ok(HttpResponse::build(StatusCode::CREATED).json(json!({ "success": true, "data": with_key(&key, &raw)? })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateClientKey {
    client_id: String,
    #[serde(default)]
    expire_old_in: u64,
}

/// `POST /v1/api/clients/rotate-key` (Authmatech, admin): rotates the
/// newest live API key bound to `client_id`.
#[utoipa::path(post, path = "/v1/api/clients/rotate-key", tag = "api-keys", request_body = RotateClientKey, security(("bearer" = []), ("api_key" = [])), responses((status = 201, description = "The successor, shown this once", body = KeyCreated), (status = 404, description = "No live key", body = ErrorBody), (status = 401, description = "No valid credential", body = ErrorBody), (status = 403, description = "Not allowed", body = ErrorBody)))]
pub async fn rotate_client_key(
    state: web::Data<AppState>,
    caller: Caller,
    body: super::body::JsonBody,
) -> Result<HttpResponse, ApiError> {
    if !caller.is_admin() {
        return Err(ApiError::new(ErrorKind::Forbidden, "forbidden", "Only an admin may rotate a client's key"));
    }
    let body: RotateClientKey = body.parse()?;
    let (clock, master, actor) = (state.clock.clone(), state.master_key.clone(), Actor::User(caller.user.id.clone()));
    let (key, raw) = state
        .db
        .run(move |conn| -> Result<_, crate::store::StoreError> {
            let now = clock.now();
            let newest = match apikeys::list(conn, None) {
                Ok(list) => list.into_iter().rev().find(|k| {
                    k.client_id.as_deref() == Some(body.client_id.as_str())
                        && k.revoked_at.is_none()
                        && k.expires_at.is_none_or(|e| e > now)
                }),
                Err(e) => return Ok(Err(ApiError::from(e))),
            };
            let Some(old) = newest else {
                return Ok(Err(ApiError::new(
                    ErrorKind::NotFound,
                    "api_key_not_found",
                    "This client has no live API key",
                )));
            };
            Ok(apikeys::rotate(conn, clock.as_ref(), &master, &old.id, body.expire_old_in, actor)
                .map_err(ApiError::from))
        })
        .await??;
    Ok(HttpResponse::build(StatusCode::CREATED).json(json!({ "success": true, "data": with_key(&key, &raw)? })))
}
