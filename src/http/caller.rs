//! The one place where a `/v1` request's credential becomes a `Caller`.
//! Handlers take `Caller` as an extractor, so none can forget to check.
//!
//! Accepted today: an API key as `Authorization: Bearer sk_…` or
//! `X-API-KEY` (with `X-CLIENT-ID` when the key is bound to a client), and
//! a Tessera access token whose audience is the server's own API.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::{Method, header};
use actix_web::{FromRequest, HttpRequest, web};

use super::AppState;
use crate::accounts::{Role, User};
use crate::apikeys::{self, Mode, Refusal};
use crate::audit::{self, Actor, AuditEvent};
use crate::error::{ApiError, ErrorKind};
use crate::oauth::clients::{self, Client};
use crate::oauth::{AuthServer, access_token, assertion};
use crate::store::DbConn;
use crate::store::{StoreError, users};

/// Which credential authenticated the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    ApiKey { id: String, client_id: Option<String> },
    AccessToken { client_id: String },
    ClientJwt { client_id: String },
}

/// Who is calling `/v1`, with what, allowed to do what.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub credential: Credential,
    /// A subset of read, write, delete, admin.
    pub permissions: Vec<String>,
    /// The key's mode, for API keys.
    pub mode: Option<Mode>,
    /// The key's own requests-per-second limit.
    pub rate_limit: Option<i64>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin && self.permissions.iter().any(|p| p == "admin")
    }

    /// The permission an HTTP method needs.
    pub fn require_for(&self, method: &Method) -> Result<(), ApiError> {
        let needed = match *method {
            Method::GET | Method::HEAD => "read",
            Method::DELETE => "delete",
            _ => "write",
        };
        if self.permissions.iter().any(|p| p == needed || p == "admin") {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorKind::Forbidden,
                "insufficient_scope",
                format!("This credential lacks the {needed} permission this request needs"),
            ))
        }
    }
}

fn unauthorized(code: &'static str, message: impl Into<std::borrow::Cow<'static, str>>) -> ApiError {
    ApiError::new(ErrorKind::Unauthorized, code, message)
}

/// OAuth scopes onto permissions: `read`, `write`, `delete`, `admin`, and
/// `<resource>:read` / `<resource>:write`.
fn permissions_of_scope(scope: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scope.unwrap_or("").split(' ') {
        let p = s.rsplit(':').next().unwrap_or(s);
        if apikeys::PERMISSIONS.contains(&p) && !out.iter().any(|x| x == p) {
            out.push(p.to_string());
        }
    }
    out
}

fn header_str<'a>(req: &'a HttpRequest, name: &str) -> Result<Option<&'a str>, ApiError> {
    match req.headers().get(name) {
        None => Ok(None),
        Some(v) => {
            v.to_str().map(Some).map_err(|_| unauthorized("invalid_api_key", format!("The {name} header is not ASCII")))
        }
    }
}

/// What a bearer JWT turned out to be.
enum Jwt {
    AccessToken(access_token::AccessClaims, User),
    /// Signed by a client (HS256 with its secret, or its JWKS); the caller
    /// is the client's owner.
    Client(Box<Client>, User),
    Refused(String),
}

/// The longest a client-signed JWT may live (`exp` − now).
pub const CLIENT_JWT_MAX_LIFETIME_SECS: i64 = 3600;

fn identify_jwt(conn: &mut DbConn, server: &AuthServer, raw: &str) -> Result<Jwt, StoreError> {
    let fail_closed = |e: crate::oauth::OAuthError| StoreError::Unavailable(e.description.into_owned());
    let is_access_token = jsonwebtoken::decode_header(raw)
        .ok()
        .and_then(|h| h.typ)
        .is_some_and(|t| t.eq_ignore_ascii_case(access_token::TYP) || t.eq_ignore_ascii_case("application/at+jwt"));
    if is_access_token {
        let claims = match access_token::active(conn, server, raw) {
            Ok(c) => c,
            Err(e) if e.status.is_server_error() => return Err(fail_closed(e)),
            Err(_) => None,
        };
        let Some(claims) = claims.filter(|c| c.aud == server.default_audience) else {
            return Ok(Jwt::Refused("The access token is invalid, expired, revoked or not for this API".into()));
        };
        return Ok(match users::find_by_id(conn, &claims.sub)? {
            Some(u) if !u.disabled => Jwt::AccessToken(claims, User::from(u)),
            _ => Jwt::Refused("The access token does not act for an enabled user".into()),
        });
    }
    let Some(client_id) = assertion::unverified_issuer(raw).filter(|i| i.len() <= 512) else {
        return Ok(Jwt::Refused("The bearer JWT names no client (iss)".into()));
    };
    let client = match clients::find(conn, &client_id) {
        Ok(Some(c)) if !c.disabled => c,
        Ok(_) => return Ok(Jwt::Refused("The JWT's client is unknown or disabled".into())),
        Err(clients::ClientError::Store(e)) => return Err(e),
        Err(e) => return Err(StoreError::Internal(e.to_string())),
    };
    let secrets: Vec<Vec<u8>> = clients::live_secrets(conn, server.clock.as_ref(), &client.client_id)?
        .iter()
        .filter_map(|s| s.open(server.keys.master()))
        .collect();
    let audiences = [server.default_audience.clone()];
    let rules = assertion::Rules {
        audiences: &audiences,
        max_lifetime_secs: CLIENT_JWT_MAX_LIFETIME_SECS,
        client_assertion: false,
    };
    match assertion::verify_with(conn, server.clock.as_ref(), &client, raw, &rules, &secrets) {
        Ok(_) => {}
        Err(Ok(reason)) => return Ok(Jwt::Refused(format!("The client-signed JWT is refused: {reason}"))),
        Err(Err(e)) => return Err(e),
    }
    let owner = match client.owner_id.as_deref() {
        Some(id) => users::find_by_id(conn, id)?,
        None => None,
    };
    Ok(match owner {
        Some(u) if !u.disabled => Jwt::Client(Box::new(client), User::from(u)),
        _ => Jwt::Refused("The JWT's client has no enabled owner to act for".into()),
    })
}

