//! Identification: the credential a `/v1` request presents becomes a
//! `domain::Principal` with its *effective* permissions — what the
//! credential was granted, cut down to what its owner may do now
//! (`permissions::effective`). Above the services it asks (`apikeys`,
//! `oauth`), so that they can take a `Principal` without taking this.
//!
//! Accepted: an API key (`Authorization: Bearer sk_…` or `X-API-KEY`, with
//! `X-CLIENT-ID` when the key is bound to a client), a Tessera access token
//! for the server's own API (delegated to its app), and a JWT signed by a
//! client (HS256 with its sealed secret, or its JWKS; delegated to that
//! client). The HTTP extractor (`http::caller`) only reads headers,
//! rate-limits and audits failures; every rule is here.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::apikeys::{self, KeyRefused, Refusal};
use crate::domain::permissions::{self, Permissions};
use crate::domain::{AuthError, Credential, Environment, KeyBounds, Principal, Scopes, User};
use crate::oauth::clients::{self, Client};
use crate::oauth::{AuthServer, OAuthError, access_token, assertion};
use crate::store::cache::Caches;
use crate::store::{DbConn, StoreError};

/// Why identification refused a request: the refusal the caller is told,
/// or storage that could not be asked (then 503, never a false refusal).
#[derive(Debug, thiserror::Error)]
pub enum IdentifyError {
    #[error(transparent)]
    Refused(#[from] AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn forbid(code: &'static str, message: impl Into<Cow<'static, str>>) -> IdentifyError {
    AuthError::forbidden(code, message).into()
}

fn refused(code: &'static str, message: impl Into<Cow<'static, str>>) -> IdentifyError {
    AuthError::unauthenticated(code, message).into()
}

/// The longest a client-signed JWT may live (`exp` − now).
pub const CLIENT_JWT_MAX_LIFETIME_SECS: i64 = 3600;

/// What a request presents, read from its headers by the HTTP layer.
#[derive(Debug, Clone, Default)]
pub struct Presented {
    /// The `Authorization` header's value.
    pub authorization: Option<String>,
    /// `X-API-KEY`.
    pub api_key: Option<String>,
    /// `X-CLIENT-ID`.
    pub client_id: Option<String>,
    /// Whether an `X-SDK-TOKEN` header was sent.
    pub sdk_token: bool,
    pub ip: Option<IpAddr>,
    /// `Referer`, else `Origin`.
    pub referrer: Option<String>,
    pub method: String,
    pub path: String,
}

/// What identifying a caller needs besides a connection.
pub struct Verifier<'a> {
    pub server: &'a AuthServer,
    pub environment: Environment,
}

/// Identifies the caller of a `/v1` request. Restriction refusals (IP,
/// referrer, endpoint) are audited here, on the same connection.
pub fn identify(conn: &mut DbConn, verifier: &Verifier<'_>, presented: &Presented) -> Result<Principal, IdentifyError> {
    identify_naming(conn, verifier, presented, &mut None)
}

