//! Client assertions (RFC 7523 §2.2, §3): `client_secret_jwt` (HS256 over
//! the client secret) and `private_key_jwt` (the client's JWKS).
//!
//! The algorithm is pinned by the key, never taken from the header: an
//! HS256 client's assertions must say HS256, a JWK's assertions must say
//! the JWK's algorithm, so `none` never passes and a public key is never
//! used as an HMAC secret. Time claims are checked against the injected
//! clock and must be JSON numbers (typed fields: a string `exp` fails to
//! deserialize instead of skipping the check).

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::clients::{AuthMethod, Client};
use crate::clock::Clock;
use crate::store::{DbConn, StoreError, tokens};

/// `client_assertion_type` for JWT assertions.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// An assertion may live at most this long (`exp` − now).
pub const MAX_LIFETIME_SECS: i64 = 600;
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: i64 = 30;
pub const MAX_JTI_LEN: usize = 256;

/// The one algorithm a client's JWK verifies.
pub fn pinned_algorithm(jwk: &Jwk) -> Result<Algorithm, String> {
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => Algorithm::EdDSA,
        AlgorithmParameters::OctetKey(_) => return Err("a JWKS for private_key_jwt holds public keys only".into()),
        _ => return Err("JWKS keys must be RSA, EC P-256 or Ed25519".into()),
    };
    let stated = match jwk.common.key_algorithm {
        None => return Ok(by_type),
        Some(KeyAlgorithm::RS256) => Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => Algorithm::ES256,
        Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
        Some(other) => return Err(format!("JWK algorithm {other:?} is not accepted (RS256, ES256, EdDSA)")),
    };
    if stated != by_type {
        return Err("a JWK's alg does not match its key type".into());
    }
    Ok(stated)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn contains_any(&self, wanted: &[String]) -> bool {
        match self {
            Self::One(a) => wanted.contains(a),
            Self::Many(list) => list.iter().any(|a| wanted.contains(a)),
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: OneOrMany,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
}

#[derive(Deserialize)]
struct IssuerOnly {
    iss: Option<String>,
}

/// The `iss` of an assertion, read without verification, to find out
/// which client claims to have signed it.
pub fn unverified_issuer(assertion: &str) -> Option<String> {
    jsonwebtoken::dangerous::insecure_decode_claims::<IssuerOnly>(assertion).ok()?.iss
}

/// Why an assertion was refused: safe to show to the client and to audit.
pub type Refusal = String;

/// Verifies `assertion` as `client`'s, its `aud` one string among
/// `audiences` (the issuer and the token endpoint), with the client's live
/// secrets (for HS256), and records its jti so it cannot be used again.
/// `Err(Ok(reason))` is a refusal, `Err(Err(_))` a storage failure.
pub fn verify(
    conn: &mut DbConn,
    clock: &dyn Clock,
    client: &Client,
    assertion: &str,
    audiences: &[String],
    secrets: &[Vec<u8>],
) -> Result<(), Result<Refusal, StoreError>> {
    let rules = Rules { audiences, max_lifetime_secs: MAX_LIFETIME_SECS, client_assertion: true };
    verify_with(conn, clock, client, assertion, &rules, secrets).map(|_| ())
}

/// What a JWT signed by a client must satisfy.
pub struct Rules<'a> {
    /// Accepted `aud` values: one of them as a string, or for a `/v1`
    /// bearer JWT a list that holds one.
    pub audiences: &'a [String],
    /// `exp` may be at most this far ahead.
    pub max_lifetime_secs: i64,
    /// An RFC 7523 client assertion: `sub` = `iss`, and a `jti` used once.
    /// Otherwise (a client-signed bearer JWT on `/v1`): any `sub`, `iat`
    /// required, reusable until `exp`.
    pub client_assertion: bool,
}

