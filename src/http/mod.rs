//! HTTP: handlers, middleware and the routing table. Handlers parse, call a
//! service through `AppState`, and render JSON or a template; no SQL and no
//! crypto decisions live here.

mod body;
mod browser;
pub mod caller;
mod dashboard;
pub mod error;
mod health;
mod list;
pub mod metrics;
mod middleware;
mod oauth;
mod oidc;
pub mod openapi;
mod pages;
pub mod ratelimit;
mod registration;
pub mod routes;
pub mod v1_audit;
pub mod v1_clients;
pub mod v1_keys;
pub mod v1_sdk;
pub mod v1_users;
mod well_known;

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::store::Db;

/// What every handler can reach. Built once at start.
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub clock: SharedClock,
    /// The resolved issuer (`TESSERA_ISSUER`, or `http://` + bound address).
    pub issuer: String,
    pub master_key: MasterKey,
    /// The authorization server: issuer, keys, token lifetime.
    pub oauth: Arc<crate::oauth::AuthServer>,
    pub limits: ratelimit::RateLimits,
    /// API-key uses waiting to be written as `last_used`.
    pub key_usage: Arc<crate::apikeys::UsageRecorder>,
    /// Which failed authentications get an audit row.
    pub failure_audit: Arc<crate::audit::FailureSample>,
    /// The bound on password checks in flight.
    pub hashes: crate::sessions::HashGate,
}

/// Audits a failed authentication within `audit::FailureSample`'s bounds,
/// off the request path: the refusal does not wait for the write, nor
/// lose its place to it. Called once the failure has counted against the
/// caller's IP (a caller over its budget is answered 429 and not audited).
pub fn audit_failure(state: &AppState, failure: crate::audit::AuthFailure) {
    let Some(failure) = state.failure_audit.admit(failure) else { return };
    let (db, clock) = (state.db.clone(), state.clock.clone());
    actix_web::rt::spawn(async move {
        let written = db.run(move |conn| crate::audit::record_failure(conn, clock.as_ref(), &failure)).await;
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not audit a failed authentication");
        }
    });
}

/// The client's address: the socket peer, unless the peer is a trusted
/// proxy (`TESSERA_TRUSTED_PROXIES`); then the nearest `X-Forwarded-For`
/// entry that is not itself a trusted proxy. Without trusted proxies the
/// header is ignored, so it cannot be forged.
pub fn client_ip(req: &actix_web::HttpRequest, trusted: &[ipnet::IpNet]) -> Option<std::net::IpAddr> {
    let peer = req.peer_addr()?.ip();
    if !trusted.iter().any(|n| n.contains(&peer)) {
        return Some(peer);
    }
    // Every line of the header, in order (a proxy may append a line of its
    // own rather than extend the last), read byte for byte: what a client
    // wrote on the left, readable or not, never hides what the proxies
    // added on the right.
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect::<Vec<_>>()
        .join(",");
    let mut hops = forwarded.split(',').rev().map(str::trim);
    let mut best = peer;
    for hop in hops.by_ref() {
        // A hop may carry its port (`203.0.113.7:51000`, `[2001:db8::1]:443`),
        // as some balancers write it: the address is what counts.
        let parsed = hop.parse::<std::net::IpAddr>().or_else(|_| hop.parse::<std::net::SocketAddr>().map(|a| a.ip()));
        let Ok(ip) = parsed else { break };
        best = ip;
        if !trusted.iter().any(|n| n.contains(&ip)) {
            break;
        }
    }
    Some(best)
}

/// The media type of the request body, lower-cased, without parameters.
pub fn media_type(req: &actix_web::HttpRequest) -> String {
    let content_type =
        req.headers().get(actix_web::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// Whether the body is a form (`application/x-www-form-urlencoded`).
pub fn is_form(req: &actix_web::HttpRequest) -> bool {
    media_type(req) == "application/x-www-form-urlencoded"
}

#[cfg(test)]
mod tests {
    use super::client_ip;

    fn ip_of(forwarded: &str) -> Option<std::net::IpAddr> {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let req = actix_web::test::TestRequest::default()
            .peer_addr("10.0.0.1:4000".parse().unwrap())
            .insert_header(("x-forwarded-for", forwarded))
            .to_http_request();
        client_ip(&req, &trusted)
    }

    #[test]
    fn a_forwarded_hop_with_a_port_is_its_address() {
        assert_eq!(ip_of("203.0.113.7, 10.0.0.2"), "203.0.113.7".parse().ok());
        assert_eq!(ip_of("203.0.113.7:51000, 10.0.0.2:80"), "203.0.113.7".parse().ok());
        assert_eq!(ip_of("[2001:db8::1]:443"), "2001:db8::1".parse().ok());
        // What cannot be read stops the walk at the last trusted hop.
        assert_eq!(ip_of("garbage, 10.0.0.2"), "10.0.0.2".parse().ok());
        assert_eq!(ip_of("203.0.113.9, junk:1:2"), "10.0.0.1".parse().ok());
    }
}