/// Authenticates a `/v1` request: a failure counts against the IP's
/// limit (429 once it is spent), a success against the key's.
pub async fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    let state = req.app_data::<web::Data<AppState>>().ok_or_else(|| ApiError::internal(&"no application state"))?;
    match identify(req).await {
        Ok(caller) => {
            if let Credential::ApiKey { id, .. } = &caller.credential {
                state.limits.check_key(id, caller.rate_limit)?;
                state.key_usage.note(id, state.clock.now());
            }
            Ok(caller)
        }
        Err(e) if e.kind == ErrorKind::Unauthorized => {
            let ip = super::client_ip(req, &state.config.trusted_proxies);
            state.limits.check_failure(ip)?;
            // Within the IP's budget, every failed authentication is an
            // audit event (the code, never the credential).
            let (clock, code, path) = (state.clock.clone(), e.code.to_string(), req.path().to_string());
            let ip = ip.map(|i| i.to_string());
            let request_id = crate::error::current_request_id();
            // Written off the request path: the refusal does not wait for it
            // (nor does it lose its place to the body's parse error).
            let db = state.db.clone();
            actix_web::rt::spawn(async move {
                let written = db
                    .run(move |conn| -> Result<_, crate::store::StoreError> {
                        let mut event = AuditEvent::new(Actor::System, "api.auth_failed", None);
                        event.ip = ip.as_deref();
                        event.request_id = request_id.as_deref();
                        event.details = serde_json::json!({ "code": code, "path": path });
                        audit::record(conn, clock.as_ref(), event)
                    })
                    .await;
                if let Err(e) = written {
                    tracing::warn!(error = %e, "could not audit a failed authentication");
                }
            });
            Err(e)
        }
        Err(e) => Err(e),
    }
}

