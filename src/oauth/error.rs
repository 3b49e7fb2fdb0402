//! RFC 6749 §5.2 errors: `{"error", "error_description"}`, never cached.
//! `http::error` turns it into the answer.

use std::borrow::Cow;

use actix_web::http::StatusCode;

use crate::request::current_request_id;
use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub error: &'static str,
    /// For the developer reading it; never holds a secret.
    pub description: Cow<'static, str>,
    pub status: StatusCode,
    /// Seconds, with 503 and 429.
    pub retry_after: Option<u64>,
    /// A failed client authentication, for the HTTP layer to count against
    /// the caller's IP and audit within bounds (nothing is written while
    /// the request is checked).
    pub failed_auth: Option<Box<FailedAuth>>,
}

/// A failed client authentication: the method tried (the metric's label)
/// and what the audit log may record of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedAuth {
    pub method: &'static str,
    pub audit: crate::audit::AuthFailure,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<Cow<'static, str>>) -> Self {
        Self { error, description: description.into(), status, retry_after: None, failed_auth: None }
    }

    /// 429: too many failed authentications from this address.
    pub fn rate_limited(retry_after: u64, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded", description)
        }
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// 401, with a `WWW-Authenticate: Basic` challenge (RFC 6749 §5.2).
    pub fn invalid_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }

    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    pub fn unauthorized_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", description)
    }

    pub fn unsupported_grant_type(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", description)
    }

    pub fn invalid_scope(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    /// RFC 8707 §2.
    pub fn invalid_target(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_target", description)
    }

    /// The database cannot be reached: fail closed, never a false answer.
    pub fn unavailable() -> Self {
        Self {
            retry_after: Some(5),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "The server cannot reach its database; try again shortly",
            )
        }
    }

    /// Logs `cause` in full; the client sees only the request id.
    pub fn server_error(cause: &dyn std::fmt::Display) -> Self {
        let request_id = current_request_id();
        if !crate::store::feed::is_offline() {
            tracing::error!(request_id = request_id.as_deref().unwrap_or("-"), error = %cause, "internal error");
        }
        let description = match request_id {
            Some(id) => format!("Internal server error (request id {id})"),
            None => "Internal server error".to_string(),
        };
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", description)
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.description)
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        match e {
            // A failed query (a locked SQLite file, a dropped connection
            // mid-query) is as transient as an unreachable server: 503, so
            // introspection and revocation fail closed and say so.
            StoreError::Unavailable(_) | StoreError::Query(_) => {
                // Offline, a lookup that missed fails here by design.
                if !crate::store::feed::is_offline() {
                    crate::store::log_unavailable(&e);
                }
                Self::unavailable()
            }
            other => Self::server_error(&other),
        }
    }
}

/// A storage failure behind a browser page (sign-in, sessions): rendered
/// like the OAuth endpoints' (503 when the database is unreachable).
impl From<crate::sessions::SessionError> for OAuthError {
    fn from(e: crate::sessions::SessionError) -> Self {
        match e {
            crate::sessions::SessionError::Store(s) => s.into(),
        }
    }
}
