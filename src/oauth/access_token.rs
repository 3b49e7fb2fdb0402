//! JWT access tokens (RFC 9068): minted for one audience, signed with the
//! audience's algorithm, verified back for introspection and revocation.
//!
//! Header: `typ: at+jwt`, `kid` (a signing key's kid, or for HS256 the
//! resource server's id). Claims: `iss`, `sub`, `aud`, `client_id`,
//! `scope`, `iat`, `exp`, `jti`, and for a person's token the private
//! claim `gid`, its grant.
//!
//! A token is active only while everything it stands on still holds: its
//! signature, lifetime and revocation, its grant (so revoking a family
//! covers tokens minted while the revocation ran), its client and its
//! person (disabled means inactive).

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use super::clients::{self, Client, ClientError};
use super::resources::{self, TokenAlg};
use super::{AuthServer, OAuthError};
use crate::crypto::random_base62;
use crate::domain::scope::Scopes;
use crate::jwt::signer::Typ;
use crate::store::resources::ResourceServerRow;
use crate::store::{DbConn, StoreError, tokens};

pub use crate::jwt::ACCESS_TOKEN_TYP as TYP;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub iat: i64,
    pub exp: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub jti: String,
    /// The grant (token family) a person's token was minted in; its state
    /// is read at every verification. Never shown at introspection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
}

/// Where a token is going: a registered resource server, or the server's
/// own API (the default audience).
#[derive(Debug, Clone)]
pub struct Audience {
    pub identifier: String,
    pub alg: TokenAlg,
    /// The scopes the resource server defines; `None` for the default
    /// audience, where the client's allowed scopes are the limit.
    pub scope: Option<Scopes>,
    row: Option<ResourceServerRow>,
}

/// The audience a token request names (`resource` or `audience`, RFC
/// 8707), which must be one the client may use.
pub fn resolve_audience(
    conn: &mut DbConn,
    server: &AuthServer,
    client: &Client,
    requested: Option<&str>,
) -> Result<Audience, OAuthError> {
    let identifier = requested.unwrap_or(&server.default_audience);
    if let Some(row) = server.cache.resource_for(conn, identifier)? {
        if identifier != server.default_audience && !client.audiences.iter().any(|a| a == identifier) {
            return Err(OAuthError::invalid_target("this client may not get tokens for the requested resource"));
        }
        let rs = resources::ResourceServer::try_from(&row)?;
        return Ok(Audience { identifier: rs.identifier, alg: rs.algorithm, scope: Some(rs.scope), row: Some(row) });
    }
    if identifier == server.default_audience {
        return Ok(Audience { identifier: identifier.to_string(), alg: TokenAlg::Rs256, scope: None, row: None });
    }
    Err(OAuthError::invalid_target("the requested resource is not a registered resource server"))
}

/// The scopes `client` may have for `audience`: its own, within those the
/// resource server defines (the default audience defines no limit).
pub fn allowed_scopes(client: &Client, audience: &Audience) -> Scopes {
    match &audience.scope {
        Some(defined) => client.scope.intersection(defined),
        None => client.scope.clone(),
    }
}

/// The scope to grant: the requested one if it lies within `allowed`
/// (`invalid_scope` naming what does not), or all of `allowed`.
pub fn choose_scope(allowed: &Scopes, requested: Option<Scopes>) -> Result<Scopes, OAuthError> {
    match requested {
        None => Ok(allowed.clone()),
        Some(asked) if asked.is_subset(allowed) => Ok(asked),
        Some(asked) => Err(OAuthError::invalid_scope(format!(
            "this client may not have these scopes for this audience: {}",
            asked.missing_from(allowed)
        ))),
    }
}

/// A minted token and what the response says about it.
pub struct Minted {
    pub token: String,
    pub expires_in: u64,
    pub claims: AccessClaims,
}

fn key_error(e: crate::jwt::keys::SigningKeyError) -> OAuthError {
    match e {
        crate::jwt::keys::SigningKeyError::Store(s) => s.into(),
        other => OAuthError::server_error(&other),
    }
}

