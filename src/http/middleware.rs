//! The middleware every request passes through: request id, body-size
//! guard, security headers and the access log line.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError, web};
use tracing::Instrument;

use super::AppState;
use crate::crypto::random_base62;
use crate::http::error::{ApiError, REQUEST_ID};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// An incoming id is kept only if it is short and made of safe characters,
/// so it can be logged and echoed without escaping.
fn well_formed_request_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn request_id_for(req: &ServiceRequest) -> String {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| well_formed_request_id(v))
        .map(str::to_string)
        .unwrap_or_else(|| format!("req_{}", random_base62(24)))
}

fn declared_length(req: &ServiceRequest) -> Option<u64> {
    req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// Pages and API answers are never cached unless their handler says
/// otherwise; `/static` may be.
fn add_security_headers(res: &mut ServiceResponse<BoxBody>, path: &str) {
    let headers = res.headers_mut();
    let fixed = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"),
        );
    }
    // A handler that chose its own caching (the JWKS) keeps it.
    if !path.starts_with("/static/") && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
}

/// Request id, body limit, security headers, and one log line per request
/// with id, method, path (never the query), status and latency. No header
/// or body is logged: they may hold credentials.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let request_id = request_id_for(&req);
    let method = req.method().clone();
    let path = req.path().to_string();
    let limit = req.app_data::<web::Data<AppState>>().map(|s| s.config.body_limit).unwrap_or(64 * 1024);

    let span = tracing::info_span!("request", request_id = %request_id);
    let handle = async move {
        if declared_length(&req).is_some_and(|n| n > limit as u64) {
            return Ok(req.into_response(ApiError::payload_too_large(limit).error_response()));
        }
        next.call(req).await.map(ServiceResponse::map_into_boxed_body)
    };
    // Handlers turn their errors into responses; an error that still gets
    // here comes from actix itself and is answered by actix.
    let mut res = REQUEST_ID
        .scope(request_id.clone(), handle)
        .instrument(span)
        .await
        .inspect_err(|e| tracing::warn!(request_id = %request_id, error = %e, "request failed in the framework"))?;

    add_security_headers(&mut res, &path);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    let status = res.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    if crate::telemetry::enabled() {
        super::metrics::record_request(res.request().match_pattern(), &method, status, elapsed);
    }
    let latency_ms = elapsed * 1000.0;
    tracing::info!(
        target: "tessera::access",
        request_id = %request_id,
        method = %method,
        path = %path,
        status,
        latency_ms = format_args!("{latency_ms:.2}"),
        "request"
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::well_formed_request_id;

    #[test]
    fn request_ids_are_short_and_plain() {
        assert!(well_formed_request_id("req_abc-123.x"));
        assert!(well_formed_request_id("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(!well_formed_request_id(""));
        assert!(!well_formed_request_id("a b"));
        assert!(!well_formed_request_id("<script>"));
        assert!(!well_formed_request_id(&"a".repeat(129)));
    }
}
