//! Prometheus metrics (`metrics` + `metrics-exporter-prometheus`): the
//! recorder and the counters the services count, a leaf any layer may
//! call. `http::metrics` serves them as text at `GET /metrics` on a
//! listener of their own (`TESSERA_METRICS_BIND`), never on the public
//! port, and counts the requests. Off by default: without a recorder the
//! `metrics` macros do nothing.
//!
//! Every label is bounded: route templates (never a path), a method from a
//! fixed list, status codes, grant types, algorithms, outcomes. No label
//! holds a key id, a client id, an IP or anything else a caller chooses.
//!
//! | series | kind | labels |
//! |---|---|---|
//! | `tessera_http_requests_total` | counter | `route`, `method`, `status` |
//! | `tessera_http_request_duration_seconds` | histogram | `route`, `method` |
//! | `tessera_tokens_issued_total` | counter | `grant`, `alg` |
//! | `tessera_client_auth_failures_total` | counter | `method` |
//! | `tessera_api_key_verifications_total` | counter | `outcome` (`/v1/keys/verify`'s code) |
//! | `tessera_api_key_authentications_total` | counter | `outcome` (`allowed`, `refused`, `rate_limited`, `invalid`) |
//! | `tessera_rate_limited_total` | counter | `limit` |
//! | `tessera_rate_limiter_unavailable_total` | counter | `limit` |
//! | `tessera_db_pool_connections` | gauge | `state` (`in_use`, `idle`) |
//! | `tessera_db_pool_waiting` | gauge | |
//! | `tessera_db_pool_timeouts_total` | counter | |
//! | `tessera_cache_requests_total` | counter | `cache`, `result` (`hit`, `miss`) |
//! | `tessera_background_lag_seconds` | gauge | `task` (`cache_feed`, `key_usage`) |

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Latency buckets, in seconds: 0.5 ms to 10 s.
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Installs the process's recorder (once; later calls share it).
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .map_err(|e| e.to_string())?
            .install_recorder()
            .map_err(|e| e.to_string())
    });
    if handle.is_ok() {
        ENABLED.store(true, Ordering::Relaxed);
    }
    handle.clone()
}

/// Drains the histograms' pending samples into their buckets: without it
/// they would pile up for as long as nobody scrapes.
pub fn upkeep() {
    if let Some(Ok(handle)) = HANDLE.get() {
        handle.run_upkeep();
    }
}

/// Everything recorded, as Prometheus text; `None` without a recorder.
pub fn render() -> Option<String> {
    match HANDLE.get() {
        Some(Ok(handle)) => Some(handle.render()),
        _ => None,
    }
}

/// Whether metrics are recorded: work done only for them is skipped if not.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// One cache lookup, answered from memory or not.
pub fn cache_lookup(cache: &'static str, hit: bool) {
    metrics::counter!("tessera_cache_requests_total", "cache" => cache, "result" => if hit { "hit" } else { "miss" })
        .increment(1);
}

/// A grant type as a label: one the server knows, or `other`.
pub fn grant_label(grant_type: Option<&str>) -> &'static str {
    match grant_type {
        Some("client_credentials") => "client_credentials",
        Some("authorization_code") => "authorization_code",
        Some("refresh_token") => "refresh_token",
        _ => "other",
    }
}

/// One access token issued in `grant`, by the algorithm its header names.
pub fn token_issued(grant: &'static str, token: &str) {
    use jsonwebtoken::Algorithm as A;
    let alg = match jsonwebtoken::decode_header(token).map(|h| h.alg) {
        Ok(A::HS256) => "HS256",
        Ok(A::RS256) => "RS256",
        Ok(A::ES256) => "ES256",
        Ok(A::EdDSA) => "EdDSA",
        Ok(A::PS256) => "PS256",
        _ => "other",
    };
    metrics::counter!("tessera_tokens_issued_total", "grant" => grant, "alg" => alg).increment(1);
}

/// One failed client authentication at the token, introspection or
/// revocation endpoint, by the method the client tried.
pub fn client_auth_failed(method: &'static str) {
    metrics::counter!("tessera_client_auth_failures_total", "method" => method).increment(1);
}

/// One verdict of `POST /v1/keys/verify`, by its code (`VALID`,
/// `NOT_FOUND`, `REVOKED`, `RATE_LIMITED`, …).
pub fn api_key_verified(code: &'static str) {
    metrics::counter!("tessera_api_key_verifications_total", "outcome" => code).increment(1);
}

/// One API key presented to `/v1`, by outcome (`allowed`, `refused`,
/// `rate_limited`, `invalid`).
pub fn api_key_authenticated(outcome: &'static str) {
    metrics::counter!("tessera_api_key_authentications_total", "outcome" => outcome).increment(1);
}
