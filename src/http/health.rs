//! Liveness and readiness for load balancers and orchestrators.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;
use crate::http::error::ApiError;

/// The process is up; the database is not consulted.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The database answers a round trip; 503 otherwise. With shared rate
/// limits, Redis is asked too: unreachable, the instance still serves
/// (API keys pass, sign-in is refused: `http::ratelimit`), so the answer
/// stays 200 but says `degraded`.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.db.ping().await?;
    let Some(shared) = state.limits.shared() else {
        return Ok(HttpResponse::Ok().json(json!({ "status": "ok", "database": "ok" })));
    };
    let body = if shared.ready().await {
        json!({ "status": "ok", "database": "ok", "redis": "ok" })
    } else {
        json!({ "status": "degraded", "database": "ok", "redis": "unreachable" })
    };
    Ok(HttpResponse::Ok().json(body))
}
