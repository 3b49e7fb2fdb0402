//! `GET /v1/audit-events` (admin): what happened, newest first — never a
//! secret (events are written without them).

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::AppState;
use super::caller::Caller;
use crate::audit::{self, Filter};
use crate::http::error::ApiError;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Query {
    action: Option<String>,
    target: Option<String>,
    limit: Option<String>,
    starting_after: Option<String>,
}

/// A page of the log, newest first. `limit` is 1–100 (default 20) like
/// every list; it was up to 1000 (default 100) before lists were paginated.
#[utoipa::path(get, path = "/v1/audit-events", tag = "audit", params(("action" = Option<String>, Query), ("target" = Option<String>, Query), ("limit" = Option<u32>, Query, description = "Items per page, 1 to 100 (default 20)", minimum = 1, maximum = 100), ("starting_after" = Option<String>, Query, description = "The id of the last item of the previous page")), security(("bearer" = []), ("api_key" = [])), responses((status = 200, description = "A page of events, newest first", body = crate::http::openapi::ListEnvelope), (status = 400, description = "Bad query", body = crate::http::error::ErrorBody), (status = 401, description = "No valid credential", body = crate::http::error::ErrorBody), (status = 403, description = "Not allowed", body = crate::http::error::ErrorBody)))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<Query>,
) -> Result<HttpResponse, ApiError> {
    let Query { action, target, limit, starting_after } = query.into_inner();
    let page = super::list::page(limit.as_deref(), starting_after)?;
    let filter = Filter { action, actor: None, target };
    let events = state.db.run(move |conn| audit::recent(conn, &caller, &filter, &page)).await?;
    Ok(super::list::answer(events))
}
