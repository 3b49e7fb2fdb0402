//! The query and the answer of every `/v1` list: a `Page` in, a
//! `PageOf<T>` out as `{"success": true, "data": [...], "has_more": bool}`.

use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::domain::page::{Page, PageOf};
use crate::http::error::ApiError;

/// The query of a `/v1` list that takes nothing but a page. Unknown
/// parameters are refused, so a mistyped `limt` never silently answers the
/// default page.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<String>,
    starting_after: Option<String>,
}

impl PageQuery {
    pub fn page(self) -> Result<Page, ApiError> {
        page(self.limit.as_deref(), self.starting_after)
    }
}

/// `limit` is read as text so that `limit=x` is the same 400
/// `validation_error` as `limit=0`, not a query-string error.
pub fn page(limit: Option<&str>, starting_after: Option<String>) -> Result<Page, ApiError> {
    Ok(Page::parse(limit, starting_after)?)
}

/// A page as `/v1` answers it.
pub fn answer<T: Serialize>(page: PageOf<T>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "success": true, "data": page.data, "has_more": page.has_more }))
}
