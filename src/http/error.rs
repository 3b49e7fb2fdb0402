//! Errors and how they reach the client.
//!
//! Policy:
//! - `store` returns `StoreError`; services return their own enum
//!   (`AccountError`, …) wrapping it; handlers return `ApiError` (JSON, the
//!   `/v1` shape) and convert with `From`, which is the one place where a
//!   service error becomes an HTTP status and code.
//! - The `/v1` error body is built only in `ApiError::error_response`:
//!   `{"success": false, "error", "code", "message", "request_id"}`.
//! - Internal errors (a failed query, a panic in a blocking task) are logged
//!   in full with the request id, and reach the client only as
//!   `internal_error` with that request id — never the cause.
//! - A database that cannot be reached is 503 `service_unavailable`, so a
//!   load balancer can tell it from a bug.
//! - Messages never contain a secret, nor echo input that could be one.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::accounts::AccountError;
use crate::apikeys::ApiKeyError;
use crate::audit::AuditReadError;
use crate::domain::page::PageError;
use crate::domain::principal::AuthError;
use crate::jwt::keys::SigningKeyError;
use crate::oauth::clients::ClientError;
use crate::people::PeopleError;
use crate::sdk::SdkError;
use crate::store::StoreError;

pub use crate::request::{REQUEST_ID, current_request_id};

/// The category of a `/v1` error: it fixes the status and the `error` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RateLimited => "rate_limited",
            Self::ServiceUnavailable => "service_unavailable",
            Self::Internal => "internal_error",
        }
    }
}

/// An error on the `/v1` API (and the JSON operational endpoints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    /// Machine-readable detail, e.g. `invalid_api_key`.
    pub code: Cow<'static, str>,
    /// For people; never holds a secret.
    pub message: Cow<'static, str>,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
    /// The limit that was exceeded, with 429 (`RateLimit-*` headers).
    pub rate_limit: Option<u32>,
}

/// The `/v1` error body: what every error answer serializes, and what the
/// OpenAPI document shows for them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Always false.
    pub success: bool,
    /// The category: `unauthorized`, `forbidden`, `not_found`, …
    pub error: &'static str,
    /// The machine-readable detail, e.g. `invalid_api_key`.
    pub code: String,
    /// For people; never holds a secret.
    pub message: String,
    pub request_id: Option<String>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, code: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self { kind, code: code.into(), message: message.into(), retry_after: None, rate_limit: None }
    }

    pub fn bad_request(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidRequest, code, message)
    }

    pub fn not_found() -> Self {
        Self::new(ErrorKind::NotFound, "not_found", "No such resource")
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            ErrorKind::PayloadTooLarge,
            "body_too_large",
            format!("The request body is larger than the limit of {limit} bytes"),
        )
    }

    pub fn unavailable() -> Self {
        Self {
            retry_after: Some(5),
            ..Self::new(
                ErrorKind::ServiceUnavailable,
                "database_unavailable",
                "The database is unreachable; try again shortly",
            )
        }
    }

    /// Logs `cause` in full; the client sees only the request id.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(request_id = current_request_id().as_deref().unwrap_or("-"), error = %cause, "internal error");
        Self::new(
            ErrorKind::Internal,
            "internal_error",
            "Internal server error; quote the request id when reporting it",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.kind.as_str(), self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.kind.status()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Some(secs) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(secs)));
        }
        if let Some(limit) = self.rate_limit {
            response.insert_header(("ratelimit-limit", HeaderValue::from(limit)));
            response.insert_header(("ratelimit-remaining", HeaderValue::from(0)));
            response.insert_header(("ratelimit-reset", HeaderValue::from(self.retry_after.unwrap_or(1))));
        }
        response.json(ErrorBody {
            success: false,
            error: self.kind.as_str(),
            code: self.code.to_string(),
            message: self.message.to_string(),
            request_id: current_request_id(),
        })
    }
}

