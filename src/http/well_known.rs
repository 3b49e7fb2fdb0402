//! Public discovery documents: the JWK Set, from memory, with an `ETag`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use crate::http::error::ApiError;

/// Whether `If-None-Match` names `etag` (or is `*`).
pub fn not_modified(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// The answer for a cacheable document: 304 when the client holds it.
pub fn cacheable(
    req: &HttpRequest,
    content_type: &str,
    cache_control: String,
    etag: &str,
    body: bytes::Bytes,
) -> HttpResponse {
    let held = not_modified(req, etag);
    let mut res = if held { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    res.insert_header((header::CACHE_CONTROL, cache_control)).insert_header((header::ETAG, etag.to_string()));
    if held {
        return res.finish();
    }
    res.content_type(content_type).body(body)
}

/// Public keys only (`kid`, `alg`, `use: sig`). Cacheable for less than the
/// pre-publication delay, so a verifier's copy holds a key before it signs.
pub async fn jwks(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let server = state.oauth.clone();
    let jwks = state.db.run_cached(move |conn| server.keys.jwks(conn, server.clock.as_ref())).await?;
    let cache_control = format!("public, max-age={}", state.config.rotation_policy().jwks_max_age());
    Ok(cacheable(&req, "application/jwk-set+json", cache_control, &jwks.etag, jwks.body))
}
