//! JWS: the server's signing keys, their rotation, and the JWKS that
//! publishes them. Signing and verification of tokens build on this.

pub mod keyring;
pub mod keys;
pub mod signer;

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
