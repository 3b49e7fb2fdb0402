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
pub mod endpoints;
pub mod error;
pub mod resources;
pub mod scope;
pub mod user_grants;

use std::time::Duration;

use crate::clock::SharedClock;
use crate::jwt::keyring::KeyRing;
pub use error::OAuthError;

/// Paths of the endpoints, relative to the issuer.
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";
pub const TOKEN_PATH: &str = "/oauth/token";
pub const INTROSPECT_PATH: &str = "/oauth/introspect";
pub const REVOKE_PATH: &str = "/oauth/revoke";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// What the OAuth services need, built once at start.
pub struct AuthServer {
    pub issuer: String,
    /// The audience of a token request that names none: the server's own
    /// API (`<issuer>/v1` unless configured).
    pub default_audience: String,
    pub access_token_ttl: Duration,
    pub clock: SharedClock,
    pub keys: KeyRing,
    pub refresh: user_grants::RefreshPolicy,
}

impl AuthServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer.trim_end_matches('/'))
    }
}

/// A form body (`application/x-www-form-urlencoded`) as RFC 6749 reads it:
/// a parameter may appear at most once, and an empty value counts as
/// absent (§3.1, §3.2).
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
    /// Names that appeared more than once (only the first value is kept).
    repeated: Vec<String>,
}

impl Params {
    /// Parses and refuses a repeated parameter with `invalid_request`.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let params = Self::parse_lenient(body);
        match params.repeated.first() {
            Some(name) => {
                Err(OAuthError::invalid_request(format!("the parameter {} appears more than once", printable(name))))
            }
            None => Ok(params),
        }
    }

    /// Parses and notes repeated parameters, for callers that must know
    /// some parameters before they can report the error (the authorization
    /// endpoint redirects it).
    pub fn parse_lenient(body: &[u8]) -> Self {
        let mut params = Self::default();
        for (name, value) in form_urlencoded::parse(body) {
            if params.pairs.iter().any(|(n, _)| *n == name) {
                if !params.repeated.iter().any(|r| *r == name) {
                    params.repeated.push(name.into_owned());
                }
                continue;
            }
            params.pairs.push((name.into_owned(), value.into_owned()));
        }
        params
    }

    pub fn repeated(&self) -> &[String] {
        &self.repeated
    }

    /// Every parameter, in order, as received (first values).
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, v)| n == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    /// A required parameter.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| OAuthError::invalid_request(format!("the {name} parameter is missing")))
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
