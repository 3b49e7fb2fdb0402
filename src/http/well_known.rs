//! Public discovery documents: the JWK Set.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};

use super::AppState;
use crate::error::ApiError;
use crate::jwt::keys;

/// Public keys only (`kid`, `alg`, `use: sig`). Cacheable for less than the
/// pre-publication delay, so a verifier's copy holds a key before it signs.
pub async fn jwks(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let policy = state.config.rotation_policy();
    let clock = state.clock.clone();
    let set = state.db.run(move |conn| keys::jwks(conn, clock.as_ref(), &policy)).await?;
    let cache = format!("public, max-age={}", policy.jwks_max_age());
    Ok(HttpResponse::Ok()
        .content_type("application/jwk-set+json")
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_str(&cache).map_err(|e| ApiError::internal(&e))?))
        .body(set.to_string()))
}