/// A refused identification, with the key that one of its restrictions
/// refused, if that was why, and the audit action that names the
/// restriction: the key's usage counts the refusal and the HTTP layer
/// audits it (within the failure audits' bounds, once it has counted
/// against the caller's IP), while the error the caller sees never names
/// the key.
#[derive(Debug)]
pub struct Unidentified {
    pub error: IdentifyError,
    pub restricted_key: Option<(String, &'static str)>,
}

impl From<StoreError> for Unidentified {
    fn from(e: StoreError) -> Self {
        Self { error: e.into(), restricted_key: None }
    }
}

/// `identify`, naming the key a restriction refused (see `Unidentified`).
pub fn identify_noting_key(
    conn: &mut DbConn,
    verifier: &Verifier<'_>,
    presented: &Presented,
) -> Result<Principal, Unidentified> {
    let mut restricted_key = None;
    identify_naming(conn, verifier, presented, &mut restricted_key)
        .map_err(|error| Unidentified { error, restricted_key })
}

fn identify_naming(
    conn: &mut DbConn,
    verifier: &Verifier<'_>,
    presented: &Presented,
    restricted_key: &mut Option<(String, &'static str)>,
) -> Result<Principal, IdentifyError> {
    let bearer = presented
        .authorization
        .as_deref()
        .map(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")).unwrap_or(h));
    if presented.sdk_token && bearer.is_none() && presented.api_key.is_none() {
        return Err(forbid(
            "forbidden",
            "An SDK token is only accepted on POST /v1/api/sdk/session; call this endpoint with an API key",
        ));
    }
    let (raw, via_header) = match (bearer, presented.api_key.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(refused("invalid_api_key", "Send one credential: Authorization or X-API-KEY, not both"));
        }
        (Some(b), None) => (b, false),
        (None, Some(k)) => (k, true),
        (None, None) => {
            return Err(refused(
                "invalid_api_key",
                "No credential: send Authorization: Bearer <API key or access token>, or X-API-KEY",
            ));
        }
    };
    // A JWT (three base64url parts), unless it looks like a key.
    if !via_header && raw.matches('.').count() == 2 && !raw.starts_with("sk_") && !raw.starts_with("rk_") {
        return identify_jwt(conn, verifier.server, raw);
    }
    identify_api_key(conn, verifier, presented, raw, restricted_key)
}

/// What an OAuth scope allows on `/v1`. A scope a registered resource
/// server defines (`payments:write`) is that server's, never `/v1`'s: a
/// token its holder asked for without naming an audience must not turn
/// the payments app's `write` into write on the API keys.
pub fn v1_permissions(conn: &mut DbConn, cache: &Caches, scope: &Scopes) -> Result<Permissions, StoreError> {
    if !scope.iter().any(|s| s.contains(':')) {
        return Ok(Permissions::from_scope(scope));
    }
    let defined: Vec<Scopes> = cache.resources(conn)?.iter().map(|r| Scopes::from_stored(&r.scopes)).collect();
    let own: Scopes = Scopes::from_stored(
        &scope.iter().filter(|s| !defined.iter().any(|d| d.contains(s))).collect::<Vec<_>>().join(" "),
    );
    Ok(Permissions::from_scope(&own))
}

fn refused_token(message: impl Into<Cow<'static, str>>) -> IdentifyError {
    refused("invalid_token", message)
}

/// A storage failure while verifying a token fails closed (503), never as
/// an invalid token.
fn fail_closed(e: OAuthError) -> Result<(), IdentifyError> {
    if e.status.is_server_error() {
        Err(IdentifyError::Store(StoreError::Unavailable(e.description.into_owned())))
    } else {
        Ok(())
    }
}

/// The enabled user with `id`, or the refusal `why`.
fn enabled_user(conn: &mut DbConn, cache: &Caches, id: &str, why: &'static str) -> Result<User, IdentifyError> {
    match cache.user(conn, id)? {
        Some(u) if !u.disabled => Ok(User::from(u)),
        _ => Err(refused_token(why)),
    }
}

fn identify_jwt(conn: &mut DbConn, server: &AuthServer, raw: &str) -> Result<Principal, IdentifyError> {
    let header = jsonwebtoken::decode_header(raw).ok();
    let is_access_token = header
        .as_ref()
        .and_then(|h| h.typ.as_deref())
        .is_some_and(|t| t.eq_ignore_ascii_case(access_token::TYP) || t.eq_ignore_ascii_case("application/at+jwt"));
    // Only the server's own signing keys speak for /v1: a token signed with
    // a resource server's secret (`kid: rs_…`) is that server's alone, even
    // if an operator gave the server the API's own identifier.
    let resource_signed = header.as_ref().and_then(|h| h.kid.as_deref()).is_some_and(|k| k.starts_with("rs_"));
    if is_access_token {
        let claims = match access_token::active(conn, server, raw) {
            Ok(c) => c,
            Err(e) => {
                fail_closed(e)?;
                None
            }
        };
        let Some(claims) = claims.filter(|c| c.aud == server.default_audience && !resource_signed) else {
            return Err(refused_token("The access token is invalid, expired, revoked or not for this API"));
        };
        // `active` has checked the grant, the client and the person; the
        // person's role is read here for the permissions.
        let user = enabled_user(conn, &server.cache, &claims.sub, "The access token does not act for an enabled user")?;
        let granted = v1_permissions(conn, &server.cache, &Scopes::from_stored(claims.scope.as_deref().unwrap_or("")))?;
        return Ok(Principal {
            permissions: permissions::effective(granted, &user),
            user,
            credential: Credential::AccessToken { client_id: claims.client_id },
            mode: None,
            rate_limit: None,
            key: None,
        });
    }
    let Some(client_id) = assertion::unverified_issuer(raw).filter(|i| i.len() <= 512) else {
        return Err(refused_token("The bearer JWT names no client (iss)"));
    };
    let client = match clients::find_cached(conn, server, &client_id) {
        // Its owner is checked below (`clients::usable`, in two steps so
        // that the refusal says which).
        Ok(Some(c)) if !c.disabled => c,
        Ok(_) => return Err(refused_token("The JWT's client is unknown or disabled")),
        Err(clients::ClientError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(StoreError::Internal(e.to_string()).into()),
    };
    verify_client_jwt(conn, server, &client, raw)?;
    let Some(owner_id) = client.owner_id.as_deref() else {
        return Err(refused_token("The JWT's client has no owner to act for"));
    };
    let owner = enabled_user(conn, &server.cache, owner_id, "The JWT's client has no enabled owner to act for")?;
    Ok(Principal {
        permissions: permissions::effective(v1_permissions(conn, &server.cache, &client.scope)?, &owner),
        user: owner,
        credential: Credential::ClientJwt { client_id: client.client_id },
        mode: None,
        rate_limit: None,
        key: None,
    })
}

fn verify_client_jwt(conn: &mut DbConn, server: &AuthServer, client: &Client, raw: &str) -> Result<(), IdentifyError> {
    let secrets: Vec<Vec<u8>> =
        clients::live_secrets_cached(conn, &server.cache, server.clock.as_ref(), &client.client_id)?
            .iter()
            .filter_map(|s| s.open(server.keys.master()))
            .collect();
    let audiences = [server.default_audience.clone()];
    let rules = assertion::Rules {
        audiences: &audiences,
        max_lifetime_secs: CLIENT_JWT_MAX_LIFETIME_SECS,
        client_assertion: false,
    };
    match assertion::verify_with(conn, server.clock.as_ref(), client, raw, &rules, &secrets) {
        Ok(_) => Ok(()),
        Err(Ok(reason)) => Err(refused_token(format!("The client-signed JWT is refused: {reason}"))),
        Err(Err(e)) => Err(e.into()),
    }
}

fn identify_api_key(
    conn: &mut DbConn,
    verifier: &Verifier<'_>,
    presented: &Presented,
    raw: &str,
    restricted_key: &mut Option<(String, &'static str)>,
) -> Result<Principal, IdentifyError> {
    if let Err(e) = apikeys::parse(raw) {
        return Err(refused("invalid_api_key", e.to_string()));
    }
    let (server, environment) = (verifier.server, verifier.environment);
    let key =
        match apikeys::authenticate(conn, &server.cache, server.clock.as_ref(), server.keys.master(), environment, raw)
        {
            Ok(k) => k,
            Err(KeyRefused::Store(e)) => return Err(e.into()),
            Err(KeyRefused::Refused(Refusal::Expired)) => {
                return Err(refused("expired_token", "The API key has expired"));
            }
            Err(KeyRefused::Refused(Refusal::WrongEnvironment)) => {
                let (sent, to) = match environment {
                    Environment::Sandbox => ("a live key", "the sandbox server; use a test key (sk_test_…)"),
                    Environment::Production => ("a test key", "the production server; use a live key (sk_live_…)"),
                };
                return Err(refused("wrong_environment", format!("You sent {sent} to {to}")));
            }
            Err(_) => return Err(refused("invalid_api_key", "The API key is unknown or revoked")),
        };
    let owner = match server.cache.user(conn, &key.owner_id)? {
        Some(o) if !o.disabled => User::from(o),
        _ => return Err(refused("invalid_api_key", "The API key's owner is disabled")),
    };
    if let Some(bound) = &key.client_id {
        match presented.client_id.as_deref() {
            Some(c) if c == bound => {
                // A disabled client's keys stop with it.
                let usable = match clients::find_cached(conn, server, bound) {
                    Ok(Some(c)) => clients::usable(conn, &server.cache, &c)?,
                    Ok(None) => false,
                    Err(clients::ClientError::Store(e)) => return Err(e.into()),
                    Err(e) => return Err(StoreError::Internal(e.to_string()).into()),
                };
                if !usable {
                    return Err(refused("invalid_api_key", "The key's client is disabled"));
                }
            }
            Some(_) => {
                return Err(refused("client_id_mismatch", "X-CLIENT-ID names another client than the key's"));
            }
            None => {
                return Err(refused("client_id_mismatch", "This key is bound to a client: send X-CLIENT-ID"));
            }
        }
    }
    let r = &key.restrictions;
    let forbidden = |what: &str| forbid("forbidden", format!("This key may not be used {what}"));
    let refusal = if !r.allows_ip(presented.ip) {
        Some(("api_key.forbidden_ip", forbidden("from this IP address")))
    } else if !r.allows_referrer(presented.referrer.as_deref()) {
        Some(("api_key.forbidden_referrer", forbidden("from this referrer")))
    } else if !r.allows_endpoint(&presented.method, &presented.path) {
        Some((
            "api_key.forbidden_endpoint",
            forbid("insufficient_scope", "This restricted key may not call this endpoint"),
        ))
    } else {
        None
    };
    if let Some((action, error)) = refusal {
        *restricted_key = Some((key.id.clone(), action));
        return Err(error);
    }
    Ok(Principal {
        permissions: permissions::effective(key.permissions, &owner),
        user: owner,
        mode: Some(key.mode),
        rate_limit: key.rate_limit,
        credential: Credential::ApiKey { id: key.id.clone(), client_id: key.client_id.clone() },
        key: Some(Box::new(KeyBounds {
            permissions: key.permissions,
            restrictions: key.restrictions,
            expires_at: key.expires_at,
            rate_limit: key.rate_limit,
        })),
    })
}
