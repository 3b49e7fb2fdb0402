//! The token (RFC 6749 §4.4), introspection (RFC 7662) and revocation
//! (RFC 7009) endpoints, and the metadata that advertises them (RFC 8414).

use serde::Serialize;

use super::access_token::{self, AccessClaims};
use super::assertion::JWT_BEARER;
use super::client_auth::{self, Caller};
use super::clients::{AuthMethod, Client, GrantType, check_absolute_uri};
use super::scope::Scopes;
use super::{AuthServer, INTROSPECT_PATH, JWKS_PATH, OAuthError, REVOKE_PATH, Request, TOKEN_PATH};
use crate::store::{DbConn, tokens};

/// A successful token response.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

fn client_only(caller: Caller) -> Result<Client, OAuthError> {
    match caller {
        Caller::Client(client) => Ok(*client),
        Caller::Resource(_) => Err(OAuthError::invalid_client("resource servers may only call introspection")),
    }
}

/// The audience named by `resource` (RFC 8707) or `audience`.
fn requested_audience(request: &Request) -> Result<Option<&str>, OAuthError> {
    let resource = request.params.get("resource");
    let audience = request.params.get("audience");
    let named = match (resource, audience) {
        (Some(r), Some(a)) if r != a => {
            return Err(OAuthError::invalid_target("resource and audience name different audiences"));
        }
        (r, a) => r.or(a),
    };
    if let Some(uri) = named {
        check_absolute_uri(uri).map_err(|why| OAuthError::invalid_target(format!("the requested resource {why}")))?;
    }
    Ok(named)
}

/// `POST /oauth/token`.
pub fn token(conn: &mut DbConn, server: &AuthServer, request: &Request) -> Result<TokenResponse, OAuthError> {
    let grant = request.params.require("grant_type")?;
    let grant = GrantType::parse(grant)
        .ok_or_else(|| OAuthError::unsupported_grant_type("the grant_type is not one this server supports"))?;
    if grant != GrantType::ClientCredentials {
        return Err(OAuthError::unsupported_grant_type(format!(
            "the {} grant is not available yet; this server supports client_credentials",
            grant.as_str()
        )));
    }
    let audience_param = requested_audience(request)?;
    let requested_scope =
        request.params.get("scope").map(Scopes::parse).transpose().map_err(OAuthError::invalid_scope)?;
    let client = client_only(client_auth::authenticate(conn, server, request, &server.url(TOKEN_PATH), false)?)?;
    if client.is_public() || !client.allows_grant(GrantType::ClientCredentials) {
        return Err(OAuthError::unauthorized_client("this client may not use the client_credentials grant"));
    }
    let audience = access_token::resolve_audience(conn, server, &client, audience_param)?;
    let allowed = match &audience.scope {
        Some(defined) => client.scope.intersection(defined),
        None => client.scope.clone(),
    };
    let scope = match requested_scope {
        None => allowed,
        Some(asked) if asked.is_subset(&allowed) => asked,
        Some(asked) => {
            return Err(OAuthError::invalid_scope(format!(
                "this client may not have these scopes for this audience: {}",
                asked.missing_from(&allowed)
            )));
        }
    };
    let minted = access_token::mint(conn, server, &client.client_id, &client.client_id, &audience, &scope)?;
    Ok(TokenResponse {
        access_token: minted.token,
        token_type: "Bearer",
        expires_in: minted.expires_in,
        scope: minted.claims.scope,
    })
}

/// An introspection answer: `{"active": false}` or the token's claims.
#[derive(Debug, Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(flatten)]
    pub claims: Option<AccessClaims>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
}

/// `POST /oauth/introspect`. A client sees its own tokens, a resource
/// server the tokens minted for it; anything else reads inactive.
pub fn introspect(conn: &mut DbConn, server: &AuthServer, request: &Request) -> Result<Introspection, OAuthError> {
    let caller = client_auth::authenticate(conn, server, request, &server.url(INTROSPECT_PATH), true)?;
    let token = request.params.require("token")?;
    // The hint only orders the search; there is one kind of token to find.
    let claims = access_token::active(conn, server, token)?.filter(|claims| match &caller {
        Caller::Client(client) => claims.client_id == client.client_id,
        Caller::Resource(rs) => claims.aud == rs.identifier,
    });
    Ok(match claims {
        Some(claims) => Introspection { active: true, claims: Some(claims), token_type: Some("Bearer") },
        None => Introspection { active: false, claims: None, token_type: None },
    })
}

/// `POST /oauth/revoke`. Revokes the caller's own token; for anything else
/// (unknown, malformed, another client's) it answers the same 200 without
/// revoking, so the endpoint tells nothing about tokens it did not issue
/// to the caller.
pub fn revoke(conn: &mut DbConn, server: &AuthServer, request: &Request) -> Result<(), OAuthError> {
    let client = client_only(client_auth::authenticate(conn, server, request, &server.url(REVOKE_PATH), false)?)?;
    let token = request.params.require("token")?;
    if let Some(claims) = access_token::verify_signature(conn, server, token)?
        && claims.client_id == client.client_id
    {
        access_token::revoke(conn, server, &claims)?;
        let mut event =
            crate::audit::AuditEvent::new(crate::audit::Actor::System, "token.revoked", Some(&client.client_id));
        event.details = serde_json::json!({ "jti": claims.jti });
        crate::audit::record(conn, server.clock.as_ref(), event)?;
    }
    tokens::purge_expired(conn, server.clock.now().naive_utc())?;
    Ok(())
}

/// The authentication methods the endpoints accept, for metadata.
const AUTH_METHODS: [AuthMethod; 4] = [
    AuthMethod::ClientSecretBasic,
    AuthMethod::ClientSecretPost,
    AuthMethod::ClientSecretJwt,
    AuthMethod::PrivateKeyJwt,
];
/// Algorithms accepted on client assertions.
const ASSERTION_ALGS: [&str; 4] = ["HS256", "RS256", "ES256", "EdDSA"];

/// RFC 8414 metadata: only what works.
pub fn metadata(conn: &mut DbConn, server: &AuthServer) -> Result<serde_json::Value, OAuthError> {
    let scopes = super::resources::list(conn)
        .map_err(|e| match e {
            super::resources::ResourceError::Store(s) => s.into(),
            other => OAuthError::server_error(&other),
        })?
        .iter()
        .fold(Scopes::default(), |all, rs| all.union(&rs.scope));
    let methods: Vec<&str> = AUTH_METHODS.iter().map(|m| m.as_str()).collect();
    Ok(serde_json::json!({
        "issuer": server.issuer,
        "token_endpoint": server.url(TOKEN_PATH),
        "jwks_uri": server.url(JWKS_PATH),
        "introspection_endpoint": server.url(INTROSPECT_PATH),
        "revocation_endpoint": server.url(REVOKE_PATH),
        "grant_types_supported": [GrantType::ClientCredentials.as_str()],
        "response_types_supported": [],
        "scopes_supported": scopes,
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "introspection_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "revocation_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "client_assertion_types_supported": [JWT_BEARER],
        "access_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA", "HS256"],
        "resource_parameter_supported": true,
    }))
}
