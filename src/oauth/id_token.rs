//! OpenID Connect ID tokens (Core §2, §3.1.3.6) and the claims about a
//! person that ID tokens and the UserInfo endpoint share (§5.1, §5.4).
//!
//! An ID token is minted with every access token of a grant whose scope
//! holds `openid`: at the code exchange and at each refresh (§12.2: same
//! `iss`, `sub`, `aud`, `auth_time` and `nonce` as the first). It is
//! signed with the server's active key of the client's
//! `id_token_signed_response_alg` (RS256 unless registered otherwise) and
//! carries `at_hash` of the access token issued with it.

use base64::Engine;

use serde::{Deserialize, Serialize};

use super::clients::Client;
use super::{AuthServer, OAuthError};
use crate::crypto::MasterKey;
use crate::domain::scope::Scopes;
use crate::jwt::keys::SigningAlg;
use crate::jwt::signer::Typ;
use crate::store::grants::GrantRow;
use crate::store::{DbConn, StoreError, users};

/// The scope that makes a request an OpenID Connect one.
pub const OPENID: &str = "openid";
/// The claims each scope releases (Core §5.4), besides `sub`.
pub const SCOPE_CLAIMS: [(&str, &[&str]); 2] = [("profile", &["name"]), ("email", &["email", "email_verified"])];
/// The claims an ID token or UserInfo answer may hold, for discovery.
pub const CLAIMS_SUPPORTED: [&str; 12] =
    ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "name", "email", "email_verified"];
/// Longest `nonce` accepted on an authorization request.
pub const MAX_NONCE_LEN: usize = 512;

/// What the scopes release about a person (Core §5.1): `name` with
/// `profile`, `email` and `email_verified` with `email`. Accounts are
/// made by an admin, who vouches for the address; nobody can change it
/// themselves, so it is reported as verified.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonClaims {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

/// The claims about `user_id` that `scope` releases; `None` when there is
/// no such enabled person.
pub fn person_claims(conn: &mut DbConn, user_id: &str, scope: &Scopes) -> Result<Option<PersonClaims>, StoreError> {
    let Some(user) = users::find_by_id(conn, user_id)?.filter(|u| !u.disabled) else {
        return Ok(None);
    };
    let mut claims = PersonClaims { sub: user.id, ..PersonClaims::default() };
    if scope.contains("profile") {
        claims.name = Some(user.display_name);
    }
    if scope.contains("email") {
        claims.email = Some(user.email);
        claims.email_verified = Some(true);
    }
    Ok(Some(claims))
}

/// An ID token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(flatten)]
    pub person: PersonClaims,
}

/// `at_hash` (Core §3.1.3.6): the left half of the hash of the access
/// token's ASCII bytes, base64url. The hash is the one of the ID token's
/// `alg`: SHA-256 for RS256 and ES256; SHA-512 for EdDSA over Ed25519, as
/// the relying-party libraries compute it.
pub fn at_hash(alg: SigningAlg, access_token: &str) -> String {
    use sha2::Digest;
    let digest: Vec<u8> = match alg {
        SigningAlg::Rs256 | SigningAlg::Es256 => sha2::Sha256::digest(access_token.as_bytes()).to_vec(),
        SigningAlg::EdDsa => sha2::Sha512::digest(access_token.as_bytes()).to_vec(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

/// The `sid` of a browser session (OpenID Connect Front-Channel Logout
/// §3, used by RP-initiated logout): derived from the session's
/// fingerprint under the master key, so it names the session without
/// being a handle on it.
pub fn session_sid(master: &MasterKey, session_id: &str) -> String {
    let tag = master.mac("tessera sid v1", session_id.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&tag[..16])
}

/// Mints the ID token of `grant` to go with `access_token` issued with
/// `scope` (a refresh may narrow the grant's), or `None` when that scope
/// lacks `openid` (a plain OAuth grant) or the person is gone.
pub fn mint(
    conn: &mut DbConn,
    server: &AuthServer,
    client: &Client,
    grant: &GrantRow,
    scope: &Scopes,
    access_token: &str,
) -> Result<Option<String>, OAuthError> {
    if !scope.contains(OPENID) {
        return Ok(None);
    }
    let Some(person) = person_claims(conn, &grant.user_id, scope)? else {
        return Ok(None);
    };
    let alg = client.id_token_alg.unwrap_or(SigningAlg::Rs256);
    let signer = server.keys.signer(conn, server.clock.as_ref(), alg).map_err(|e| match e {
        crate::jwt::keys::SigningKeyError::Store(s) => s.into(),
        other => OAuthError::server_error(&other),
    })?;
    let now = server.clock.now().timestamp();
    let claims = IdClaims {
        iss: server.issuer.clone(),
        aud: client.client_id.clone(),
        exp: now + server.access_token_ttl.as_secs() as i64,
        iat: now,
        auth_time: grant.auth_time.map(|t| t.and_utc().timestamp()),
        nonce: grant.nonce.clone(),
        at_hash: Some(at_hash(alg, access_token)),
        sid: grant.sid.clone(),
        person,
    };
    signer.sign(Typ::IdToken, &claims).map(Some).map_err(|e| OAuthError::server_error(&e))
}

/// The claims of an ID token this server signed, whatever its expiry (an
/// `id_token_hint` may have expired, Core RP-Initiated Logout §2); `None`
/// when it is not one of ours.
pub fn verify_hint(conn: &mut DbConn, server: &AuthServer, token: &str) -> Result<Option<IdClaims>, OAuthError> {
    let Ok(header) = jsonwebtoken::decode_header(token) else {
        return Ok(None);
    };
    // An access token (`at+jwt`) is never an ID token, nor is anything a
    // resource server's secret signed.
    let access = header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(super::access_token::TYP));
    let Some(kid) = header.kid.as_deref().filter(|k| !k.starts_with("rs_") && !access) else {
        return Ok(None);
    };
    let verifier = match server.keys.verifier(conn, server.clock.as_ref(), kid) {
        Ok(Some(v)) => v,
        Ok(None) => return Ok(None),
        Err(crate::jwt::keys::SigningKeyError::Store(s)) => return Err(s.into()),
        Err(other) => return Err(OAuthError::server_error(&other)),
    };
    let validation = crate::jwt::signature_only(verifier.alg);
    match jsonwebtoken::decode::<IdClaims>(token, &verifier.key, &validation) {
        Ok(data) if data.claims.iss == server.issuer => Ok(Some(data.claims)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of OpenID Connect Core §A.3 / RFC test vectors: the
    /// access token `jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y` under
    /// RS256 has at_hash `77QmUPtjPfzWtF2AnpK9RQ`.
    #[test]
    fn at_hash_matches_the_core_example() {
        assert_eq!(at_hash(SigningAlg::Rs256, "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"), "77QmUPtjPfzWtF2AnpK9RQ");
        assert_eq!(at_hash(SigningAlg::EdDsa, "x").len(), 43);
    }
}