pub use crate::store::log_unavailable;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found(),
            StoreError::Conflict(_) => Self::new(ErrorKind::Conflict, "conflict", "The resource already exists"),
            StoreError::Unavailable(cause) => {
                log_unavailable(&cause);
                Self::unavailable()
            }
            other => Self::internal(&other),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::InvalidEmail(_) => Self::bad_request("invalid_email", e.to_string()),
            AccountError::InvalidName(_) => Self::bad_request("invalid_name", e.to_string()),
            AccountError::InvalidPassword(_) => Self::bad_request("invalid_password", e.to_string()),
            AccountError::EmailTaken => Self::new(ErrorKind::Conflict, "email_taken", e.to_string()),
            AccountError::UnknownUser => Self::new(ErrorKind::NotFound, "user_not_found", "No such user"),
            AccountError::Store(s) => s.into(),
            AccountError::Hashing(_) => Self::internal(&e),
        }
    }
}

impl From<SigningKeyError> for ApiError {
    fn from(e: SigningKeyError) -> Self {
        match e {
            SigningKeyError::Store(s) => s.into(),
            other => Self::internal(&other),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated { code, message } => Self::new(ErrorKind::Unauthorized, code, message),
            AuthError::Forbidden { code, message } => Self::new(ErrorKind::Forbidden, code, message),
        }
    }
}

impl From<crate::identity::IdentifyError> for ApiError {
    fn from(e: crate::identity::IdentifyError) -> Self {
        match e {
            crate::identity::IdentifyError::Refused(refused) => refused.into(),
            crate::identity::IdentifyError::Store(s) => s.into(),
        }
    }
}

impl From<ApiKeyError> for ApiError {
    fn from(e: ApiKeyError) -> Self {
        match e {
            ApiKeyError::Invalid { message, .. } => Self::bad_request("validation_error", message),
            ApiKeyError::Unknown => Self::new(ErrorKind::NotFound, "api_key_not_found", "No such API key"),
            ApiKeyError::Revoked => Self::new(ErrorKind::Conflict, "already_revoked", "The API key is already revoked"),
            ApiKeyError::Expired => Self::new(ErrorKind::Conflict, "api_key_expired", "The API key has expired"),
            ApiKeyError::InvalidClientSecret => {
                Self::new(ErrorKind::Unauthorized, "invalid_client_secret", e.to_string())
            }
            ApiKeyError::Forbidden { code, message } => Self::new(ErrorKind::Forbidden, code, message),
            ApiKeyError::Page(p) => p.into(),
            ApiKeyError::Store(s) => s.into(),
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Invalid { message, .. } | ClientError::InvalidRedirectUri { message, .. } => {
                Self::bad_request("validation_error", message)
            }
            ClientError::UnknownClient => Self::new(ErrorKind::NotFound, "client_not_found", "No such client"),
            ClientError::UnknownOwner => Self::bad_request("validation_error", "No such owner"),
            ClientError::NoSecret(_) => Self::new(ErrorKind::Conflict, "no_client_secret", e.to_string()),
            ClientError::Forbidden(m) => Self::new(ErrorKind::Forbidden, "insufficient_scope", m),
            ClientError::Denied(d) => d.into(),
            ClientError::Page(p) => p.into(),
            ClientError::Store(s) => s.into(),
        }
    }
}

impl From<SdkError> for ApiError {
    fn from(e: SdkError) -> Self {
        match e {
            SdkError::InvalidToken(m) => Self::new(ErrorKind::Unauthorized, "invalid_sdk_token", m),
            SdkError::WrongEnvironment => Self::new(ErrorKind::Unauthorized, "wrong_environment", e.to_string()),
            SdkError::UnknownToken => Self::new(ErrorKind::NotFound, "sdk_token_not_found", "No such SDK token"),
            SdkError::Revoked => Self::new(ErrorKind::Conflict, "already_revoked", "The SDK token is already revoked"),
            SdkError::UnknownSession => {
                Self::new(ErrorKind::NotFound, "session_not_found", "No such SDK session (or it has expired)")
            }
            SdkError::Denied(d) => d.into(),
            SdkError::Page(p) => p.into(),
            SdkError::Store(s) => s.into(),
        }
    }
}

