//! The `/v1` extractors. `Caller` reads the credential headers, hands them
//! to `principal::identify` (where every rule lives), rate-limits the
//! result and audits failed authentications. Handlers take `Caller` (or
//! `Reader`) as an argument, so none can forget to check.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};

use super::AppState;
use crate::apikeys::usage::{Outcome, Use};
use crate::audit::AuthFailure;
use crate::domain::principal::Principal;
use crate::http::error::{ApiError, ErrorKind};
use crate::identity::{self, Presented, Unidentified, Verifier};

pub use crate::domain::principal::Credential;

/// An authenticated `/v1` caller allowed the permission its method needs.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl Deref for Caller {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

fn header_str(req: &HttpRequest, name: &str) -> Result<Option<String>, ApiError> {
    match req.headers().get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.to_string())).map_err(|_| {
            ApiError::new(ErrorKind::Unauthorized, "invalid_api_key", format!("The {name} header is not ASCII"))
        }),
    }
}

fn presented(req: &HttpRequest, state: &AppState) -> Result<Presented, ApiError> {
    Ok(Presented {
        authorization: header_str(req, header::AUTHORIZATION.as_str())?,
        api_key: header_str(req, "x-api-key")?,
        client_id: header_str(req, "x-client-id")?,
        sdk_token: req.headers().contains_key("x-sdk-token"),
        ip: super::client_ip(req, &state.config.trusted_proxies),
        referrer: header_str(req, header::REFERER.as_str())?.or(header_str(req, header::ORIGIN.as_str())?),
        method: req.method().as_str().to_string(),
        path: req.path().to_string(),
    })
}

/// A refused identification: the error, and the key a restriction
/// refused with the audit action naming it (see `principal::Unidentified`).
type Refused = (ApiError, Option<(String, &'static str)>);

async fn identify(req: &HttpRequest, state: &web::Data<AppState>) -> Result<Principal, Refused> {
    let presented = presented(req, state).map_err(|e| (e, None))?;
    let (server, environment) = (state.oauth.clone(), state.config.environment);
    let identified = state
        .db
        .run_cached(move |conn| {
            identity::identify_noting_key(conn, &Verifier { server: &server, environment }, &presented)
        })
        .await;
    identified.map_err(|Unidentified { error, restricted_key }| {
        if let Some((id, _)) = &restricted_key {
            note_use(req, state, id, Outcome::Refused);
        }
        (ApiError::from(error), restricted_key)
    })
}

/// A failed authentication for the audit log, from the caller's address.
fn failure(req: &HttpRequest, state: &AppState, action: &'static str, target: Option<String>) -> AuthFailure {
    let ip = super::client_ip(req, &state.config.trusted_proxies);
    AuthFailure {
        action,
        target,
        subject: ip.map(crate::sessions::ip_subject),
        ip: ip.map(|i| i.to_string()),
        request_id: crate::http::error::current_request_id(),
        details: serde_json::json!({}),
        occurred_at: None,
    }
}

/// Notes a use of key `id` for its counters and last uses: in memory, so
/// the request never waits on the database (`apikeys::usage`). The path
/// only, never the query string.
fn note_use(req: &HttpRequest, state: &AppState, id: &str, outcome: Outcome) {
    crate::telemetry::api_key_authenticated(outcome.as_str());
    let ip = super::client_ip(req, &state.config.trusted_proxies);
    state.key_usage.record(id, Use::new(state.clock.now(), ip, req.method().as_str(), req.path(), outcome));
}

/// Authenticates a `/v1` request: a failure counts against the IP's
/// limit (429 once it is spent), a success against the credential's.
pub async fn authenticate(req: &HttpRequest) -> Result<Principal, ApiError> {
    let state = req.app_data::<web::Data<AppState>>().ok_or_else(|| ApiError::internal(&"no application state"))?;
    match identify(req, state).await {
        Ok(principal) => {
            if let Err(e) = state.limits.check_key(&principal.rate_limit_bucket(), principal.rate_limit).await {
                if let Credential::ApiKey { id, .. } = &principal.credential {
                    note_use(req, state, id, Outcome::RateLimited);
                }
                return Err(e);
            }
            if let Credential::ApiKey { id, .. } = &principal.credential {
                state.key_usage.note(id, state.clock.now());
            }
            Ok(principal)
        }
        Err((e, _)) if e.kind == ErrorKind::Unauthorized => {
            if e.code == "invalid_api_key" {
                crate::telemetry::api_key_authenticated("invalid");
            }
            state.limits.check_failure(super::client_ip(req, &state.config.trusted_proxies)).await?;
            let mut failed = failure(req, state, "api.auth_failed", None);
            failed.details = serde_json::json!({ "code": e.code, "path": req.path() });
            super::audit_failure(state, failed);
            Err(e)
        }
        // Restriction refusals count against the IP too, before they are
        // audited: a leaked key used from the wrong place (restricted keys
        // are often in web pages) must not buy unbounded audit writes.
        Err((e, restricted)) if e.kind == ErrorKind::Forbidden => {
            state.limits.check_failure(super::client_ip(req, &state.config.trusted_proxies)).await?;
            if let Some((key_id, action)) = restricted {
                super::audit_failure(state, failure(req, state, action, Some(key_id)));
            }
            Err(e)
        }
        Err((e, _)) => Err(e),
    }
}

/// Authenticates and checks the permission `method` needs. A key's use is
/// noted here once its outcome is known (refusals before this point are
/// noted where they happen): allowed, or refused for lacking the
/// permission.
async fn authenticate_for(req: &HttpRequest, method: &str) -> Result<Principal, ApiError> {
    let principal = authenticate(req).await?;
    let permitted = principal.require_method(method);
    if let (Credential::ApiKey { id, .. }, Some(state)) = (&principal.credential, req.app_data::<web::Data<AppState>>())
    {
        note_use(req, state, id, if permitted.is_ok() { Outcome::Allowed } else { Outcome::Refused });
    }
    permitted.map_err(ApiError::from)?;
    Ok(principal)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let method = req.method().as_str().to_string();
            authenticate_for(&req, &method).await.map(Caller)
        })
    }
}

/// A caller that needs only the `read` permission whatever the method
/// (for `POST /v1/keys/verify`, which reads).
pub struct Reader(pub Principal);

impl FromRequest for Reader {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate_for(&req, "GET").await.map(Reader) })
    }
}
