//! The HTTP half of the metrics (`crate::telemetry`): `GET /metrics` on
//! its own listener, and the per-request series, labelled by route
//! template and a bounded method.

use actix_web::{HttpResponse, web};

use super::AppState;

/// A request method as a label: one of the methods the server routes, or
/// `other` (a client may send any token as its method).
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// Counts one answered request under its route template.
pub fn record_request(route: Option<String>, method: &actix_web::http::Method, status: u16, seconds: f64) {
    let route = route.unwrap_or_else(|| "unmatched".to_string());
    let method = method_label(method);
    metrics::counter!("tessera_http_requests_total", "route" => route.clone(), "method" => method, "status" => status.to_string())
        .increment(1);
    metrics::histogram!("tessera_http_request_duration_seconds", "route" => route, "method" => method).record(seconds);
}

/// `GET /metrics`: the gauges read now, then everything as Prometheus text.
async fn scrape(state: web::Data<AppState>) -> HttpResponse {
    if !crate::telemetry::enabled() {
        return HttpResponse::ServiceUnavailable().finish();
    }
    let pool = state.db.pool_state();
    metrics::gauge!("tessera_db_pool_connections", "state" => "in_use").set(f64::from(pool.in_use));
    metrics::gauge!("tessera_db_pool_connections", "state" => "idle").set(f64::from(pool.idle));
    metrics::gauge!("tessera_db_pool_waiting").set(pool.waiting as f64);
    let lag = |age: Option<std::time::Duration>| age.map_or(f64::INFINITY, |a| a.as_secs_f64());
    metrics::gauge!("tessera_background_lag_seconds", "task" => "cache_feed")
        .set(lag(state.db.feed().since_last_read()));
    metrics::gauge!("tessera_background_lag_seconds", "task" => "key_usage")
        .set(lag(state.key_usage.since_last_flush()));
    let text = crate::telemetry::render().unwrap_or_default();
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(text)
}

/// The metrics listener's application: `GET /metrics` and nothing else.
pub fn configure(state: web::Data<AppState>) -> impl Fn(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(state.clone()).route("/metrics", web::get().to(scrape));
    }
}