async fn identify(req: &HttpRequest) -> Result<Caller, ApiError> {
    let state =
        req.app_data::<web::Data<AppState>>().ok_or_else(|| ApiError::internal(&"no application state"))?.clone();
    let bearer = header_str(req, header::AUTHORIZATION.as_str())?
        .map(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")).unwrap_or(h).to_string());
    let api_key_header = header_str(req, "x-api-key")?.map(str::to_string);
    let client_header = header_str(req, "x-client-id")?.map(str::to_string);
    if header_str(req, "x-sdk-token")?.is_some() && bearer.is_none() && api_key_header.is_none() {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "forbidden",
            "An SDK token is only accepted on POST /v1/api/sdk/session; call this endpoint with an API key",
        ));
    }
    let (raw, via_header) = match (bearer, api_key_header) {
        (Some(_), Some(_)) => {
            return Err(unauthorized("invalid_api_key", "Send one credential: Authorization or X-API-KEY, not both"));
        }
        (Some(b), None) => (b, false),
        (None, Some(k)) => (k, true),
        (None, None) => {
            return Err(unauthorized(
                "invalid_api_key",
                "No credential: send Authorization: Bearer <API key or access token>, or X-API-KEY",
            ));
        }
    };
    let ip: Option<IpAddr> = super::client_ip(req, &state.config.trusted_proxies);
    let referrer =
        header_str(req, header::REFERER.as_str())?.or(header_str(req, header::ORIGIN.as_str())?).map(str::to_string);
    let (method, path) = (req.method().clone(), req.path().to_string());

    // A JWT (three base64url parts), unless it looks like a key: a Tessera
    // access token, or a JWT signed by a client.
    if !via_header && raw.matches('.').count() == 2 && !raw.starts_with("sk_") && !raw.starts_with("rk_") {
        let server = state.oauth.clone();
        let found = state.db.run(move |conn| identify_jwt(conn, &server, &raw)).await?;
        return match found {
            Jwt::AccessToken(claims, user) => Ok(Caller {
                user,
                permissions: permissions_of_scope(claims.scope.as_deref()),
                credential: Credential::AccessToken { client_id: claims.client_id },
                mode: None,
                rate_limit: None,
            }),
            Jwt::Client(client, owner) => Ok(Caller {
                user: owner,
                permissions: permissions_of_scope(Some(&client.scope.to_string())),
                credential: Credential::ClientJwt { client_id: client.client_id },
                mode: None,
                rate_limit: None,
            }),
            Jwt::Refused(message) => Err(unauthorized("invalid_token", message)),
        };
    }

    if let Err(e) = apikeys::parse(&raw) {
        return Err(unauthorized("invalid_api_key", e.to_string()));
    }
    let (clock, master, environment) = (state.clock.clone(), state.master_key.clone(), state.config.environment);
    let found = state
        .db
        .run(move |conn| -> Result<_, crate::store::StoreError> {
            let key = match apikeys::authenticate(conn, clock.as_ref(), &master, environment, &raw)? {
                Ok(k) => k,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let owner = users::find_by_id(conn, &key.owner_id)?;
            Ok(Ok((key, owner)))
        })
        .await?;
    let (key, owner) = match found {
        Ok(pair) => pair,
        Err(Refusal::Expired) => return Err(unauthorized("expired_token", "The API key has expired")),
        Err(Refusal::WrongEnvironment) => {
            let (sent, server) = match environment {
                crate::config::Environment::Sandbox => ("a live key", "the sandbox server; use a test key (sk_test_…)"),
                crate::config::Environment::Production => {
                    ("a test key", "the production server; use a live key (sk_live_…)")
                }
            };
            return Err(unauthorized("wrong_environment", format!("You sent {sent} to {server}")));
        }
        Err(_) => return Err(unauthorized("invalid_api_key", "The API key is unknown or revoked")),
    };
    let Some(owner) = owner.filter(|o| !o.disabled) else {
        return Err(unauthorized("invalid_api_key", "The API key's owner is disabled"));
    };
    if let Some(bound) = &key.client_id {
        match client_header.as_deref() {
            Some(c) if c == bound => {}
            Some(_) => {
                return Err(unauthorized("client_id_mismatch", "X-CLIENT-ID names another client than the key's"));
            }
            None => return Err(unauthorized("client_id_mismatch", "This key is bound to a client: send X-CLIENT-ID")),
        }
    }
    let forbidden =
        |what: &str| ApiError::new(ErrorKind::Forbidden, "forbidden", format!("This key may not be used {what}"));
    let refusal = if !key.restrictions.allows_ip(ip) {
        Some(("api_key.forbidden_ip", forbidden("from this IP address")))
    } else if !key.restrictions.allows_referrer(referrer.as_deref()) {
        Some(("api_key.forbidden_referrer", forbidden("from this referrer")))
    } else if !key.restrictions.allows_endpoint(method.as_str(), &path) {
        Some((
            "api_key.forbidden_endpoint",
            ApiError::new(ErrorKind::Forbidden, "insufficient_scope", "This restricted key may not call this endpoint"),
        ))
    } else {
        None
    };
    if let Some((action, error)) = refusal {
        let (clock, id, ip_text) = (state.clock.clone(), key.id.clone(), ip.map(|i| i.to_string()));
        state
            .db
            .run(move |conn| -> Result<_, crate::store::StoreError> {
                let mut event = AuditEvent::new(Actor::System, action, Some(&id));
                event.ip = ip_text.as_deref();
                audit::record(conn, clock.as_ref(), event)
            })
            .await?;
        return Err(error);
    }
    Ok(Caller {
        user: User::from(owner),
        permissions: key.permissions.clone(),
        mode: Some(key.mode),
        rate_limit: key.rate_limit,
        credential: Credential::ApiKey { id: key.id, client_id: key.client_id },
    })
}

/// Authenticates and checks the permission `method` needs.
async fn authenticate_for(req: &HttpRequest, method: &Method) -> Result<Caller, ApiError> {
    let caller = authenticate(req).await?;
    caller.require_for(method)?;
    Ok(caller)
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let (req, method) = (req.clone(), req.method().clone());
        Box::pin(async move { authenticate_for(&req, &method).await })
    }
}

/// A `Caller` that needs only the `read` permission whatever the method
/// (for `POST /v1/keys/verify`, which reads).
pub struct Reader(pub Caller);

impl FromRequest for Reader {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authenticate_for(&req, &Method::GET).await.map(Reader) })
    }
}
