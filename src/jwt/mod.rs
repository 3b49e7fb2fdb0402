//! JWS: the server's signing keys, their rotation, and the JWKS that
//! publishes them. Signing and verification of tokens build on this.

pub mod keyring;
pub mod keys;
pub mod signer;

/// The `typ` of an access token (RFC 9068): what tells it from an ID token
/// or a client's JWT signed with the same kind of key.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// jsonwebtoken's checks narrowed to the signature and the pinned
/// algorithm: time claims are checked by the caller against the injected
/// clock (jsonwebtoken reads the wall clock), and `aud`/`iss` by the
/// caller's own rules. Typed claim fields keep `exp`, `nbf`, `iat` numbers.
pub fn signature_only(alg: jsonwebtoken::Algorithm) -> jsonwebtoken::Validation {
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation
}