impl From<PeopleError> for ApiError {
    fn from(e: PeopleError) -> Self {
        match e {
            PeopleError::Account(a) => a.into(),
            PeopleError::Denied(d) => d.into(),
            PeopleError::CannotDisableSelf => {
                Self::new(ErrorKind::Conflict, "cannot_disable_self", "You cannot disable yourself")
            }
            PeopleError::Busy => Self {
                retry_after: Some(1),
                ..Self::new(ErrorKind::ServiceUnavailable, "password_checks_busy", e.to_string())
            },
            PeopleError::WrongPassword => Self::new(ErrorKind::Forbidden, "invalid_current_password", e.to_string()),
            PeopleError::Throttled(secs) => Self {
                retry_after: Some(secs),
                ..Self::new(ErrorKind::RateLimited, "too_many_failures", e.to_string())
            },
            PeopleError::Page(p) => p.into(),
        }
    }
}

impl From<PageError> for ApiError {
    fn from(e: PageError) -> Self {
        Self::bad_request("validation_error", e.to_string())
    }
}

impl From<AuditReadError> for ApiError {
    fn from(e: AuditReadError) -> Self {
        match e {
            AuditReadError::Page(p) => p.into(),
            AuditReadError::Denied(d) => d.into(),
            AuditReadError::Store(s) => s.into(),
        }
    }
}

/// RFC 6749 §5.2: `{"error", "error_description"}`, never cached; 401
/// with a Basic challenge, `Retry-After` with 503 and 429.
#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl ResponseError for crate::oauth::OAuthError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        response.insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"tessera\"")));
        }
        if let Some(secs) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(secs)));
        }
        response.json(Body { error: self.error, error_description: &self.description })
    }
}

/// RFC 7591 §3.2.2 and RFC 7592 errors: `{"error", "error_description"}`,
/// never cached; a bad token is 401 with a Bearer challenge (RFC 6750).
impl ResponseError for crate::oauth::registration::RegistrationError {
    fn status_code(&self) -> StatusCode {
        use crate::oauth::registration::RegistrationError as E;
        match self {
            E::InvalidRedirectUri(_) | E::InvalidClientMetadata(_) => StatusCode::BAD_REQUEST,
            E::Closed => StatusCode::FORBIDDEN,
            E::InvalidToken => StatusCode::UNAUTHORIZED,
            E::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            E::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            E::Store(StoreError::Unavailable(_) | StoreError::Query(_)) => StatusCode::SERVICE_UNAVAILABLE,
            E::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        use crate::oauth::registration::RegistrationError as E;
        let (error, description) = match self {
            E::InvalidRedirectUri(m) => ("invalid_redirect_uri", m.clone()),
            E::InvalidClientMetadata(m) => ("invalid_client_metadata", m.clone()),
            E::Closed => ("access_denied", self.to_string()),
            E::InvalidToken => ("invalid_token", self.to_string()),
            E::RateLimited { message, .. } => ("rate_limit_exceeded", message.clone()),
            E::Unavailable { message, .. } => ("temporarily_unavailable", message.clone()),
            E::Store(cause @ (StoreError::Unavailable(_) | StoreError::Query(_))) => {
                log_unavailable(cause);
                let e = crate::oauth::OAuthError::unavailable();
                (e.error, e.description.to_string())
            }
            E::Store(cause) => {
                let e = crate::oauth::OAuthError::server_error(cause);
                (e.error, e.description.to_string())
            }
        };
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        response.insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
        match self {
            E::InvalidToken => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                ));
            }
            E::RateLimited { retry_after, .. } | E::Unavailable { retry_after, .. } => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after)));
            }
            E::Store(_) if self.status_code() == StatusCode::SERVICE_UNAVAILABLE => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from(5)));
            }
            _ => {}
        }
        response.json(serde_json::json!({ "error": error, "error_description": description }))
    }
}