/// Signs an access token for `audience` with `scope`, in `grant` when it
/// acts for a person.
pub fn mint(
    conn: &mut DbConn,
    server: &AuthServer,
    client_id: &str,
    subject: &str,
    audience: &Audience,
    scope: &Scopes,
    grant: Option<&str>,
) -> Result<Minted, OAuthError> {
    let now = server.clock.now().timestamp();
    let ttl = server.access_token_ttl.as_secs();
    let claims = AccessClaims {
        iss: server.issuer.clone(),
        sub: subject.to_string(),
        aud: audience.identifier.clone(),
        client_id: client_id.to_string(),
        scope: (!scope.is_empty()).then(|| scope.to_string()),
        iat: now,
        exp: now + ttl as i64,
        jti: random_base62(32),
        gid: grant.map(str::to_string),
    };
    let token = match (audience.alg.asymmetric(), &audience.row) {
        (Some(alg), _) => {
            let signer = server.keys.signer(conn, server.clock.as_ref(), alg).map_err(key_error)?;
            signer.sign(Typ::AccessToken, &claims).map_err(|e| OAuthError::server_error(&e))?
        }
        (None, Some(row)) => {
            let secret = resources::hmac_key(server.keys.master(), row)
                .ok_or_else(|| OAuthError::server_error(&format!("resource server {} has no usable secret", row.id)))?;
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some(row.id.clone());
            header.typ = Some(TYP.to_string());
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret))
                .map_err(|e| OAuthError::server_error(&e))?
        }
        (None, None) => return Err(OAuthError::server_error(&"an HS256 audience without a resource server")),
    };
    Ok(Minted { token, expires_in: ttl, claims })
}

/// Tokens whose signature was checked, by SHA-256, with the verdict and
/// the moment it stops counting: the token's expiry, its key's leaving the
/// JWKS, or `SIGNER_RECHECK` after the check, whichever is first; and at
/// once when the database changes (a key or a resource server's secret).
/// A resource server that introspects the same token on every request
/// pays for one signature check, not one per request.
pub struct VerifiedTokens(crate::store::feed::Cached<(Option<AccessClaims>, i64)>);

impl Default for VerifiedTokens {
    fn default() -> Self {
        use crate::store::feed::{Cached, Kind};
        Self(Cached::new(
            "verified_tokens",
            &[Kind::SigningKeys, Kind::ResourceServers],
            50_000,
            std::time::Duration::from_secs(60),
        ))
    }
}

/// The claims of a token this server signed, whatever its expiry or
/// revocation; `None` when it is not one (malformed, unknown or unpublished
/// kid, bad signature, wrong `typ` or `iss`, an HS256 resource server's
/// token for another audience, a lifetime longer than the configured one).
/// The algorithm comes from the key.
pub fn verify_signature(
    conn: &mut DbConn,
    server: &AuthServer,
    token: &str,
) -> Result<Option<AccessClaims>, OAuthError> {
    let now = server.clock.now();
    let generation = server.verified.0.generation(server.cache.feed());
    let digest = crate::crypto::fingerprint(token);
    if let Some((claims, until)) = server.verified.0.get(generation, &digest)
        && now.timestamp() < until
    {
        return Ok(claims);
    }
    let (claims, unpublish_at) = check_signature(conn, server, token)?;
    let recheck = (now + crate::jwt::keyring::SIGNER_RECHECK).timestamp();
    let until = [claims.as_ref().map(|c| c.exp), unpublish_at.map(|t| t.timestamp()), Some(recheck)]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(recheck);
    server.verified.0.put(generation, &digest, (claims.clone(), until));
    Ok(claims)
}

/// `verify_signature` without the memory; with the claims, when the key
/// that verified them leaves the JWKS.
type Checked = (Option<AccessClaims>, Option<chrono::DateTime<chrono::Utc>>);

fn check_signature(conn: &mut DbConn, server: &AuthServer, token: &str) -> Result<Checked, OAuthError> {
    let Ok(header) = jsonwebtoken::decode_header(token) else {
        return Ok((None, None));
    };
    let typ_ok = header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case(TYP) || t.eq_ignore_ascii_case("application/at+jwt"));
    let Some(kid) = header.kid.as_deref().filter(|_| typ_ok) else {
        return Ok((None, None));
    };
    // For an HS256 resource server, the audience its secret may vouch for.
    let (alg, key, only_for, unpublish_at) = if kid.starts_with("rs_") {
        let Some(row) = server.cache.resource(conn, kid)? else {
            return Ok((None, None));
        };
        if TokenAlg::parse(&row.algorithm) != Some(TokenAlg::Hs256) {
            return Ok((None, None));
        }
        let Some(secret) = resources::hmac_key(server.keys.master(), &row) else {
            return Ok((None, None));
        };
        (Algorithm::HS256, Verify::Owned(DecodingKey::from_secret(&secret)), Some(row.identifier), None)
    } else {
        match server.keys.verifier(conn, server.clock.as_ref(), kid).map_err(key_error)? {
            Some(v) => {
                let unpublish_at = v.unpublish_at;
                (v.alg, Verify::Shared(v), None, unpublish_at)
            }
            None => return Ok((None, None)),
        }
    };
    let validation = crate::jwt::signature_only(alg);
    // `iat` and `exp` are required, typed fields: a token without them
    // fails to deserialize here.
    let claims = match jsonwebtoken::decode::<AccessClaims>(token, key.key(), &validation) {
        Ok(data) => data.claims,
        Err(_) => return Ok((None, None)),
    };
    if claims.iss != server.issuer {
        return Ok((None, None));
    }
    // The resource server holds its secret too, so whatever that secret
    // signs is only as good as a token the resource server wrote itself:
    // valid for that resource server, never for `/v1` or another audience.
    if only_for.is_some_and(|identifier| claims.aud != identifier) {
        return Ok((None, None));
    }
    if !lifetime_within(server, &claims) {
        return Ok((None, None));
    }
    Ok((Some(claims), unpublish_at))
}

