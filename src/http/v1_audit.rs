//! `GET /v1/audit-events` (admin): what happened, newest first — never a
//! secret (events are written without them).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::caller::Caller;
use crate::error::{ApiError, ErrorKind};
use crate::store::audit;

pub const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Query {
    action: Option<String>,
    target: Option<String>,
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/audit-events", tag = "audit", params(("action" = Option<String>, Query), ("target" = Option<String>, Query), ("limit" = Option<i64>, Query)), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "Newest first", body = crate::http::openapi::Envelope), (status = 400, description = "Bad query", body = crate::http::v1_keys::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::v1_keys::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::v1_keys::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<Query>,
) -> Result<HttpResponse, ApiError> {
    if !caller.is_admin() {
        return Err(ApiError::new(ErrorKind::Forbidden, "forbidden", "Only an admin may read the audit log"));
    }
    let query = query.into_inner();
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request("validation_error", format!("limit must be 1 to {MAX_LIMIT}")));
    }
    let rows =
        state.db.run(move |conn| audit::recent(conn, query.action.as_deref(), query.target.as_deref(), limit)).await?;
    let events: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "occurred_at": r.occurred_at.and_utc(),
                "actor": r.actor,
                "action": r.action,
                "target": r.target,
                "ip": r.ip,
                "request_id": r.request_id,
                "details": serde_json::from_str::<serde_json::Value>(&r.details).unwrap_or_default(),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "success": true, "data": events })))
}
