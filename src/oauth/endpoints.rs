//! The token (RFC 6749 §4.4), introspection (RFC 7662) and revocation
//! (RFC 7009) endpoints, and the metadata that advertises them (RFC 8414).

use std::sync::Arc;

use serde::Serialize;

use super::access_token::{self, AccessClaims};
use super::assertion::JWT_BEARER;
use super::client_auth::{self, Caller};
use super::clients::{AuthMethod, Client, GrantType, check_absolute_uri};
use super::user_grants;
use super::{
    AUTHORIZE_PATH, AuthServer, END_SESSION_PATH, INTROSPECT_PATH, JWKS_PATH, OAuthError, REVOKE_PATH, Request,
    TOKEN_PATH, USERINFO_PATH,
};
use crate::audit::{self, Actor, AuditEvent};
use crate::domain::scope::Scopes;
use crate::jwt::keys::SigningAlg;
use crate::store::{Db, DbConn, tokens};

/// Runs an endpoint from memory when its reads all hit the caches (client
/// credentials, introspection of a JWT), else with one connection on the
/// blocking pool. A request that must write (an assertion's `jti` is
/// recorded) goes to the pool at once rather than be checked twice.
async fn on_pool<T: Send + 'static>(
    db: &Db,
    server: Arc<AuthServer>,
    request: Request,
    endpoint: fn(&mut DbConn, &AuthServer, &Request) -> Result<T, OAuthError>,
) -> Result<T, OAuthError> {
    if request.params.get("client_assertion").is_some() {
        return db.run(move |conn| endpoint(conn, &server, &request)).await;
    }
    db.run_cached(move |conn| endpoint(conn, &server, &request)).await
}

/// `POST /oauth/token`, as the HTTP layer calls it. Only the client
/// credentials grant can be answered from memory: the others spend a code
/// or a refresh token.
pub async fn serve_token(db: &Db, server: Arc<AuthServer>, request: Request) -> Result<TokenResponse, OAuthError> {
    if request.params.get("grant_type") != Some(GrantType::ClientCredentials.as_str()) {
        return db.run(move |conn| token(conn, &server, &request)).await;
    }
    on_pool(db, server, request, token).await
}

/// `POST /oauth/introspect`, as the HTTP layer calls it.
pub async fn serve_introspection(
    db: &Db,
    server: Arc<AuthServer>,
    request: Request,
) -> Result<Introspection, OAuthError> {
    on_pool(db, server, request, introspect).await
}

/// `POST /oauth/revoke`, as the HTTP layer calls it.
pub async fn serve_revocation(db: &Db, server: Arc<AuthServer>, request: Request) -> Result<(), OAuthError> {
    db.run(move |conn| revoke(conn, &server, &request)).await
}

/// The RFC 8414 document, as the HTTP layer calls it.
pub async fn serve_metadata(db: &Db, server: Arc<AuthServer>) -> Result<serde_json::Value, OAuthError> {
    let registration_endpoint = server.registration_endpoint();
    let mut doc = db.run_cached(move |conn| metadata(conn, &server)).await?;
    // RFC 7591 §3: only when registration is open to someone.
    if let (Some(url), Some(fields)) = (registration_endpoint, doc.as_object_mut()) {
        fields.insert("registration_endpoint".into(), url.into());
    }
    Ok(doc)
}

/// A successful token response.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// OpenID Connect: with `openid` in a person's grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
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

/// `POST /oauth/token`: authenticates the client, then runs its grant.
pub fn token(conn: &mut DbConn, server: &AuthServer, request: &Request) -> Result<TokenResponse, OAuthError> {
    let grant = request.params.require("grant_type")?;
    let grant = GrantType::parse(grant)
        .ok_or_else(|| OAuthError::unsupported_grant_type("the grant_type is not one this server supports"))?;
    let client = client_only(client_auth::authenticate(conn, server, request, false)?)?;
    if !client.allows_grant(grant) || (grant == GrantType::ClientCredentials && client.is_public()) {
        return Err(OAuthError::unauthorized_client(format!("this client may not use the {} grant", grant.as_str())));
    }
    match grant {
        GrantType::ClientCredentials => client_credentials(conn, server, &client, request),
        GrantType::AuthorizationCode => {
            user_grants::authorization_code(conn, server, &server.refresh, &client, request)
        }
        GrantType::RefreshToken => user_grants::refresh_token(conn, server, &server.refresh, &client, request),
    }
}

