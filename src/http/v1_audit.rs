//! `GET /v1/audit-events` (admin): what happened, newest first — never a
//! secret (events are written without them).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::caller::Caller;
use crate::audit::{self, Filter};
use crate::error::ApiError;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Query {
    action: Option<String>,
    target: Option<String>,
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/audit-events", tag = "audit", params(("action" = Option<String>, Query), ("target" = Option<String>, Query), ("limit" = Option<i64>, Query)), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "Newest first", body = crate::http::openapi::Envelope), (status = 400, description = "Bad query", body = crate::error::ErrorBody), (status = 401, description = "No valid credential", body = crate::error::ErrorBody), (status = 403, description = "Not allowed", body = crate::error::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<Query>,
) -> Result<HttpResponse, ApiError> {
    let Query { action, target, limit } = query.into_inner();
    let filter = Filter { action, actor: None, target, limit };
    let events = state.db.run(move |conn| audit::recent(conn, &caller, &filter)).await?;
    Ok(HttpResponse::Ok().json(json!({ "success": true, "data": events })))
}