/// Verifies a JWT signed by `client` under `rules`; its `sub` on success.
/// `secrets` are the client's live secrets, opened: HS256 keys for a
/// `client_secret_jwt` assertion, and for a `/v1` JWT of any client that
/// authenticates with a secret.
pub fn verify_with(
    conn: &mut DbConn,
    clock: &dyn Clock,
    client: &Client,
    assertion: &str,
    rules: &Rules<'_>,
    secrets: &[Vec<u8>],
) -> Result<String, Result<Refusal, StoreError>> {
    let audiences = rules.audiences;
    let refuse = |reason: &str| Err(Ok(reason.to_string()));
    let header = match jsonwebtoken::decode_header(assertion) {
        Ok(h) => h,
        Err(_) => return refuse("the client assertion is not a well-formed JWT"),
    };
    let method = client.token_endpoint_auth_method;
    // A client assertion only for a client registered to send one; a
    // `/v1` bearer JWT from any client that holds a secret (the HS256 JWT
    // the guides sign with the client secret).
    let hmac = method == AuthMethod::ClientSecretJwt || (!rules.client_assertion && method.uses_secret());
    let candidates: Vec<(Algorithm, DecodingKey)> = match method {
        _ if hmac && secrets.is_empty() => {
            return refuse(
                "the client's secret was issued before Tessera sealed every client secret, so it cannot verify \
                 a JWT: rotate the client secret, then sign with the new one",
            );
        }
        _ if hmac => secrets.iter().map(|s| (Algorithm::HS256, DecodingKey::from_secret(s))).collect(),
        AuthMethod::PrivateKeyJwt => {
            let Some(set) = client.jwk_set() else {
                return refuse("the client has no usable JWKS");
            };
            let mut keys = Vec::new();
            for jwk in &set.keys {
                if header.kid.is_some() && jwk.common.key_id != header.kid {
                    continue;
                }
                if let (Ok(alg), Ok(key)) = (pinned_algorithm(jwk), DecodingKey::from_jwk(jwk)) {
                    keys.push((alg, key));
                }
            }
            if keys.is_empty() {
                return refuse("no key in the client's JWKS matches the assertion's kid");
            }
            keys
        }
        _ if rules.client_assertion => return refuse("this client does not authenticate with a JWT assertion"),
        _ => return refuse("this client has no secret or key to sign a JWT with"),
    };
    let expected = if hmac { vec![Algorithm::HS256] } else { candidates.iter().map(|(a, _)| *a).collect() };
    if !expected.contains(&header.alg) {
        return refuse(&format!(
            "the assertion is signed {:?}, but this client's key allows only {}",
            header.alg,
            expected.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", ")
        ));
    }
    let mut claims = None;
    let mut malformed = false;
    for (alg, key) in candidates.iter().filter(|(a, _)| *a == header.alg) {
        let validation = crate::jwt::signature_only(*alg);
        match jsonwebtoken::decode::<Claims>(assertion, key, &validation) {
            Ok(data) => {
                claims = Some(data.claims);
                break;
            }
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::Json(_)) => malformed = true,
            Err(_) => {}
        }
    }
    let Some(claims) = claims else {
        return if malformed {
            refuse("the assertion lacks iss, sub, aud, exp or jti, or a time claim is not a number")
        } else {
            refuse("the assertion's signature does not verify")
        };
    };
    if claims.iss != client.client_id || (rules.client_assertion && claims.sub != client.client_id) {
        return refuse("the assertion's iss and sub must both be the client_id");
    }
    if claims.sub.is_empty() {
        return refuse("the JWT's sub is empty");
    }
    let aud_ok = match &claims.aud {
        // RFC 7523bis (the 2025 audience-injection class): a client
        // assertion names this server as one string. A list, or another
        // endpoint's URL, could be an assertion the client was led to sign
        // for several servers at once, and replayed here.
        OneOrMany::One(aud) => audiences.contains(aud),
        OneOrMany::Many(_) if rules.client_assertion => false,
        // A client-signed bearer JWT on `/v1` is an ordinary JWT: its `aud`
        // may be a list that holds the API.
        many => many.contains_any(audiences),
    };
    if !aud_ok {
        return refuse(if rules.client_assertion {
            "the assertion's aud must be one string: the issuer or the token endpoint"
        } else {
            "the JWT's aud does not name this API"
        });
    }
    let now = clock.now().timestamp();
    if claims.exp <= now - LEEWAY_SECS {
        return refuse("the assertion has expired");
    }
    if claims.exp > now + rules.max_lifetime_secs {
        return refuse(&format!("the JWT's exp is too far ahead (at most {} minutes)", rules.max_lifetime_secs / 60));
    }
    if !rules.client_assertion && claims.iat.is_none() {
        return refuse("the JWT lacks iat");
    }
    if claims.nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECS) || claims.iat.is_some_and(|iat| iat > now + LEEWAY_SECS) {
        return refuse("the assertion is not valid yet");
    }
    if !rules.client_assertion {
        return Ok(claims.sub);
    }
    let jti = claims.jti.unwrap_or_default();
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return refuse("the assertion's jti is missing or too long");
    }
    let expires_at = chrono::DateTime::from_timestamp(claims.exp + LEEWAY_SECS, 0).unwrap_or_default().naive_utc();
    match tokens::use_assertion(conn, &client.client_id, &jti, expires_at) {
        Ok(true) => {
            // About one use in 62 sweeps out jti values that can no longer matter.
            if crate::crypto::random_base62(1) == "0" {
                tokens::purge_expired(conn, clock.now().naive_utc()).map_err(Err)?;
            }
            Ok(claims.sub)
        }
        Ok(false) => refuse("the assertion's jti was used before (replay)"),
        Err(e) => Err(Err(e)),
    }
}