/// Whether a token claims to live no longer than the server issues them
/// for (plus the clock-skew leeway): whatever its `exp` says, a token
/// signed by a leaked or misused key cannot outlive that.
fn lifetime_within(server: &AuthServer, claims: &AccessClaims) -> bool {
    let max = i64::try_from(server.access_token_ttl.as_secs()).unwrap_or(i64::MAX);
    claims.exp.saturating_sub(claims.iat) <= max.saturating_add(super::assertion::LEEWAY_SECS)
}

enum Verify {
    Shared(Arc<crate::jwt::keyring::Verifier>),
    Owned(DecodingKey),
}

impl Verify {
    fn key(&self) -> &DecodingKey {
        match self {
            Self::Shared(v) => &v.key,
            Self::Owned(k) => k,
        }
    }
}

/// The claims of a token that is valid now: signed by this server, not
/// expired, not revoked, its grant not revoked, its client and person
/// enabled. Storage errors propagate (fail closed).
pub fn active(conn: &mut DbConn, server: &AuthServer, token: &str) -> Result<Option<AccessClaims>, OAuthError> {
    let Some(claims) = verify_signature(conn, server, token)? else {
        return Ok(None);
    };
    let now = server.clock.now().timestamp();
    if claims.exp <= now || claims.iat > now.saturating_add(super::assertion::LEEWAY_SECS) {
        return Ok(None);
    }
    if server.cache.is_revoked(conn, &claims.jti)? {
        return Ok(None);
    }
    if !parties_live(conn, server, &claims)? {
        return Ok(None);
    }
    Ok(Some(claims))
}

/// Whether the grant, client and person a token names are still good. The
/// grant is read here rather than trusting a list of its tokens made at
/// revocation time: a token minted while the family was being revoked is
/// covered too.
fn parties_live(conn: &mut DbConn, server: &AuthServer, claims: &AccessClaims) -> Result<bool, OAuthError> {
    let cache = &server.cache;
    let person = match &claims.gid {
        Some(gid) => match cache.grant(conn, gid)? {
            Some(g) if g.revoked_at.is_none() && g.client_id == claims.client_id && g.user_id == claims.sub => {
                Some(g.user_id)
            }
            _ => return Ok(false),
        },
        // Client credentials: the client is the subject.
        None if claims.sub == claims.client_id => None,
        // A person's token from before grants were named in tokens.
        None => Some(claims.sub.clone()),
    };
    if let Some(user_id) = person
        && !user_enabled(conn, server, &user_id)?
    {
        return Ok(false);
    }
    match clients::find_cached(conn, server, &claims.client_id) {
        Ok(Some(client)) => Ok(clients::usable(conn, &server.cache, &client)?),
        Ok(None) => Ok(false),
        Err(ClientError::Store(e)) => Err(e.into()),
        Err(other) => Err(OAuthError::server_error(&other)),
    }
}

/// Whether `user_id` is a user who may still act (exists, not disabled),
/// from memory when the database has not changed (`store::cache`).
pub fn user_enabled(conn: &mut DbConn, server: &AuthServer, user_id: &str) -> Result<bool, StoreError> {
    Ok(server.cache.user(conn, user_id)?.is_some_and(|u| !u.disabled))
}

/// Revokes a token by jti until it would have expired.
pub fn revoke(conn: &mut DbConn, server: &AuthServer, claims: &AccessClaims) -> Result<(), StoreError> {
    let now = server.clock.now();
    let expires_at = chrono::DateTime::from_timestamp(claims.exp, 0).unwrap_or(now).naive_utc();
    if expires_at <= now.naive_utc() {
        return Ok(());
    }
    tokens::revoke(conn, &claims.jti, &claims.client_id, now.naive_utc(), expires_at)
}