/// `grant_type=client_credentials` (RFC 6749 §4.4): the client acts for itself.
fn client_credentials(
    conn: &mut DbConn,
    server: &AuthServer,
    client: &Client,
    request: &Request,
) -> Result<TokenResponse, OAuthError> {
    let audience_param = requested_audience(request)?;
    let requested_scope =
        request.params.get("scope").map(Scopes::parse).transpose().map_err(OAuthError::invalid_scope)?;
    let audience = access_token::resolve_audience(conn, server, client, audience_param)?;
    let scope = access_token::choose_scope(&access_token::allowed_scopes(client, &audience), requested_scope)?;
    let minted = access_token::mint(conn, server, &client.client_id, &client.client_id, &audience, &scope, None)?;
    Ok(TokenResponse {
        access_token: minted.token,
        token_type: "Bearer",
        expires_in: minted.expires_in,
        scope: minted.claims.scope,
        refresh_token: None,
        id_token: None,
    })
}

/// An introspection answer: `{"active": false}`, or the token's claims.
#[derive(Debug, Serialize, Default)]
pub struct Introspection {
    pub active: bool,
    #[serde(flatten)]
    pub claims: Option<AccessClaims>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
}

/// Claims of a live refresh token (of a person still enabled, for a
/// client still usable), in the shape of an access token's, with the
/// scope it would give now (`user_grants::held_now`).
fn refresh_claims(conn: &mut DbConn, server: &AuthServer, token: &str) -> Result<Option<AccessClaims>, OAuthError> {
    let Some((row, grant)) = user_grants::find_refresh(conn, token)? else {
        return Ok(None);
    };
    if !user_grants::refresh_is_live(&row, &grant, server.clock.now().naive_utc()) {
        return Ok(None);
    }
    let client = match super::clients::find_cached(conn, server, &grant.client_id) {
        Ok(Some(c)) if super::clients::usable(conn, &server.cache, &c)? => c,
        Ok(_) => return Ok(None),
        Err(super::clients::ClientError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(OAuthError::server_error(&e)),
    };
    let stored = Scopes::from_stored(&grant.scope);
    let scope = match user_grants::held_now(conn, server, &client, &grant.user_id, &grant.audience, &stored) {
        Ok((_, scope)) => scope,
        // The person disabled, the audience no longer the client's: inactive.
        Err(e) if e.status.is_client_error() => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(AccessClaims {
        iss: server.issuer.clone(),
        sub: grant.user_id,
        aud: grant.audience,
        client_id: grant.client_id,
        scope: Some(scope.to_string()).filter(|s| !s.is_empty()),
        iat: row.created_at.and_utc().timestamp(),
        exp: row.expires_at.and_utc().timestamp(),
        jti: row.id,
        gid: None,
    }))
}

/// Whether the hint asks to look for a refresh token first.
fn refresh_first(request: &Request) -> bool {
    request.params.get("token_type_hint") == Some("refresh_token")
}

/// `POST /oauth/introspect`. A client sees its own tokens, a resource
/// server the access tokens minted for it; anything else reads inactive.
/// The hint only orders the search.
pub fn introspect(conn: &mut DbConn, server: &AuthServer, request: &Request) -> Result<Introspection, OAuthError> {
    let caller = client_auth::authenticate(conn, server, request, true)?;
    let token = request.params.require("token")?;
    let mut found = None;
    for refresh in if refresh_first(request) { [true, false] } else { [false, true] } {
        found = match (refresh, &caller) {
            (true, Caller::Client(_)) => refresh_claims(conn, server, token)?.map(|c| (c, "refresh_token")),
            (true, Caller::Resource(_)) => None,
            (false, _) => access_token::active(conn, server, token)?.map(|c| (c, "Bearer")),
        };
        if found.is_some() {
            break;
        }
    }
    let found = found.filter(|(claims, _)| match &caller {
        Caller::Client(client) => claims.client_id == client.client_id,
        Caller::Resource(rs) => claims.aud == rs.identifier,
    });
    Ok(match found {
        Some((mut claims, kind)) => {
            // The grant id is the server's own bookkeeping.
            claims.gid = None;
            if kind == "refresh_token" {
                // A refresh token's id is its fingerprint: not for callers.
                claims.jti = String::new();
            }
            Introspection { active: true, claims: Some(claims), token_type: Some(kind) }
        }
        None => Introspection::default(),
    })
}

/// `POST /oauth/revoke`. Revokes the caller's own access token, or the
/// whole family of its refresh token; for anything else (unknown,
/// malformed, another client's) it answers the same 200 without revoking,
/// so the endpoint tells nothing about tokens it did not issue to the
/// caller.
pub fn revoke(conn: &mut DbConn, server: &AuthServer, request: &Request) -> Result<(), OAuthError> {
    let client = client_only(client_auth::authenticate(conn, server, request, false)?)?;
    let token = request.params.require("token")?;
    if let Some(claims) = access_token::verify_signature(conn, server, token)? {
        if claims.client_id == client.client_id {
            access_token::revoke(conn, server, &claims)?;
            let mut event = AuditEvent::new(Actor::System, "token.revoked", Some(&client.client_id));
            event.details = serde_json::json!({ "jti": claims.jti });
            audit::record(conn, server.clock.as_ref(), event)?;
        }
    } else if let Some((_, grant)) = user_grants::find_refresh(conn, token)?
        && grant.client_id == client.client_id
    {
        user_grants::revoke_grant(conn, server.clock.as_ref(), &grant.id, "refresh token revoked by the client")?;
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
    let scopes = server
        .cache
        .resources(conn)?
        .iter()
        .map(super::resources::ResourceServer::try_from)
        .collect::<Result<Vec<_>, _>>()?
        .iter()
        .fold(Scopes::from_stored(&super::clients::SELF_SERVICE_SCOPES.join(" ")), |all, rs| all.union(&rs.scope));
    let methods: Vec<&str> = AUTH_METHODS.iter().map(|m| m.as_str()).collect();
    // Public clients authenticate with `none` at the token endpoint (PKCE
    // proves them) and may revoke and introspect their own tokens.
    let token_methods: Vec<&str> = methods.iter().copied().chain([AuthMethod::None.as_str()]).collect();
    let grants: Vec<&str> = GrantType::ALL.iter().map(|g| g.as_str()).collect();
    Ok(serde_json::json!({
        "issuer": server.issuer,
        "authorization_endpoint": server.url(AUTHORIZE_PATH),
        "token_endpoint": server.url(TOKEN_PATH),
        "jwks_uri": server.url(JWKS_PATH),
        "introspection_endpoint": server.url(INTROSPECT_PATH),
        "revocation_endpoint": server.url(REVOKE_PATH),
        "grant_types_supported": grants,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "prompt_values_supported": super::authorize::Prompt::SUPPORTED,
        "scopes_supported": scopes,
        "token_endpoint_auth_methods_supported": token_methods,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "introspection_endpoint_auth_methods_supported": token_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "revocation_endpoint_auth_methods_supported": token_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "client_assertion_types_supported": [JWT_BEARER],
        "access_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA", "HS256"],
        "resource_parameter_supported": true,
        // OpenID Connect Discovery 1.0 §3.
        "userinfo_endpoint": server.url(USERINFO_PATH),
        "end_session_endpoint": server.url(END_SESSION_PATH),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": SigningAlg::ALL.map(SigningAlg::as_str),
        "claims_supported": super::id_token::CLAIMS_SUPPORTED,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
    }))
}
