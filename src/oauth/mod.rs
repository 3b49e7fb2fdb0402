//! The OAuth 2.0 authorization server: clients, resource servers, client
//! authentication, access tokens and the token, introspection and
//! revocation endpoints. Everything here is synchronous over a `DbConn`;
//! `http::oauth` parses the request and runs it on the blocking pool.

pub mod access_token;
pub mod assertion;
pub mod authorize;
pub mod client_auth;
pub mod client_secrets;
pub mod clients;
pub mod connected_apps;
pub mod endpoints;
pub mod error;
pub mod id_token;
pub mod oidc;
pub mod params;
pub mod registration;
pub mod resources;
pub mod user_grants;

use std::time::Duration;

use crate::clock::SharedClock;
use crate::jwt::keyring::KeyRing;
pub use error::OAuthError;
pub use params::{MAX_PARAMS, Params, TooManyParams};

/// Paths of the endpoints, relative to the issuer.
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";
pub const TOKEN_PATH: &str = "/oauth/token";
pub const INTROSPECT_PATH: &str = "/oauth/introspect";
pub const REVOKE_PATH: &str = "/oauth/revoke";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const USERINFO_PATH: &str = "/oauth/userinfo";
pub const END_SESSION_PATH: &str = "/oauth/logout";

/// What the OAuth services need, built once at start.
pub struct AuthServer {
    pub issuer: String,
    /// The audience of a token request that names none: the server's own
    /// API (`<issuer>/v1` unless configured).
    pub default_audience: String,
    pub access_token_ttl: Duration,
    pub clock: SharedClock,
    pub keys: KeyRing,
    /// What the hot paths read, in memory (`store::cache`).
    pub cache: std::sync::Arc<crate::store::cache::Caches>,
    /// Signatures already checked (`access_token::verify_signature`).
    pub verified: access_token::VerifiedTokens,
    pub refresh: user_grants::RefreshPolicy,
    /// Who may register clients, and what they may get.
    pub registration: registration::RegistrationPolicy,
}

impl AuthServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer.trim_end_matches('/'))
    }

    /// `registration_endpoint`, unless registration is closed.
    pub fn registration_endpoint(&self) -> Option<String> {
        (self.registration.mode != registration::RegistrationMode::Closed)
            .then(|| self.url(registration::REGISTER_PATH))
    }
}

/// A parameter name safe to echo in an error: short, printable ASCII.
pub fn printable(name: &str) -> String {
    let clean: String = name.chars().filter(|c| c.is_ascii_graphic()).take(40).collect();
    if clean.is_empty() { "(unnamed)".into() } else { clean }
}

/// One request to an OAuth endpoint, stripped of HTTP.
#[derive(Debug, Default)]
pub struct Request {
    pub params: Params,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The peer address, for the audit log.
    pub ip: Option<String>,
}
